"""Two `yamlnet run` of one sweep on one --out, as real processes at the same time:
each run folder is computed by one of them, exactly once (a hook counts every
computation), and both exit 0; a lock dies with its holder.

The processes are ordered by events, never by sleeping: the hook in process A stops
inside its first computation (holding that folder's lock) until the test lets it go,
and the test lets it go only once process B has found that lock held. Every step
waits on a FIFO: opening one blocks until the other side opens it too."""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from conftest import CONFIGS, ROOT, write

HOOK = """\
import fcntl, os, sys

from runner.runs import experiment

role, fifos, counter = sys.argv[1:4]
compute, flock, first = experiment.compute, fcntl.flock, [True, True]


def signal(name):  # blocks until the test opens the FIFO to read it
    with open(os.path.join(fifos, name), "w") as f:
        f.write(role)


def counted(config, folder, *args, **kwargs):
    with open(counter, "a") as f:  # O_APPEND: whole lines, whoever writes
        f.write(f"{folder.info['id']} {role}\\n")
    if role == "A" and first[0]:  # hold the first folder until B has waited for it
        first[0] = False
        signal("a_computing")
        with open(os.path.join(fifos, "go")) as f:
            f.read()
    return compute(config, folder, *args, **kwargs)


def watched(fd, operation):
    try:
        return flock(fd, operation)
    except BlockingIOError:
        if role == "B" and first[1]:
            first[1] = False
            signal("b_blocked")
        raise


experiment.compute, fcntl.flock = counted, watched
sys.argv = ["yamlnet", *sys.argv[4:]]
from runner.cli import main

main()
"""

GIVE_UP = 120  # seconds a step may take before the test fails (instead of hanging)

SWEEP = """\
sweep:
  grid: {model.layers.0.units: [2, 4], train.optimizer.lr: [0.1, 0.5]}
  seeds: [0, 1]
  metric: loss
  mode: min
"""


def start(tmp_path, role, *args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, str(tmp_path / "hook.py"), role, str(tmp_path), str(tmp_path / "count"),
         "run", *map(str, args)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def fifo(tmp_path, name, mode, procs, text=""):
    """Open the FIFO `name` (blocking until the other side opens it) and read it to its
    end or write `text`; fails, rather than hangs, when every process has exited first."""
    done = {}

    def use():
        with open(tmp_path / name, mode) as f:
            done["text"] = f.read() if mode == "r" else f.write(text)

    worker = threading.Thread(target=use, daemon=True)
    worker.start()
    for _ in range(GIVE_UP):
        worker.join(timeout=1.0)
        if not worker.is_alive():
            return done.get("text")
        if all(p.poll() is not None for p in procs):
            break
    for p in procs:
        p.kill()
    raise AssertionError(f"{name}: nobody came; " + " | ".join(p.communicate()[1] for p in procs))


def setup(tmp_path, extra=""):
    shutil.copy(CONFIGS / "xor.csv", tmp_path / "xor.csv")
    text = (CONFIGS / "xor.yaml").read_text().replace("epochs: 2000", "epochs: 300")
    write(tmp_path / "hook.py", HOOK)
    for name in ("a_computing", "b_blocked", "go"):
        os.mkfifo(tmp_path / name)
    return write(tmp_path / "sweep.yaml", text + extra)


def counted(tmp_path):
    return [line.split() for line in (tmp_path / "count").read_text().splitlines()]


def test_two_runs_of_one_sweep_compute_every_trial_once(tmp_path):
    config = setup(tmp_path, SWEEP)
    args = ("--config", config, "--out", "runs", "--quiet")
    a = start(tmp_path, "A", *args)
    assert fifo(tmp_path, "a_computing", "r", [a]) == "A"  # A holds the first trial
    b = start(tmp_path, "B", *args)
    assert fifo(tmp_path, "b_blocked", "r", [a, b]) == "B"  # B found a trial locked
    fifo(tmp_path, "go", "w", [a, b], "go")
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert (a.returncode, b.returncode) == (0, 0), err_a + err_b

    trials = sorted(p.parent.name for p in (tmp_path / "runs" / "xor").glob("*/run.json"))
    assert len(trials) == 8
    for trial in trials:
        info = json.loads((tmp_path / "runs" / "xor" / trial / "run.json").read_text())
        assert info["status"] == "complete"
    computations = counted(tmp_path)
    assert sorted(run_id for run_id, _ in computations) == trials  # each once, no more
    assert not [n for n in os.listdir(tmp_path / "runs" / "xor") if n.endswith(".lock")]
    by_b = sum(role == "B" for _, role in computations)
    # each process reports what it computed; the others it found complete, either before
    # it reached them or after waiting for the other process's lock
    assert summary(out_a) == (8 - by_b, by_b), out_a
    assert summary(out_b) == (by_b, 8 - by_b), out_b


def summary(out):
    """(trials run, trials taken from elsewhere) of a sweep's first line, checking its form:
    "8 trials (R run, C already complete[, E computed by another process]; 0 failed): ..."."""
    match = re.match(r"8 trials \((\d+) run, (\d+) already complete(?:, (\d+) computed by "
                     r"another process)?; 0 failed\): runs/xor/sweep.csv\n", out)
    assert match, out
    ran, done, elsewhere = (int(g or 0) for g in match.groups())
    return ran, done + elsewhere


def test_a_second_run_waits_then_skips(tmp_path):
    config = setup(tmp_path)
    args = ("--config", config, "--out", "runs", "--quiet")
    a = start(tmp_path, "A", *args)
    fifo(tmp_path, "a_computing", "r", [a])
    b = start(tmp_path, "B", *args)
    fifo(tmp_path, "b_blocked", "r", [a, b])
    fifo(tmp_path, "go", "w", [a, b], "go")
    (out_a, err_a), (out_b, err_b) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert (a.returncode, b.returncode) == (0, 0), err_a + err_b
    [(run_id, role)] = counted(tmp_path)
    assert role == "A"
    assert out_a == f"complete: runs/xor/{run_id}\n"
    assert out_b == ("skipped (computed by another process while this one waited): "
                     f"runs/xor/{run_id}\n")


def test_the_lock_dies_with_its_holder(tmp_path):
    config = setup(tmp_path)
    args = ("--config", config, "--out", "runs", "--quiet")
    a = start(tmp_path, "A", *args)
    fifo(tmp_path, "a_computing", "r", [a])
    a.kill()  # SIGKILL inside the computation: the folder is left `running`, locked
    a.communicate()
    [(run_id, role)] = counted(tmp_path)
    assert role == "A"
    folder = Path(tmp_path / "runs" / "xor" / run_id)
    assert json.loads((folder / "run.json").read_text())["status"] == "running"
    b = start(tmp_path, "B", *args)
    out_b, err_b = b.communicate(timeout=300)
    assert b.returncode == 0, err_b
    assert out_b == f"complete: runs/xor/{run_id}\n"
    assert counted(tmp_path) == [[run_id, "A"], [run_id, "B"]]
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"
    assert os.listdir(folder.parent) == [run_id]  # the lock file A left was taken over, removed
