"""The Python API: every command of the CLI is one call here that returns data.

    from runner import api
    config = api.load_config("configs/xor.yaml", overrides=["train.epochs=500"])
    outcome = api.run(config, out="runs")          # fit or forward into a run folder
    result = api.run(api.load_config("configs/xor_sweep.yaml"))  # a sweep: SweepResult
    net = api.build_network(config)                # a Network with initial weights
    A = net.forward(X)                             # X (n, inputs) -> (n, outputs)
    api.predict_run("runs/xor/<id>", "new.csv")    # apply a finished run to new data
    api.predict_shards("runs/xor/<id>", "shards/*.npy", "preds")  # one file per shard
    model = api.fit(config_without_data, X, y)     # a Model: predict, predict_proba, save
    api.Classifier(hidden=(32,)).fit(X, y)         # scikit-learn estimators (extra 'sklearn')

Errors: `ConfigError` for a config that does not validate, `UserError` for any other
mistake in the input (a data file, a run folder), `RunFailed` for a run that failed.
"""

import json
import os
import tempfile

from runner import checks
from runner.errors import RunFailed, UserError  # noqa: F401  (re-exported)
from runner.io import atomic, data, weights
from runner.model import Model, fit  # noqa: F401  (re-exported: a fit on arrays, a run as an object)
from runner.runs import build, experiment, folders, prepare, shards, sweep, tracking
from runner.runs.experiment import Outcome, Plan, execute  # noqa: F401  (re-exported)
from runner.runs.sweep import SweepResult, Trial  # noqa: F401  (re-exported)
from runner.runs.tracking import TrackingWarning  # noqa: F401  (re-exported)
from runner.vocabulary import PREDICT_BATCH
from schemas import ConfigError, json_schema, load_config, load_config_dict  # noqa: F401


def plan(config, out="runs"):
    """What `run` would do, running nothing: the Plan of a config (its id, folder and
    status), or for a config with a `sweep` section the list of its Trials."""
    if sweep.expands(config):
        return sweep.trials(config, out)
    return experiment.plan(config, out)


def rungs(config):
    """The rung plan of a sweep with `sweep.halving`: [(epochs, trials, new epochs)], each
    rung's epochs, how many trials reach it, and the epochs it computes at most; None
    without halving (runner/runs/halving.py)."""
    if config.sweep is None or config.sweep.halving is None:
        return None
    from runner.runs import halving

    steps, before = halving.plan(config, sweep.count(config)), 0
    out = []
    for epochs, keep in steps:
        out.append((epochs, keep, keep * (epochs - before)))
        before = epochs
    return out


def run(config, out="runs", force=False, workers=1, scheduler=None, on_epoch=None,
        on_trial=None, track=None, restart=False, threads=None):
    """Fit or forward `config` into `<out>/<name>/<id>/` and return its Outcome; a config
    with a `sweep` section or `data.folds` runs every trial and fold (in `workers` local
    processes, or on the Dask scheduler at `scheduler`), writes `<out>/<name>/sweep.csv`
    and returns a SweepResult.
    on_epoch(row) follows a single fit; on_trial(outcome) follows a sweep's trials. A
    fit left unfinished goes on from its last checkpoint (Outcome.resumed says from
    which epoch), unless `restart`.
    With track="mlflow" or a `track` section, each finished run (each trial) is then
    logged to MLflow (runner/runs/tracking.py); a store that fails is a TrackingWarning.
    `threads`: BLAS threads per run; default one for a fit too small for two, and each of
    `workers` processes its share of the cores (runner/runs/threads.py)."""
    spec = tracking.settings(config, track)
    if sweep.expands(config):
        result = sweep.execute(config, out, force, workers, scheduler, on_trial, restart,
                               threads)
        for trial in result.trials:
            tracking.log(spec, trial.plan.folder, sweep=config.name)
        return result
    p = experiment.plan(config, out)
    try:
        outcome = execute(p, force=force, on_epoch=on_epoch, restart=restart, threads=threads)
    except RunFailed:
        tracking.log(spec, p.folder)
        raise
    tracking.log(spec, p.folder)
    return outcome


def compare(paths, filters=None, sort=None, group=False):
    """The runs under `paths` (run folders, sweep folders or --out folders) side by side:
    a Comparison (runner/runs/compare.py) with one row per run (or per experiment over
    its seeds and folds, with `group`), the config keys that differ between them, the
    final metrics, status, epochs and seconds. `filters`: {key: text} a row must match;
    `sort`: a column, "-column" for descending."""
    from runner.runs import compare as comparing

    return comparing.compare(comparing.runs(paths), filters, sort, group)


def validate(path, overrides=(), check_data=False):
    """Check a config file (and with check_data its data files against the network).
    Returns (text, problems): the report to show (None when valid) and a list of
    {file, line, column, path, message} dicts."""
    return checks.check(path, overrides, check_data)


def resolved_yaml(path, overrides=()):
    """The config file `path` flat, as YAML text: the files it extends merged in, the
    overrides applied, defaults filled and paths absolute; what a run folder's
    config.yaml holds (a sweep keeps its `sweep` section). Raises ConfigError."""
    from schemas.yamlread import dump

    return dump(experiment.resolved(load_config(path, overrides)))


def summary(config):
    """The layer table of `config` as text: output shapes, parameters and FLOPs per row."""
    return checks.summary(config)


def schema():
    """The JSON Schema of a config file."""
    return json_schema()


def build_network(config, n_inputs=None):
    """The Network of `config` with its initial weights (drawn from the seed, or loaded
    from model.weights). n_inputs defaults to model.inputs or the data's width."""
    net = build.network(config, n_inputs or prepare.n_inputs(config))
    build.initial_weights(net, config, build.generators(config.seed)[0])
    return net


def _run_info(run_dir):
    """run.json of a complete run folder; a UserError saying what is wrong otherwise."""
    if not os.path.isdir(run_dir):
        raise UserError(f"{run_dir}: no such run folder (expected <out>/<name>/<id>/ "
                        "made by yamlnet run)")
    info = folders.read_info(run_dir)
    if not info:
        raise UserError(f"{run_dir}: not a run folder (no readable run.json); expected "
                        "<out>/<name>/<id>/ made by yamlnet run")
    if info.get("status") != "complete":
        raise UserError(f"{run_dir}: the run is {info.get('status')!r}, not complete; "
                        "run its config again (yamlnet run) to finish it")
    return info


def _run_config(run_dir):
    try:
        return load_config(os.path.join(run_dir, "config.yaml"))
    except ConfigError as e:
        raise UserError(f"{run_dir}: its config.yaml does not load:\n{e}") from None


def load_run(run_dir):
    """(config, net, arrays) of a finished run: its resolved config, the network with
    the saved weights, and every array of weights.npz (scaling statistics, classes)."""
    info = _run_info(run_dir)
    config = _run_config(run_dir)
    arrays = weights.load(os.path.join(run_dir, "weights.npz"))
    if "layers.0.W" not in arrays:
        raise UserError(f"{run_dir}/weights.npz: missing array 'layers.0.W'")
    net = build.network(config, arrays["layers.0.W"].shape[0])
    net.load_state(arrays, source=os.path.join(run_dir, "weights.npz"))
    return config, net, arrays, info


def _preprocess(run_dir):
    """The run's preprocess.json as data, or None when the run learned nothing beyond
    weights.npz."""
    path = os.path.join(run_dir, experiment.PREPROCESS)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not readable JSON ({e}); run the config again") from None


def _replay(run_dir, info, arrays):
    """The Replay of a finished run: its features, scaling, classes and preprocess.json."""
    return experiment.Replay(info.get("features"), tuple(info.get("exclude", ())),
                             data.Scaler.from_arrays(arrays), arrays.get("classes"),
                             _preprocess(run_dir))


def predict_run(run_dir, data_path, out=None, batch_size=PREDICT_BATCH, keep=(), fmt=None):
    """Apply the finished run in `run_dir` to `data_path`, replaying what the run learned
    (scaling, the plan of typed columns, class labels, target scaling; columns are found
    by name, in any order); writes .csv or .npy (`fmt`, by default the extension of
    `out`), with the input columns `keep` copied in front (csv only). Returns the output
    path, by default RUN_DIR/predictions-<data stem>.<fmt>."""
    config, net, arrays, info = load_run(run_dir)
    if out is None:
        stem = os.path.splitext(os.path.basename(data_path))[0]
        out = os.path.join(run_dir, f"predictions-{stem}.{fmt or 'csv'}")
    folders.refuse_own_file(run_dir, out)
    ext = os.path.splitext(out)[1].lower()
    named = "npy" if ext == ".npy" else "csv" if ext else fmt or "csv"  # no extension: --format
    if fmt not in (None, named):
        raise UserError(f"--format {fmt} but --out {out} is a .{named}; give a .{fmt} name")
    fmt = named
    if keep and fmt != "csv":
        raise UserError(f"--keep copies input columns into a .csv; {out} is a .npy")
    replay = shards.replay_for(_replay(run_dir, info, arrays), data_path)
    build.buffer_check(config, min(batch_size, build.row_bound(data_path)), "--batch-size", fmt)
    try:
        return experiment.predict(net, data_path, out, replay, fmt=fmt, batch_size=batch_size,
                                  keep=keep)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None


def is_sharded(data_path):
    """Whether `data_path` names shards for predict_shards: a folder or a glob pattern."""
    return shards.is_sharded(data_path)


def predict_shards(run_dir, data_path, out_dir, scheduler=None, fmt="csv",
                   batch_size=PREDICT_BATCH, keep=()):
    """Apply the finished run in `run_dir` to every shard of `data_path` (a folder of data
    files, or a glob pattern such as 'shards/*.npy'), in name order, writing one file per
    shard, `<out_dir>/<shard stem>.<fmt>`, each streamed as predict_run does: here, or as
    tasks on the Dask scheduler at `scheduler` (runner/runs/shards.py). Returns the
    written paths. A shard that fails leaves no file; the others are still predicted,
    then a UserError (RunFailed when all failures are overflowing outputs) names each
    failed shard, its `.written` the complete files."""
    if keep and fmt != "csv":
        raise UserError("--keep copies input columns into .csv predictions; not with "
                        f"--format {fmt}")
    config, net, arrays, info = load_run(run_dir)
    return shards.predict(config, net, _replay(run_dir, info, arrays), data_path, out_dir,
                          fmt=fmt, batch_size=batch_size, keep=keep, scheduler=scheduler)


def verify(run_dir):
    """Re-execute a finished run in a temporary folder and compare its outputs with the
    files in `run_dir` (history without its timing column): {name: identical}."""
    info = _run_info(run_dir)
    missing = [name for name in info.get("sha256") or {}
               if not os.path.exists(os.path.join(run_dir, name))]
    if missing:
        raise UserError(f"{run_dir}: {', '.join(missing)} missing (run.json lists "
                        f"{'them' if len(missing) > 1 else 'it'}); the folder is not a "
                        "complete run: run its config again to redo it")
    config = _run_config(run_dir)
    with tempfile.TemporaryDirectory(prefix="yamlnet-verify-") as tmp:
        p = experiment.plan(config, out=tmp)
        execute(p, force=True)
        report = {"id": p.id == info.get("id")}
        for name in folders.OUTPUTS:
            mine, fresh = os.path.join(run_dir, name), os.path.join(p.folder, name)
            if os.path.exists(mine) or os.path.exists(fresh):
                report[name] = folders.output_digest(mine) == folders.output_digest(fresh)
    return report


def export(run_dir, fmt="onnx", out=None):
    """Write the finished run in `run_dir` as an ONNX model (extra 'onnx'): its input
    preprocessing, the network and the output, as runner/runs/export.py describes; `out`
    defaults to RUN_DIR/model.onnx. Returns the path written."""
    if fmt != "onnx":
        raise UserError(f"unknown export format {fmt!r}; the one format is onnx")
    config, net, arrays, info = load_run(run_dir)
    saved = _preprocess(run_dir)
    from runner.runs import export as exporter  # imports onnx only when asked to

    model = exporter.onnx_model(config, net, arrays, info, saved)
    out = out or os.path.join(run_dir, "model.onnx")
    folders.refuse_own_file(run_dir, out)
    try:
        atomic.write_bytes(out, model)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    return out


def __getattr__(name):
    """Classifier and Regressor, the scikit-learn estimators, imported when first asked
    for: scikit-learn is an optional extra, needed by runner/estimators.py only."""
    if name in ("Classifier", "Regressor"):
        from runner import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
