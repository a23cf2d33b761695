"""One experiment, from a validated config to a finished run folder (docs/run-folders.md).

`plan` names the folder without running anything; `execute` fits (when the config has
a `train` section) or runs a forward pass, then predicts, writing every file atomically
and recording the status in run.json: running -> complete | failed | interrupted.
"""

import json
import os
import shutil
import time
from dataclasses import dataclass, field

import numpy as np

from runner.engine import train
from runner.errors import RunFailed, UserError, count, located
from runner.io import atomic, checkpoints, data, preprocess, table, weights
from runner.io.digests import DigestCache
from runner.io.predictions import PredictionWriter
from runner.runs import build, folders, prepare
from runner.runs import threads as blas
from runner.vocabulary import PREDICT_BATCH
from schemas import set_path

PREPROCESS = "preprocess.json"  # what a run learned beyond weights.npz, replayed by predict
STREAM_CHARS = 1 << 20  # characters of a table per block when predicting: raw cells take
# about 20 bytes per character, so a block holds some 20 MiB whatever the file's size


def resolved(config):
    """The fully resolved config as plain data, every file path made absolute."""
    tree = config.model_dump(mode="json")
    if tree.get("sweep") is None:
        tree.pop("sweep", None)
    tree.pop("track", None)  # where runs are logged is not part of the run (nor of its id)
    if tree["data"].get("memory") == "auto":  # how a fit holds its rows: not in the id (plan)
        tree["data"].pop("memory")
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
    until: int | None = None  # a successive-halving rung: halt the fit after this epoch

    @property
    def status(self):
        return folders.describe(self.folder)


def done(p):
    """Whether the Plan `p` has nothing left to compute: its folder is complete, or (with
    p.until) halted at epoch p.until or later."""
    info = folders.read_info(p.folder)
    if info.get("status") == "complete":
        return True
    return p.until is not None and info.get("status") == "halted" \
        and info.get("halted_at", 0) >= p.until


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
    same = {**tree, "data": {k: v for k, v in tree["data"].items() if k != "memory"}}
    run_id = folders.run_id(same, digests)  # data.memory changes no result: not in the id
    return Plan(config, tree, digests, run_id, os.path.join(out, config.name, run_id), cache)


@dataclass
class Outcome:
    folder: str
    id: str
    status: str  # complete | failed | interrupted | skipped (| busy: execute(wait=False))
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    resumed: int | None = None  # the epoch a fit went on from, after a checkpoint
    elsewhere: bool = False  # skipped: another process computed it while this one waited


def execute(p, force=False, on_epoch=None, restart=False, wait=True, since=None, threads=None):
    """Run the Plan `p` into its folder, unless that folder is already complete. A fit
    left running (killed) or interrupted goes on from its last checkpoint, unless
    `restart` (or `force`) asks for a fresh start.

    One process at a time works on a folder (folders.Lock): while another holds it,
    this one waits, then takes the other's result when it finished the run meanwhile
    (complete: skipped, even with force, as it is as fresh as can be; failed: RunFailed),
    so no run is ever computed twice at once. With wait=False, a folder another
    process holds is left alone at once: Outcome status `busy`; `since` (a time.time())
    says when it was found busy, so that what another process finished after it is
    taken as that process's result even if the lock was free by the time we came back.

    BLAS uses `threads` threads, by default as many as the work of a step calls for
    (runner/runs/threads.py).

    Raises UserError for bad data (the folder is removed), RunFailed for a fit that
    diverged (status failed), KeyboardInterrupt after marking the run interrupted."""
    lock, asked = folders.Lock(p.folder), since or time.time()
    try:
        if not lock.acquire(wait):
            return Outcome(p.folder, p.id, "busy")
    except OSError as e:  # --out is a file, or cannot be written
        raise UserError(f"cannot write the run folder {p.folder}: {e.filename or ''}: "
                        f"{e.strerror or e}; choose a writable --out folder") from None
    try:
        info = folders.read_info(p.folder) if lock.waited or since else {}
        elsewhere = info.get("finished", 0) >= asked  # finished by the process we waited for
        if elsewhere and info.get("status") == "failed":
            raise RunFailed(f"{info.get('error')} (computed by another process while this "
                            "one waited)")
        with blas.limited(blas.for_run(p.config, threads)):
            return _execute(p, force and not elsewhere, on_epoch, restart, elsewhere)
    finally:
        lock.release()


def _execute(p, force, on_epoch, restart, elsewhere):
    if not force and done(p):
        return Outcome(p.folder, p.id, "skipped", folders.read_info(p.folder).get("metrics", {}),
                       elsewhere=elsewhere)
    resume = None
    if p.config.train is not None and not (restart or force) and p.status in ("partial",
                                                                             "halted"):
        resume = checkpoints.load(p.folder, p.id)
    folder = folders.RunFolder(p.folder)
    try:
        folder.start(p.resolved, {"id": p.id, "seed": p.config.seed, "inputs": p.digests},
                     keep=resume is not None)
        if p.cache is not None:
            p.cache.save()
        if resume is not None:
            folder.info["resumed"] = resume.epoch
        metrics = compute(p.config, folder, on_epoch, resume, p.until)
        status = "halted" if "halted_at" in folder.info else "complete"
        if status == "complete":
            checkpoints.remove(folder.path)
        folder.finish(status, metrics=metrics)
    except KeyboardInterrupt:
        if folder.info.get("status") != "complete":  # a Ctrl-C after the end changes nothing
            folder.finish("interrupted")
        raise
    except RunFailed as e:
        checkpoints.remove(folder.path)
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
    return Outcome(p.folder, p.id, status, metrics,
                   resumed=None if resume is None else resume.epoch)


def compute(config, folder, on_epoch=None, resume=None, until=None):
    """Fit or forward `config`, writing the outputs into `folder` (a RunFolder);
    returns the final metrics ({} for a forward pass); a fit goes on from the
    train.Checkpoint `resume` when given, and with `until` halts after that epoch
    (see _halted). numpy's floating-point warnings are silenced: a loss or an output
    that is not finite is reported by the checks."""
    with np.errstate(all="ignore"):
        if config.train:
            return _fit(config, folder, on_epoch, resume, until)
        return _forward(config, folder)


AUTO_CHECKPOINT = 60.0  # seconds between checkpoints when train.checkpoint_every is null


def _due(every):
    """due(epoch): whether to checkpoint after that epoch: every N epochs, never (0), or
    (None) once AUTO_CHECKPOINT seconds have passed since the last one."""
    if every is not None:
        return lambda epoch: bool(every) and epoch % every == 0
    last = [time.monotonic()]

    def due(epoch):
        if time.monotonic() - last[0] < AUTO_CHECKPOINT:
            return False
        last[0] = time.monotonic()
        return True

    return due


def _fit(config, folder, on_epoch, resume=None, until=None):
    init_rng, split_rng, shuffle_rng = build.generators(config.seed)
    prepare.check_prediction_source(config)
    prepared = prepare.training_data(config, split_rng)
    n, spec = prepared.X.shape[0], config.train
    build.buffer_check(config, train.batch_rows(spec, n), "train.batch_size")
    build.buffer_check(config, min(train.EVAL_BATCH, n), None)  # evaluation, every epoch
    _check_predict_batch(config)
    net = build.network(config, prepared.X.shape[1])
    build.initial_weights(net, config, init_rng)
    optimizer = build.optimizer(config, net)
    saved = prepared.preprocess or {}
    unscale = None
    if "targets" in saved:  # metrics in the target's own units
        def unscale(Y):
            return preprocess.decode_targets(saved["targets"], Y)
    if resume is not None and on_epoch is not None:  # progress goes on from epoch K
        for row in resume.history:
            on_epoch(row)
    run_id = folder.info.get("id")
    try:
        result = train.fit(net, optimizer, prepared.X, prepared.Y, spec, shuffle_rng,
                           val=prepared.val, on_epoch=on_epoch, unscale=unscale,
                           schedule=build.schedule(config, optimizer), clip=build.clip(config),
                           weights=prepared.weights, drop_rng=build.dropout_generator(config.seed),
                           resume=resume, due=_due(spec.checkpoint_every), until=until,
                           on_checkpoint=lambda c: checkpoints.save(folder.path, c, run_id))
    except train.Diverged as e:  # the epochs before the divergence are kept for study
        if e.history:
            write_history(folder.file("history.csv"), e.history)
        raise
    if result.halted:
        return _halted(folder, result)
    checkpoints.remove(folder.path)  # the fit is done: nothing to go on from
    write_history(folder.file("history.csv"), result.history)
    extra = prepared.scaler.arrays()
    if prepared.classes is not None:
        extra["classes"] = prepared.classes
    weights.save(folder.file("weights.npz"), {**net.state(), **extra})
    if prepared.preprocess is not None:
        atomic.write_text(folder.file(PREPROCESS), json.dumps(prepared.preprocess, indent=1) + "\n")
    metrics = train.evaluate(net, prepared.X, prepared.Y, spec.loss, spec.metrics, unscale=unscale)
    if prepared.val is not None:
        scores = train.evaluate(net, *prepared.val, spec.loss, spec.metrics, unscale=unscale)
        metrics.update({"val_" + key: value for key, value in scores.items()})
    metrics["epochs"] = len(result.history)
    metrics["best_epoch"] = result.best_epoch
    atomic.write_text(folder.file("metrics.json"), json.dumps(metrics, indent=2) + "\n")
    plot_history(folder.file("loss.png"), result.history)
    named = config.data.path.lower().endswith(prepare.NAMED)
    features = prepared.feature_names if named else config.data.features
    folder.info.update(features=features, targets=prepared.target_names)
    replay = Replay(features, (), prepared.scaler, prepared.classes, prepared.preprocess)
    del prepared  # the rows: freed before the predictions stream the file again
    _predict_into(folder, net, config, replay)
    return metrics


def _halted(folder, result):
    """A fit halted at a rung of successive halving: history.csv so far and the
    checkpoint it goes on from (no weights or predictions yet). Marks folder.info
    `halted_at`; returns as the metrics the history row of the weights the fit keeps
    (its best_epoch), with epochs and best_epoch."""
    write_history(folder.file("history.csv"), result.history)
    epochs = len(result.history)
    folder.info["halted_at"] = epochs
    kept = result.history[result.best_epoch - 1]
    metrics = {k: v for k, v in kept.items() if k not in ("epoch", "lr", "seconds")}
    return {**metrics, "epochs": epochs, "best_epoch": result.best_epoch}


def _forward(config, folder):
    init_rng = build.generators(config.seed)[0]
    d = config.data
    _, source, key = config.prediction()
    if d.column_types() is not None:
        raise UserError("typed columns are learned by a fit: give the run a train section, "
                        "or list numeric feature columns", "data.features")
    exclude = tuple(str(t) for t in ([d.targets] if isinstance(d.targets, (str, int))
                                     else d.targets or ()))
    dialect = prepare.dialect(config)
    with located(key):
        info = data.inspect(source, features=d.features, targets=d.targets, dialect=dialect)
    build.check_inputs(config, info.n_features, source)
    _check_predict_batch(config)
    net = build.network(config, info.n_features)
    arrays = build.initial_weights(net, config, init_rng)
    scaler = data.Scaler.from_arrays(arrays)
    if scaler.kind == "none" and d.scale != "none":
        with located(key):
            chunks = data.stream(source, features=d.features, batch_size=65536,
                                 dtype=config.dtype, exclude=exclude, dialect=dialect)
            scaler = data.Scaler.fit_stream(d.scale, chunks)
    weights.save(folder.file("weights.npz"), {**net.state(), **scaler.arrays()})
    saved = {"format": preprocess.FORMAT, "dialect": dialect} if prepare.dialect_used(config) \
        else None
    if saved is not None:
        atomic.write_text(folder.file(PREPROCESS), json.dumps(saved, indent=1) + "\n")
    # a table's columns are read by name later, as a fit's are (not by position)
    features = info.feature_names if source.lower().endswith(prepare.NAMED) else d.features
    folder.info.update(features=features, exclude=list(exclude))
    replay = Replay(features, exclude, scaler, arrays.get("classes"), saved)
    _predict_into(folder, net, config, replay)
    return {}


def _check_predict_batch(config):
    """Refuse predict.batch_size when its work buffers would not fit (build.buffer_check)."""
    spec, source, _ = config.prediction()
    batch = min(spec.batch_size, build.row_bound(source))
    build.buffer_check(config, batch, "predict.batch_size", spec.format)


@dataclass
class Replay:
    """What a run applies to new rows around its network: the feature columns (listed
    names, or None: all but `exclude`), the scaling of listed numeric features, the class
    labels, and preprocess.json (the dialect, the plan of typed columns, the label pair,
    the scaling of regression targets) or None."""

    features: list | str | None = None
    exclude: tuple = ()
    scaler: data.Scaler | None = None
    classes: np.ndarray | None = None
    preprocess: dict | None = None

    def part(self, key):
        return (self.preprocess or {}).get(key)


def predict(net, source, out, replay=None, *, fmt="csv", batch_size=PREDICT_BATCH, keep=()):
    """Stream the rows of `source` through `net` in minibatches of batch_size, with the
    run's `replay` (a Replay) before and after, and write the predictions to `out` as
    they come (docs/run-folders.md); `keep`: input columns copied in front. Returns `out`."""
    replay = replay or Replay()
    targets = replay.part("targets")
    with np.errstate(all="ignore"), PredictionWriter(
            out, fmt=fmt, n_outputs=net.sizes[-1], dtype=net.dtype.name, classes=replay.classes,
            keep=keep) as writer:
        done = 0
        for X, kept, ok in _batches(source, replay, batch_size, net.dtype.name, keep,
                                    net.sizes[0]):
            A = net.forward(X)
            if not np.isfinite(A).all():
                row = done + int(np.flatnonzero(~np.isfinite(A).all(axis=1))[0]) + 1
                raise RunFailed(f"{source}: the outputs overflow to inf or NaN at data row "
                                f"{row} (counting from 1); try scaling the features "
                                "(data.scale: standard) or smaller initial weights")
            if targets is not None:
                A = preprocess.decode_targets(targets, A)
            if ok is not None and not ok.all():  # rows drop_row leaves out: no prediction
                full = np.full((len(ok), A.shape[1]), np.nan)
                full[ok] = A
                A = full
            writer.write(A, kept)
            done += len(X)
    return out


def _batches(source, replay, batch_size, dtype, keep, inputs):
    """(X (m, inputs) of dtype, {kept column: (b,) str}, ok (b,) bool or None) in file
    order: ok marks the b rows of the batch that X holds (None: all of them). A file
    without column names must hold the `inputs` columns the run was fitted on, in order."""
    state, dialect = replay.part("features"), replay.part("dialect")
    if (state is not None or keep) and not source.lower().endswith(prepare.NAMED):
        need = "--keep copies named columns" if keep else "the run encodes typed columns by name"
        raise UserError(f"{source}: {need}, and this file has no column names; give a "
                        f"table with a header ({', '.join(prepare.NAMED)})")
    if state is None and not keep:
        for X in data.stream(source, features=replay.features, batch_size=batch_size,
                             dtype=dtype, exclude=replay.exclude, dialect=dialect):
            if X.shape[1] != inputs:
                raise UserError(f"{source}: {count(X.shape[1], 'feature column')}, but the run was "
                                f"fitted on {inputs}; give the same columns in the same order")
            if replay.scaler is not None:
                replay.scaler.apply(X)
            yield X, None, None
        return
    yield from _table_batches(source, replay, batch_size, dtype, keep)


def _table_batches(source, replay, batch_size, dtype, keep):
    """The rows of a table with named columns, found by name in any order: typed columns
    encoded by the run's plan, listed ones read as numbers and scaled."""
    state = replay.part("features")
    dialect = {**table.PLAIN, **(replay.part("dialect") or {})}
    if dialect["header"]:
        dialect["delimiter"] = None  # found again in the file's header line
    if state is not None:
        columns = [c["name"] for c in state["columns"]]
    else:
        names = table.read_header(source, delimiter=dialect["delimiter"], header=dialect["header"],
                                  decimal=dialect["decimal"])[0]
        columns = data.feature_columns(replay.features, names, replay.exclude)
    wanted = list(dict.fromkeys(columns + list(keep)))
    for chunk in table.iter_table(source, wanted, **dialect, block_chars=STREAM_CHARS):
        ok = None
        if state is not None:
            encoded = preprocess.transform(state, chunk, dtype)
            X, ok = encoded.X, encoded.kept  # rows drop_row leaves out get no prediction
        else:
            table.refuse_missing(chunk, columns, "every feature cell needs a value")
            X = np.ascontiguousarray(table.numbers(chunk, columns), dtype)
            if replay.scaler is not None:
                replay.scaler.apply(X)
        ok = np.ones(len(chunk), bool) if ok is None else ok
        at = np.cumsum(ok) - ok  # the row of X of each table row
        for start in range(0, len(chunk), batch_size):
            part = slice(start, start + batch_size)
            mine = ok[part]
            yield X[at[start]:at[start] + int(mine.sum())], \
                {k: chunk.values[k][part] for k in keep}, mine


def _predict_into(folder, net, config, replay):
    """The predictions of a run: predict.path (default data.path) into its folder."""
    spec, source, key = config.prediction()
    with located(key):
        predict(net, source, folder.file("predictions." + spec.format), replay,
                fmt=spec.format, batch_size=spec.batch_size, keep=spec.keep or ())


HISTORY_ORDER = ("epoch", "lr", "loss", "val_loss")


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
