"""`validate` and `summary`: what can be said of a config without running it."""

from runner import text
from runner.errors import DataError, UserError
from runner.io import data
from runner.runs import build, prepare


def check(path, overrides=(), check_data=False):
    """Validate one config file. Returns (text, problems): problems is a list of {file,
    line, column, path, message}; text is their report, or for a valid config checked
    with its data the input plan (None otherwise)."""
    from schemas import ConfigError, load_config

    try:
        config = load_config(path, overrides=overrides)
    except ConfigError as e:
        return str(e), e.to_json()
    if not check_data:
        return None, []
    try:
        plan = check_config_data(config)
    except UserError as e:
        from schemas import ConfigError, locate

        problem = locate(path, e.key or "data", e.detail, overrides)
        found = {"file": problem.file, "line": problem.line, "column": problem.column,
                 "path": problem.path, "message": e.detail}
        if isinstance(e, DataError):
            found["data"] = {"file": e.path, "row": e.row}
        return str(ConfigError([problem])), [found]
    return input_plan(plan), []


def check_config_data(config):
    """Open the data files of a config and check widths, targets and classes against
    the network, as a run would before starting. Returns the input plan: one row
    {column, type, width, encoded} per feature column."""
    if config.train is not None:
        split_rng = build.generators(config.seed)[1]
        prepare.check_prediction_source(config)
        prepared = prepare.training_data(config, split_rng)
        n_inputs, plan = prepared.X.shape[1], prepared.plan
    else:
        d = config.data
        info = data.inspect(d.path, features=d.features, targets=d.targets,
                            dialect=prepare.dialect(config))
        build.check_inputs(config, info.n_features, d.path)
        n_inputs = info.n_features
        plan = [{"column": n, "type": "numeric", "width": 1, "encoded": [n]}
                for n in info.feature_names]
    net = build.network(config, n_inputs)
    if config.model.weights is not None:
        build.initial_weights(net, config, build.generators(config.seed)[0])
    return plan


def input_plan(plan) -> str:
    """The input plan as text: each feature column, its type, its encoded width and
    columns, then the network's input width."""
    body = []
    for row in plan:
        encoded = ", ".join(row["encoded"])
        body.append((row["column"], row["type"], row["width"],
                     encoded if len(encoded) <= 60 else encoded[:57] + "..."))
    lines = text.table(("column", "type", "width", "encoded as"), body, right=(2,), rule=True)
    return "\n".join(lines + [f"network inputs: {sum(r['width'] for r in plan)}"])


def summary(config):
    """A Keras-like layer table: layer, activation, output shape, parameters, FLOPs per
    row (2 per weight, 1 per bias); for typed feature columns, the input plan first."""
    plan = None
    if config.data.column_types() is not None and config.train is not None \
            and config.model.inputs is None:
        plan = prepare.training_data(config, build.generators(config.seed)[1]).plan
    width = sum(r["width"] for r in plan) if plan else prepare.n_inputs(config)
    sizes = [width] + [layer.units for layer in config.model.layers]
    rows = [("input", "", f"(batch, {sizes[0]})", 0, 0)]
    for i, (fan_in, layer) in enumerate(zip(sizes, config.model.layers)):
        params = fan_in * layer.units + (layer.units if layer.bias else 0)
        flops = 2 * fan_in * layer.units + (layer.units if layer.bias else 0)
        rows.append((f"layers.{i}", layer.activation.name, f"(batch, {layer.units})",
                     params, flops))
    head = ("layer", "activation", "output shape", "params", "FLOPs/row")
    body = [(a, b, c, f"{d:,}", f"{e:,}") for a, b, c, d, e in rows]
    lines = [f'model "{config.name}" ({config.dtype})'] + text.table(head, body, right=(3, 4),
                                                                     rule=True)
    total = sum(r[3] for r in rows)
    itemsize = 4 if config.dtype == "float32" else 8
    lines.append("-" * len(lines[1]))
    lines.append(f"total params: {total:,} ({total * itemsize:,} bytes)   "
                 f"FLOPs per row: {sum(r[4] for r in rows):,}")
    return "\n".join(([input_plan(plan), ""] if plan else []) + lines)
