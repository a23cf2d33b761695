"""Run folders: content-addressed ids, status, and the files every run leaves.

A run lands in `<out>/<name>/<id>/`, where `<id>` is the first 12 hex digits of the
sha256 of the canonical resolved config plus the sha256 of every file it reads. Only a
folder whose run.json says `complete` is trusted; any other state is redone.
"""

import fcntl
import hashlib
import json
import os
import platform
import shutil
import sys
import time

import numpy as np

from runner.errors import UserError
from runner.io import atomic
from runner.io.digests import file_sha256
from runner.vocabulary import PATH_KEYS
from schemas import get_path, set_path
from schemas.yamlread import dump

OUTPUTS = ("weights.npz", "history.csv", "predictions.csv", "predictions.npy", "preprocess.json")
FINISHED = ("config.yaml", "run.json", *OUTPUTS, "predictions_labels.npy", "metrics.json",
            "loss.png")  # every file a finished run folder can hold
OWN = (*FINISHED, "checkpoint.npz")  # and an unfinished one's


def refuse_own_file(run_dir, out):
    """UserError when the path `out` (an --out of predict or export) names one of the
    files `yamlnet run` wrote into `run_dir`: writing it would change the run."""
    name = os.path.basename(out)
    here = os.path.realpath(os.path.dirname(out) or ".")
    if name in OWN and here == os.path.realpath(run_dir):
        raise UserError(f"--out {out}: that is the run's own {name}, which writing would "
                        "replace; give another name, or a path outside the run folder")


def input_files(resolved):
    """{dotted key: path} of every file a resolved config (a dict) reads."""
    files = {key: get_path(resolved, key, None) for key in PATH_KEYS}
    return {key: path for key, path in files.items() if path is not None}


def run_id(resolved, digests):
    """12 hex digits naming the experiment: the resolved config with every file path
    replaced by its content digest, so moving the data does not change the id."""
    canonical = json.loads(json.dumps(resolved))
    for key, value in digests.items():
        set_path(canonical, key, value)
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_info(folder):
    """The contents of folder/run.json, or {} when there is none readable."""
    try:
        with open(os.path.join(folder, "run.json")) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def read_status(folder):
    """The status recorded in folder/run.json, or None when there is none readable."""
    return read_info(folder).get("status")


def describe(folder):
    """complete | halted (at a rung of successive halving) | failed | partial | pending,
    as `run --dry-run` shows it."""
    status = read_status(folder)
    if status in ("complete", "halted", "failed"):
        return status
    return "partial" if os.path.isdir(folder) else "pending"


def versions():
    from runner import __version__

    return {
        "yamlnet": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def output_digest(path):
    """sha256 of an output file, or None when absent. history.csv is digested without
    its `seconds` column, the one part of a run that is not reproducible."""
    if not os.path.exists(path):
        return None
    if os.path.basename(path) != "history.csv":
        return file_sha256(path)
    with open(path) as f:
        rows = [line.rstrip("\n").split(",") for line in f]
    keep = [i for i, name in enumerate(rows[0]) if name != "seconds"] if rows else []
    text = "\n".join(",".join(row[i] for i in keep) for row in rows)
    return hashlib.sha256(text.encode()).hexdigest()


class RunFolder:
    """The folder of one run: created fresh, marked running, then finished."""

    def __init__(self, path):
        self.path = path
        self.info = {}

    def file(self, name):
        return os.path.join(self.path, name)

    def start(self, resolved, info, keep=False):
        """Empty the folder (a partial run is redone from scratch; with keep, a resumed
        one keeps its files), write config.yaml and run.json with status `running`."""
        if os.path.isdir(self.path) and not keep:
            shutil.rmtree(self.path)
        elif os.path.isdir(self.path):  # a kill mid-write may have left a temporary file
            for name in os.listdir(self.path):
                if name.startswith(atomic.PREFIX):
                    os.remove(self.file(name))
        os.makedirs(self.path, exist_ok=True)
        atomic.write_text(self.file("config.yaml"), dump(resolved))
        self.info = dict(info, status="running", started=time.time(), versions=versions())
        self.info["argv"] = list(sys.argv)
        self._write_info()

    def finish(self, status, seconds=None, **extra):
        """Record the final status, timings and the digests of the outputs (nothing when
        start() did not get as far as writing run.json). `seconds`: the run's own wall
        time when it was computed elsewhere (a Dask worker); default finished - started."""
        if "started" not in self.info or not os.path.isdir(self.path):
            return
        self.info.update(extra, status=status, finished=time.time())
        if seconds is None:
            seconds = self.info["finished"] - self.info["started"]
        self.info["seconds"] = round(seconds, 3)
        self.info["sha256"] = {
            name: output_digest(self.file(name))
            for name in OUTPUTS
            if os.path.exists(self.file(name))
        }
        self._write_info()

    def _write_info(self):
        atomic.write_text(self.file("run.json"), json.dumps(self.info, indent=2) + "\n")


class Lock:
    """An exclusive OS lock (flock) on `<out>/<name>/.<id>.lock`, beside a run folder:
    one process at a time plans, computes and finishes that folder. The kernel releases
    it when its holder exits or dies, however it dies. The holder removes the file as it
    lets go (one left by a killed holder is taken over), and a waiter that then holds a
    removed file's lock starts over on the path's new file, so two processes never hold
    locks on two different files of one path.

        with Lock(folder) as lock:   # waits while another process holds it
            lock.waited              # True when it had to wait: the folder changed meanwhile
    """

    def __init__(self, folder):
        head, tail = os.path.split(os.path.normpath(folder))
        self.path = os.path.join(head, f".{tail}.lock")
        self.fd = None
        self.waited = False

    def acquire(self, wait=True):
        """Take the lock: True once held; with wait=False, False at once when another
        process holds it. Raises OSError when the lock file cannot be made."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    if not wait:
                        os.close(fd)
                        return False
                    self.waited = True
                    fcntl.flock(fd, fcntl.LOCK_EX)
                if self._current(fd):
                    self.fd = fd
                    return True
            except BaseException:  # Ctrl-C while waiting
                os.close(fd)
                raise
            os.close(fd)  # its holder removed this file as it let go: lock the path's new one

    def _current(self, fd):
        """Whether `fd` is the file at self.path (not one removed meanwhile)."""
        try:
            here, there = os.fstat(fd), os.stat(self.path)
        except FileNotFoundError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def release(self):
        if self.fd is not None:
            try:
                os.remove(self.path)  # while still held: nobody else can be using this file
            except FileNotFoundError:
                pass
            os.close(self.fd)  # closing the file releases the lock
            self.fd = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
