"""BLAS threads that fit the machine, through the real CLI: a fit too small for two
threads runs on one, each of N worker processes gets its share of the cores, --threads
overrides both, and the bytes of a run never depend on any of it."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS, ROOT, weights_bytes, write

from runner.runs import threads
from schemas import load_config

HOOK = """\
import os, sys

from threadpoolctl import threadpool_info

from runner.runs import experiment

compute = experiment.compute


def counted(config, folder, *args, **kwargs):  # in this process and in spawned workers
    blas = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    with open(os.environ["BLAS_LOG"], "a") as f:
        f.write(f"{os.getpid()} {blas}\\n")
    return compute(config, folder, *args, **kwargs)


experiment.compute = counted

if __name__ == "__main__":
    sys.argv = ["yamlnet", *sys.argv[1:]]
    from runner.cli import main

    main()
"""

SWEEP = """\
sweep:
  grid: {train.optimizer.lr: [0.001, 0.003]}
  seeds: [0, 1]
  metric: val_loss
  mode: min
"""
BIG = ["--set", "model.layers.0.units=128", "--set", "train.batch_size=256"]  # 2.4M per step


@pytest.fixture
def digits(tmp_path):
    for name in ("digits.yaml", "digits.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    text = (CONFIGS / "digits.yaml").read_text().replace("epochs: 60", "epochs: 3")
    write(tmp_path / "hook.py", HOOK)
    return write(tmp_path / "digits.yaml", text), write(tmp_path / "sweep.yaml", text + SWEEP)


def run(tmp_path, *args):
    """Run the CLI through the hook: the BLAS threads of every computation, [(pid, n)]."""
    log = tmp_path / "blas.log"
    log.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), BLAS_LOG=str(log))
    proc = subprocess.run([sys.executable, str(tmp_path / "hook.py"), "run", "--quiet",
                           *map(str, args)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [tuple(int(v) for v in line.split()) for line in log.read_text().splitlines()]


def outputs(out):
    """{run id: (weights.npz bytes, history.csv without seconds, predictions.csv)}."""
    found = {}
    for info in sorted(Path(out).glob("*/*/run.json")):
        folder = info.parent
        history = (folder / "history.csv").read_text().splitlines()
        keep = [i for i, c in enumerate(history[0].split(",")) if c != "seconds"]
        rows = [[r.split(",")[i] for i in keep] for r in history]
        found[folder.name] = (weights_bytes(folder / "weights.npz"), rows,
                              (folder / "predictions.csv").read_bytes())
    return found


def test_the_step_work_picks_the_threads(digits):
    small, _ = digits
    config = load_config(small)
    assert threads.step_work(config) == 64 * (64 * 64 + 64 * 10)  # batch x sum(fan_in x units)
    assert threads.for_run(config) == 1
    assert threads.for_run(config, threads=3) == 3
    big = load_config(small, overrides=[o for o in BIG if o != "--set"])
    assert threads.step_work(big) == 256 * (64 * 128 + 128 * 10) > threads.ONE_THREAD_BELOW
    assert threads.for_run(big) is None
    assert threads.per_worker(1) == threads.CORES
    assert threads.per_worker(threads.CORES * 4) == 1


@pytest.mark.skipif(threads.CORES < 2, reason="one core: every count is one thread")
def test_workers_share_the_cores_and_small_fits_take_one(digits, tmp_path):
    small, sweep = digits
    share = max(1, threads.CORES // 2)
    seen = run(tmp_path, "--config", sweep, "--out", "par", "--workers", "2", *BIG)
    assert len(seen) == 4 and {n for _, n in seen} == {share}
    assert os.getpid() not in {pid for pid, _ in seen}
    seen = run(tmp_path, "--config", sweep, "--out", "seq", *BIG)
    assert len(seen) == 4 and {n for _, n in seen} == {threads.CORES}
    assert {n for _, n in run(tmp_path, "--config", small, "--out", "one")} == {1}
    assert {n for _, n in run(tmp_path, "--config", sweep, "--out", "forced", "--workers", "2",
                              "--threads", "2")} == {2}


@pytest.mark.skipif(threads.CORES < 2, reason="one core: every count is one thread")
def test_results_are_bit_identical_whatever_the_threads(digits, tmp_path):
    _, sweep = digits
    reference = None
    for out, extra in [("t1", ["--threads", "1"]), ("t2", ["--threads", "2"]), ("auto", []),
                       ("w2", ["--workers", "2"])]:
        seen = run(tmp_path, "--config", sweep, "--out", out, *BIG, *extra)
        assert len(seen) == 4
        got = outputs(tmp_path / out)
        assert len(got) == 4
        if reference is None:
            reference = got
        assert got == reference, out
    info = json.loads(next((tmp_path / "t2").glob("*/*/run.json")).read_text())
    assert info["status"] == "complete"
