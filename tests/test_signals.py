"""Crash safety with real processes and real signals (docs/cli.md, docs/run-folders.md).

SIGKILL at any moment of a fit or a sweep leaves folders the next run redoes rather
than trusts, and the rerun gives the bytes of an uninterrupted run; SIGINT (Ctrl-C)
ends with exit 130, no traceback, and `interrupted` in run.json; no `.tmp-*` file
survives anything but a SIGKILL in the middle of a write, and a rerun clears those.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, ROOT, weights_bytes, write, yamlnet

pytestmark = pytest.mark.slow

SWEEP = """\
sweep:
  grid:
    train.optimizer.lr: [0.001, 0.002, 0.003, 0.004]
  metric: loss
"""


class Cli:
    """`yamlnet ARGS` as a subprocess in its own session (so that a whole-group Ctrl-C
    can be simulated), its combined output in a log file. (runner/runs/build.py imports
    numpy.random eagerly: a KeyboardInterrupt raised while numpy's Cython modules first
    load is swallowed, numpy 2.4, so a lazy import just after run.json says `running`
    would lose a Ctrl-C.)"""

    def __init__(self, cwd, *args):
        self.cwd, self.log = Path(cwd), Path(cwd) / f"log-{time.monotonic_ns()}.txt"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "runner", *map(str, args)], cwd=cwd,
                env=dict(os.environ, PYTHONPATH=str(ROOT)),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, signum, group=False):
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            self.proc.send_signal(signum)

    def wait(self, timeout=120):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"hung; output:\n{self.output}") from None
        return code

    @property
    def output(self):
        return self.log.read_text()

    def group_alive(self):
        """Processes of this session still running (not zombies), from /proc."""
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == self.proc.pid and fields[0] != "Z":  # pgrp, state
                alive.append(int(stat.parent.name))
        return alive


INTERRUPTED = (130, -signal.SIGINT)
# Exit 130 is what a shell reports for both: the CLI exits with 130 after Ctrl-C, but
# when the interrupt lands while Python is importing modules, CPython itself may end the
# process by re-raising SIGINT (its convention for an interrupted program).


def wait_for(predicate, timeout=60, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(every)
    raise AssertionError("timed out waiting")


def run_jsons(out):
    return sorted(Path(out).glob("*/*/run.json"))


def status(folder):
    try:
        return json.loads((Path(folder) / "run.json").read_text())["status"]
    except (OSError, ValueError):
        return None


def temporaries(root):
    return [p for p in Path(root).rglob(".tmp-*")]


def size(path):
    try:
        return path.stat().st_size
    except OSError:  # renamed or removed since it was listed
        return 0


def outputs(folder):
    """What must be bit-identical: weights, predictions, history without seconds."""
    folder = Path(folder)
    lines = (folder / "history.csv").read_text().splitlines()
    keep = [i for i, c in enumerate(lines[0].split(",")) if c != "seconds"]
    history = [[row.split(",")[i] for i in keep] for row in lines]
    return weights_bytes(folder / "weights.npz"), (folder / "predictions.csv").read_bytes(), history


def consistent(folder):
    """A folder claiming `complete` holds exactly the outputs its run.json lists."""
    info = json.loads((Path(folder) / "run.json").read_text())
    if info["status"] != "complete":
        return True
    from runner.runs.folders import output_digest

    return all(output_digest(str(Path(folder) / name)) == digest
               for name, digest in info["sha256"].items())


@pytest.fixture
def digits(tmp_path):
    """The digits example, about 3 s of fitting."""
    for name in ("digits.yaml", "digits.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    return tmp_path / "digits.yaml"


@pytest.fixture
def reference(digits, tmp_path):
    code, out, err = yamlnet("run", "--config", digits, "--quiet", "--out", "ref", cwd=tmp_path)
    assert code == 0, err
    (folder,) = [p.parent for p in run_jsons(tmp_path / "ref")]
    return outputs(folder)


# ---------------------------------------------------------------------------------------
# a single fit

def kill_moments():
    """Seconds after run.json appears: at once, early, mid-fit, and a seeded sample."""
    rng = random.Random(6)
    return [0.0, 0.3, 1.0] + [round(rng.uniform(0.0, 3.0), 2) for _ in range(3)]


def test_sigkill_during_a_fit_is_redone_to_the_same_bytes(digits, reference, tmp_path):
    for delay in kill_moments():
        out = tmp_path / f"k{delay}"
        cli = Cli(tmp_path, "run", "--config", digits, "--quiet", "--out", out)
        (run_json,) = wait_for(lambda out=out: run_jsons(out))
        time.sleep(delay)
        cli.signal(signal.SIGKILL)
        cli.wait()
        folder = run_json.parent
        assert status(folder) in ("running", "complete", None), delay
        assert consistent(folder), delay  # complete only if every output is whole
        code, stdout, err = yamlnet("run", "--config", digits, "--quiet", "--out", out,
                                    cwd=tmp_path)
        assert code == 0, err
        assert status(folder) == "complete" and outputs(folder) == reference, delay
        assert not temporaries(out), delay


def test_sigint_during_a_fit_marks_it_interrupted(digits, tmp_path):
    for delay in (0.0, 0.4, 1.5):
        out = tmp_path / f"i{delay}"
        cli = Cli(tmp_path, "run", "--config", digits, "--out", out,
                  "--set", "train.epochs=100000")
        (run_json,) = wait_for(lambda out=out: run_jsons(out))
        time.sleep(delay)
        cli.signal(signal.SIGINT)
        assert cli.wait(timeout=30) in INTERRUPTED, cli.output
        assert "Traceback" not in cli.output and "interrupted" in cli.output
        info = json.loads(run_json.read_text())
        assert info["status"] == "interrupted" and info["finished"] >= info["started"]
        assert not (run_json.parent / "weights.npz").exists()
        assert not temporaries(out)


def loaded(pid, library):
    """Whether the process has mapped a shared library (a sign of how far it got)."""
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_sigint_while_loading_the_config_exits_130_without_traceback(digits, tmp_path):
    """Ctrl-C before the run folder exists: while the schemas are imported and the
    config validated (the moment pydantic's compiled core is loaded, and a little later)."""
    for delay in (0.0, 0.05, 0.15):
        cli = Cli(tmp_path, "run", "--config", digits, "--out", "early",
                  "--set", "train.epochs=100000")
        wait_for(lambda p=cli.proc: loaded(p.pid, "pydantic_core") or p.poll() is not None)
        time.sleep(delay)
        cli.signal(signal.SIGINT)
        assert cli.wait(timeout=30) in INTERRUPTED, (delay, cli.output)
        assert "Traceback" not in cli.output, (delay, cli.output)
        for run_json in run_jsons(tmp_path / "early"):
            assert status(run_json.parent) == "interrupted"


def test_sigint_while_streaming_predictions_leaves_no_partial_file(tmp_path):
    """A forward pass over 2 million rows, interrupted while predictions.csv is being
    written: the temporary file is removed and no predictions file appears."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "big.npy", rng.random((2_000_000, 2), dtype=np.float32))
    write(tmp_path / "fwd.yaml", "data: {path: big.npy}\nmodel:\n  layers:\n"
          "    - {units: 8, activation: tanh}\n    - {units: 4}\n")
    cli = Cli(tmp_path, "run", "--config", "fwd.yaml")
    # mid-write: a megabyte of the some 50 MB of predictions is on disk
    folder = wait_for(lambda: [p for p in temporaries(tmp_path / "runs")
                               if size(p) > 1_000_000]).pop().parent
    cli.signal(signal.SIGINT)
    assert cli.wait(timeout=30) in INTERRUPTED, cli.output
    assert "Traceback" not in cli.output
    assert status(folder) == "interrupted"
    assert not temporaries(tmp_path / "runs") and not (folder / "predictions.csv").exists()


def test_run_json_moves_from_running_to_complete(digits, tmp_path):
    seen = []
    cli = Cli(tmp_path, "run", "--config", digits, "--quiet")
    while cli.proc.poll() is None:
        for run_json in run_jsons(tmp_path / "runs"):
            state = status(run_json.parent)  # run.json is replaced whole: always readable
            assert state is not None
            if not seen or seen[-1] != state:
                seen.append(state)
        time.sleep(0.01)
    assert cli.wait() == 0
    for run_json in run_jsons(tmp_path / "runs"):
        if not seen or seen[-1] != status(run_json.parent):
            seen.append(status(run_json.parent))
    assert seen in (["running", "complete"], ["complete"]), seen
    assert not temporaries(tmp_path / "runs")


# ---------------------------------------------------------------------------------------
# sweeps

@pytest.fixture
def swept(digits, tmp_path):
    """Four trials of a few hundred milliseconds each."""
    text = digits.read_text().replace("epochs: 60", "epochs: 15")
    return write(tmp_path / "sweep.yaml", text + SWEEP)


def trial_state(out):
    return {p.parent.name: status(p.parent) for p in run_jsons(out)}


@pytest.fixture
def sweep_reference(swept, tmp_path):
    code, _, err = yamlnet("run", "--config", swept, "--quiet", "--out", "ref", cwd=tmp_path)
    assert code == 0, err
    return {p.parent.name: outputs(p.parent) for p in run_jsons(tmp_path / "ref")}


def mid_sweep(states, workers):
    return "complete" in states and states.count("running") == workers


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_mid_sweep_then_rerun_redoes_only_the_unfinished(swept, sweep_reference,
                                                                 tmp_path, workers):
    out = tmp_path / "k"
    cli = Cli(tmp_path, "run", "--config", swept, "--quiet", "--out", out,
              "--workers", workers)
    # a trial is complete and every worker runs a trial: the one that finished it has
    # started another, so none is still recording a `complete` when the parent dies
    wait_for(lambda: mid_sweep(list(trial_state(out).values()), workers))
    cli.signal(signal.SIGKILL)
    cli.wait()
    # the parent is gone: its workers notice, interrupt their trials and exit
    wait_for(lambda: not cli.group_alive(), timeout=30, every=0.1)
    before = trial_state(out)
    assert "running" not in before.values() or workers == 1, before
    done = {name for name, state in before.items() if state == "complete"}
    assert done and len(done) < 4, before
    stamps = {name: (out / "digits" / name / "weights.npz").stat().st_mtime_ns for name in done}
    code, stdout, err = yamlnet("run", "--config", swept, "--quiet", "--out", out,
                                "--workers", workers, cwd=tmp_path)
    assert code == 0, err
    assert f"{4 - len(done)} run, {len(done)} already complete" in stdout
    assert trial_state(out) == {name: "complete" for name in sweep_reference}
    for name in done:  # trusted, not redone
        assert (out / "digits" / name / "weights.npz").stat().st_mtime_ns == stamps[name]
    for name, expected in sweep_reference.items():
        assert outputs(out / "digits" / name) == expected, name
    assert not temporaries(out)


@pytest.mark.parametrize("workers,group", [(1, False), (2, False), (2, True)],
                         ids=["sequential", "workers, parent only", "workers, Ctrl-C to all"])
def test_sigint_mid_sweep_exits_130_and_marks_interrupted(swept, tmp_path, workers, group):
    write(swept, swept.read_text().replace("epochs: 15", "epochs: 100000"))
    out = tmp_path / "i"
    cli = Cli(tmp_path, "run", "--config", swept, "--out", out, "--workers", workers)
    wait_for(lambda: list(trial_state(out).values()).count("running") == workers)
    cli.signal(signal.SIGINT, group=group)
    # a trial of 100,000 epochs would take hours: exiting at all means no waiting for it
    assert cli.wait(timeout=60) in INTERRUPTED, cli.output
    assert "Traceback" not in cli.output, cli.output
    wait_for(lambda: not cli.group_alive(), timeout=30, every=0.1)
    states = trial_state(out)
    assert sorted(states.values()) == ["interrupted"] * workers, states
    assert not temporaries(out)
