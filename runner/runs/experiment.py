"""One experiment, from a validated config to a finished run folder (docs/run-folders.md).

`plan` names the folder without running anything; `execute` fits (when the config has
a `train` section) or runs a forward pass, then predicts, writing every file atomically
and recording the status in run.json: running -> complete | failed | interrupted.
"""

import json
import os
import shutil
from dataclasses import dataclass, field

import numpy as np

from runner.engine import train
from runner.errors import RunFailed, UserError, located
from runner.io import atomic, data, weights
from runner.io.digests import DigestCache
from runner.io.predictions import PredictionWriter
from runner.runs import build, folders
from runner.vocabulary import PREDICT_BATCH
from schemas import set_path


def resolved(config):
    """The fully resolved config as plain data, every file path made absolute."""
    tree = config.model_dump(mode="json")
    if tree.get("sweep") is None:
        tree.pop("sweep", None)
    for key, path in folders.input_files(tree).items():
        set_path(tree, key, os.path.abspath(path))
    return tree


@dataclass
class Plan:
    """Where a config's run lands and what is known of it before running."""

    config: object
    resolved: dict
    digests: dict
    id: str
    folder: str
    cache: DigestCache | None = None  # remembers the digests once the run folder exists

    @property
    def status(self):
        return folders.describe(self.folder)


def plan(config, out="runs", cache=None):
    """The Plan of `config`: its resolved form, input digests, id and folder."""
    tree = resolved(config)
    cache = cache or DigestCache(out)
    digests = {}
    for key, path in folders.input_files(tree).items():
        try:
            digests[key] = cache.digest(path)
        except FileNotFoundError:
            raise UserError(f"file not found: {path}", key) from None
        except IsADirectoryError:
            raise UserError(f"{path} is a folder, not a file", key) from None
    run_id = folders.run_id(tree, digests)
    return Plan(config, tree, digests, run_id, os.path.join(out, config.name, run_id), cache)


@dataclass
class Outcome:
    folder: str
    id: str
    status: str  # complete | failed | interrupted | skipped
    metrics: dict = field(default_factory=dict)
    error: str | None = None


def execute(p, force=False, on_epoch=None):
    """Run the Plan `p` into its folder, unless that folder is already complete.

    Raises UserError for bad data (the folder is removed), RunFailed for a fit that
    diverged (status failed), KeyboardInterrupt after marking the run interrupted."""
    if p.status == "complete" and not force:
        return Outcome(p.folder, p.id, "skipped", folders.read_info(p.folder).get("metrics", {}))
    folder = folders.RunFolder(p.folder)
    try:
        folder.start(p.resolved, {"id": p.id, "seed": p.config.seed, "inputs": p.digests})
        if p.cache is not None:
            p.cache.save()
        metrics = compute(p.config, folder, on_epoch)
        folder.finish("complete", metrics=metrics)
    except KeyboardInterrupt:
        folder.finish("interrupted")
        raise
    except RunFailed as e:
        folder.finish("failed", error=str(e))
        raise
    except UserError:
        shutil.rmtree(p.folder, ignore_errors=True)
        raise
    except OSError as e:  # the folder cannot be written: --out is a file, the disk is full
        try:
            folder.finish("failed", error=str(e))
        except OSError:
            pass
        raise UserError(f"cannot write the run folder {p.folder}: {e.filename or ''}: "
                        f"{e.strerror or e}; choose a writable --out folder") from None
    return Outcome(p.folder, p.id, "complete", metrics)


def compute(config, folder, on_epoch=None):
    """Fit or forward `config`, writing the outputs into `folder` (a RunFolder);
    returns the final metrics ({} for a forward pass). numpy's floating-point warnings
    are silenced: a loss or an output that is not finite is reported by the checks."""
    with np.errstate(all="ignore"):
        return _fit(config, folder, on_epoch) if config.train else _forward(config, folder)


def _fit(config, folder, on_epoch):
    init_rng, split_rng, shuffle_rng = build.generators(config.seed)
    prepared = build.training_data(config, split_rng)
    n, spec = prepared.X.shape[0], config.train
    build.buffer_check(config, train.batch_rows(spec, n), "train.batch_size")
    build.buffer_check(config, min(train.EVAL_BATCH, n), None)  # evaluation, every epoch
    _check_predict_batch(config)
    net = build.network(config, prepared.X.shape[1])
    build.initial_weights(net, config, init_rng)
    optimizer = build.optimizer(config, net)
    try:
        result = train.fit(net, optimizer, prepared.X, prepared.Y, spec, shuffle_rng,
                           val=prepared.val, on_epoch=on_epoch)
    except train.Diverged as e:  # the epochs before the divergence are kept for study
        if e.history:
            write_history(folder.file("history.csv"), e.history)
        raise
    write_history(folder.file("history.csv"), result.history)
    extra = prepared.scaler.arrays()
    if prepared.classes is not None:
        extra["classes"] = prepared.classes
    weights.save(folder.file("weights.npz"), {**net.state(), **extra})
    metrics = train.evaluate(net, prepared.X, prepared.Y, spec.loss, spec.metrics)
    if prepared.val is not None:
        scores = train.evaluate(net, *prepared.val, spec.loss, spec.metrics)
        metrics.update({"val_" + key: value for key, value in scores.items()})
    metrics["epochs"] = len(result.history)
    metrics["best_epoch"] = result.best_epoch
    atomic.write_text(folder.file("metrics.json"), json.dumps(metrics, indent=2) + "\n")
    plot_history(folder.file("loss.png"), result.history)
    features = prepared.feature_names if build.is_csv(config.data.path) else config.data.features
    folder.info.update(features=features, targets=prepared.target_names)
    _predict_into(folder, net, config, prepared.scaler, prepared.classes, features)
    return metrics


def _forward(config, folder):
    init_rng = build.generators(config.seed)[0]
    d = config.data
    _, source, key = config.prediction()
    exclude = tuple([d.targets] if isinstance(d.targets, str) else d.targets or ())
    with located(key):
        info = data.inspect(source, features=d.features, targets=d.targets)
    build.check_inputs(config, info.n_features, source)
    _check_predict_batch(config)
    net = build.network(config, info.n_features)
    arrays = build.initial_weights(net, config, init_rng)
    scaler = data.Scaler.from_arrays(arrays)
    if scaler.kind == "none" and d.scale != "none":
        with located(key):
            chunks = data.stream(source, features=d.features, batch_size=65536,
                                 dtype=config.dtype, exclude=exclude)
            scaler = data.Scaler.fit_stream(d.scale, chunks)
    weights.save(folder.file("weights.npz"), {**net.state(), **scaler.arrays()})
    folder.info.update(features=d.features, exclude=list(exclude))
    _predict_into(folder, net, config, scaler, arrays.get("classes"), d.features, exclude)
    return {}


def _check_predict_batch(config):
    """Refuse predict.batch_size when its work buffers would not fit (build.buffer_check)."""
    spec, source, _ = config.prediction()
    batch = min(spec.batch_size, build.row_bound(source))
    build.buffer_check(config, batch, "predict.batch_size", spec.format)


def predict(net, source, out, *, fmt="csv", batch_size=PREDICT_BATCH, scaler=None, classes=None,
            features=None, exclude=()):
    """Stream the rows of `source` through `net` in minibatches of batch_size and write
    the predictions to `out` as they come (docs/data.md). Returns `out`."""
    chunks = data.stream(source, features=features, batch_size=batch_size,
                         dtype=net.dtype.name, exclude=exclude)
    with np.errstate(all="ignore"), PredictionWriter(
            out, fmt=fmt, n_outputs=net.sizes[-1], dtype=net.dtype.name, classes=classes) as writer:
        done = 0
        for X in chunks:
            if scaler is not None:
                scaler.apply(X)
            A = net.forward(X)
            if not np.isfinite(A).all():
                row = done + int(np.flatnonzero(~np.isfinite(A).all(axis=1))[0]) + 1
                raise RunFailed(f"{source}: the outputs overflow to inf or NaN at data row "
                                f"{row} (counting from 1); try scaling the features "
                                "(data.scale: standard) or smaller initial weights")
            writer.write(A)
            done += len(X)
    return out


def _predict_into(folder, net, config, scaler, classes, features, exclude=()):
    """The predictions of a run: predict.path (default data.path) into its folder."""
    spec, source, key = config.prediction()
    with located(key):
        predict(net, source, folder.file("predictions." + spec.format), fmt=spec.format,
                batch_size=spec.batch_size, scaler=scaler, classes=classes,
                features=features, exclude=exclude)


HISTORY_ORDER = ("epoch", "loss", "val_loss")


def history_columns(rows):
    keys = list(rows[0])
    metrics = [k for k in keys if k not in HISTORY_ORDER + ("seconds",) and not k.startswith("val_")]
    columns = [k for k in HISTORY_ORDER if k in keys] + metrics
    return columns + [f"val_{m}" for m in metrics if f"val_{m}" in keys] + ["seconds"]


def write_history(path, rows):
    """history.csv: epoch, loss, val_loss, metrics, val_metrics, seconds; floats in
    round-trip precision (repr)."""
    atomic.write_csv(path, history_columns(rows), rows)


def plot_history(path, rows):
    """loss.png: training and validation loss per epoch (drawn by runner.plot, not
    matplotlib, whose import alone would take longer than a small fit)."""
    from runner.io.plot import losses_png

    atomic.write_bytes(path, losses_png(rows))
