"""Predictions over many data files (shards): one predictions file per shard, locally one
after another or as tasks on a Dask cluster (docs/cli.md#predict).

Every shard is attempted: one that fails leaves no file of its own (atomic writes) and
is reported by name at the end; the others' files are complete. On Dask the client
scatters the run (config, weights, replay) to every worker once; a worker reads a shard
from its path when it sees the same file there (same size and modification time),
otherwise the client ships the shard's bytes; the worker returns the predictions
file(s) as bytes and the client writes them, so the output is the local run's, byte
for byte.
"""

import glob
import os
import shutil
import tempfile
from dataclasses import replace

from runner.errors import RunFailed, UserError
from runner.io import atomic
from runner.io.digests import stat_key as _stamp  # what tells a worker it sees our file
from runner.io.predictions import labels_path
from runner.io.sources import FORMATS
from runner.runs import build, experiment, parallel, prepare
from runner.runs import threads as blas

MAGIC = "*?["  # a --data holding one of these (and naming no file) is a glob pattern


def is_sharded(path):
    """Whether `path` names shards: a folder, or a glob pattern that is not a file's name."""
    return os.path.isdir(path) or (any(c in path for c in MAGIC) and not os.path.isfile(path))


def find(path):
    """The shards of `path`, sorted by name: the data files (by extension, FORMATS) of a
    folder, or the files a glob pattern matches (`**` spans folders)."""
    if os.path.isdir(path):
        found = [os.path.join(path, n) for n in os.listdir(path) if not n.startswith(".")
                 and os.path.splitext(n)[1].lower() in FORMATS]
        where = f"the folder {path} holds no data files ({', '.join(FORMATS)})"
    else:
        found = glob.glob(path, recursive=True)
        where = f"no file matches the pattern {path!r}"
    found = sorted(p for p in found if os.path.isfile(p))
    if not found:
        raise UserError(f"--data {path}: {where}; give a folder of shards or a pattern "
                        "such as 'shards/*.npy'")
    return found


def outputs(shards, out_dir, fmt):
    """{shard: its predictions file}, `<out_dir>/<shard stem>.<fmt>`; refuses, before
    anything is read, a shard of an unknown format, an output over a shard, and two
    shards that would write one file."""
    made, inputs, owners = {}, {os.path.realpath(s): s for s in shards}, {}
    for shard in shards:
        ext = os.path.splitext(shard)[1].lower()
        if ext not in FORMATS:
            raise UserError(f"{shard}: unknown data format {ext or '(no extension)'!r}; "
                            f"valid: {', '.join(FORMATS)}")
        out = os.path.join(out_dir, os.path.splitext(os.path.basename(shard))[0] + "." + fmt)
        for path in (out, labels_path(out)) if fmt == "npy" else (out,):
            real = os.path.realpath(path)
            if real in inputs:
                raise UserError(f"--out {out_dir}: {shard} would write {path}, over the "
                                f"shard {inputs[real]}; choose another --out folder")
            other = owners.setdefault(real, shard)
            if other != shard:
                raise UserError(f"--out {out_dir}: {other} and {shard} would both write "
                                f"{path}; rename one of them")
        made[shard] = out
    return made


def replay_for(replay, source):
    """The run's Replay for `source`: listed feature names apply to files with named
    columns only; an array file (.npy, .npz) gives its columns in the fitted order."""
    if not source.lower().endswith(prepare.NAMED) and isinstance(replay.features, list):
        return replace(replay, features=None)
    return replay


def predict(config, net, replay, path, out_dir, *, fmt="csv", batch_size, keep=(),
            scheduler=None):
    """Predict every shard of `path` (a folder or a glob pattern) into `out_dir` (made
    when missing): here, or on the Dask scheduler at `scheduler`. Returns the written
    files in shard order; raises a UserError (a RunFailed when every failure is one)
    naming each shard that failed, with `.written`, the files that were completed."""
    shards = find(path)
    made = outputs(shards, out_dir, fmt)
    build.buffer_check(config, min(batch_size, max(map(build.row_bound, shards))),
                       "--batch-size", fmt)
    settings = dict(fmt=fmt, batch_size=batch_size, keep=tuple(keep))
    if scheduler:
        with parallel.connect(scheduler) as client:  # an unreachable one: nothing made
            _make(out_dir)
            failed = _on_dask(client, config, net, replay, made, settings)
    else:
        _make(out_dir)
        failed = {}
        for shard, out in made.items():
            failure = _attempt(net, replay, shard, out, shard, settings)
            if failure:
                failed[shard] = failure
    written = [out for shard, out in made.items() if shard not in failed]
    if failed:
        raise _failure(written, [failed[s] for s in shards if s in failed], len(shards))
    return written


def _make(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise UserError(f"--out {out_dir}: is a file; the shards' predictions go into a "
                        "folder (one file per shard): give a folder path")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {out_dir}: cannot make the folder: {e.strerror or e}") from None


def _attempt(net, replay, source, out, name, settings):
    """Predict `source` into `out`; None, or (kind, message) naming the shard as `name`:
    kind "user" for a mistake in the data, "failed" for outputs that overflow."""
    try:
        experiment.predict(net, source, out, replay_for(replay, source), **settings)
    except (UserError, RunFailed) as e:
        text = str(e).replace(source, name)
        if name not in text:
            text = f"{name}: {text}"
        return ("user" if isinstance(e, UserError) else "failed"), text
    except OSError as e:
        if e.filename and os.path.abspath(e.filename) == os.path.abspath(source):
            return "user", f"{name}: cannot read: {e.strerror or e}"
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    return None


def _failure(written, failures, n):
    """The error of a run in which `failures` [(kind, message)] of `n` shards failed."""
    lines = "".join(f"\n  {message}" for _, message in failures)
    text = (f"{len(failures)} of {n} shards failed (no file written for them; "
            f"{len(written)} written):{lines}")
    error = UserError(text) if any(k == "user" for k, _ in failures) else RunFailed(text)
    error.written = written
    return error


def _on_dask(client, config, net, replay, made, settings):
    """Run the shards {shard: out} as tasks through the Dask `client`, writing each
    returned file as it comes. {shard: (kind, message)} of those that failed."""
    from distributed import as_completed

    failed = {}
    [run] = client.scatter([(config, net.state(), replay)], broadcast=True)
    futures = {_submit(client, run, shard, out, settings): shard for shard, out in made.items()}
    try:
        tasks = as_completed(futures)
        for future in tasks:
            shard = futures[future]
            try:
                status, result = future.result()
            except Exception as e:  # the task itself broke: a worker died, ...
                status, result = "error", ("failed", f"{shard}: the task failed on the "
                                           f"cluster: {type(e).__name__}: {e}")
            if status == "unseen":  # the worker has no such file: send its bytes
                with open(shard, "rb") as f:
                    [blob] = client.scatter([f.read()])
                again = _submit(client, run, shard, made[shard], settings, blob)
                futures[again] = shard
                tasks.add(again)
            elif status == "ok":
                for name, data in result.items():
                    _write(os.path.join(os.path.dirname(made[shard]), name), data)
            else:
                failed[shard] = result
    except BaseException:
        client.cancel(list(futures))
        raise
    return failed


def _submit(client, run, shard, out, settings, blob=None):
    """The task predicting `shard` into a file named as `out`: read from its path (if the
    worker sees the same file) or, with `blob`, from the shard's bytes."""
    path, stamp = (None, None) if blob is not None else (os.path.abspath(shard), _stamp(shard))
    return client.submit(remote_shard, run, path, stamp, blob, shard, os.path.basename(out),
                         settings, pure=False)


def _write(path, data):
    try:
        atomic.write_bytes(path, data)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None


def remote_shard(run, path, stamp, blob, name, out_name, settings):
    """On a worker: predict one shard with the scattered run (config, weights, replay),
    read from `path` when this machine's file there has the client's `stamp`, else
    from `blob`, its bytes (None: not sent yet). Returns ("ok", {file name: bytes}),
    ("unseen", None) when the path is not seen and no bytes came, or ("error",
    (kind, message)), the message naming the shard as `name`."""
    from distributed import get_worker

    if blob is None:
        try:
            if _stamp(path) != list(stamp):
                return "unseen", None
        except OSError:
            return "unseen", None
    config, arrays, replay = run
    net = build.network(config, arrays["layers.0.W"].shape[0])
    net.load_state(arrays)
    tmp = tempfile.mkdtemp(prefix="yamlnet-shard-")
    try:
        if blob is not None:
            path = os.path.join(tmp, os.path.basename(name))
            with open(path, "wb") as f:
                f.write(blob)
        os.mkdir(os.path.join(tmp, "out"))
        out = os.path.join(tmp, "out", out_name)
        with blas.limited(blas.per_worker(get_worker().state.nthreads)):
            failure = _attempt(net, replay, path, out, name, settings)
        if failure:
            return "error", failure
        files = {}
        for file in sorted(os.listdir(os.path.join(tmp, "out"))):
            with open(os.path.join(tmp, "out", file), "rb") as f:
                files[file] = f.read()
        return "ok", files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
