"""`validate` and `summary`: what can be said of a config without running it."""

from runner import text
from runner.errors import DataError, UserError
from runner.io import data
from runner.runs import build


def check(path, overrides=(), check_data=False):
    """Validate one config file. Returns (text, problems): text is the formatted report
    (None when valid); problems is a list of {file, line, column, path, message}."""
    from schemas import ConfigError, load_config

    try:
        config = load_config(path, overrides=overrides)
    except ConfigError as e:
        return str(e), e.to_json()
    if not check_data:
        return None, []
    try:
        check_config_data(config)
    except UserError as e:
        from schemas import ConfigError, locate

        problem = locate(path, e.key or "data", e.detail)
        found = {"file": problem.file, "line": problem.line, "column": problem.column,
                 "path": problem.path, "message": e.detail}
        if isinstance(e, DataError):
            found["data"] = {"file": e.path, "row": e.row}
        return str(ConfigError([problem])), [found]
    return None, []


def check_config_data(config):
    """Open the data files of a config and check widths, targets and classes against
    the network, as a run would before starting."""
    if config.train is not None:
        split_rng = build.generators(config.seed)[1]
        prepared = build.training_data(config, split_rng)
        n_inputs = prepared.X.shape[1]
    else:
        d = config.data
        info = data.inspect(d.path, features=d.features, targets=d.targets)
        build.check_inputs(config, info.n_features, d.path)
        n_inputs = info.n_features
    net = build.network(config, n_inputs)
    if config.model.weights is not None:
        build.initial_weights(net, config, build.generators(config.seed)[0])


def summary(config):
    """A Keras-like layer table: layer, activation, output shape, parameters, FLOPs per
    row (2 per weight, 1 per bias)."""
    sizes = [build.n_inputs(config)] + [layer.units for layer in config.model.layers]
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
    return "\n".join(lines)
