"""Sweeps through the real CLI: expansion, resume, parallel and distributed runs that
give the same bytes, provenance and verify."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONFIGS, ROOT, weights_bytes, write, yamlnet

SWEEP = """\
sweep:
  grid:
    model.layers.0.units: [2, 4]
    train.optimizer.lr: [0.1, 0.5]
  seeds: [0, 1]
  metric: loss
  mode: min
"""


@pytest.fixture
def swept(tmp_path):
    """The XOR example with a 2 x 2 grid x 2 seeds sweep and few epochs."""
    shutil.copy(CONFIGS / "xor.csv", tmp_path / "xor.csv")
    text = (CONFIGS / "xor.yaml").read_text().replace("epochs: 2000", "epochs: 30")
    return write(tmp_path / "sweep.yaml", text + SWEEP)


def trial_folders(out):
    return sorted(p.parent for p in Path(out).glob("xor/*/run.json"))


def read_sweep_csv(out):
    with open(Path(out) / "xor" / "sweep.csv") as f:
        return list(csv.DictReader(f))


def snapshot(out):
    return {str(p): os.stat(p).st_mtime_ns for p in Path(out).rglob("*") if p.is_file()}


def outputs(folder):
    """weights.npz bytes and history.csv without its seconds column."""
    history = (folder / "history.csv").read_text().splitlines()
    keep = [i for i, c in enumerate(history[0].split(",")) if c != "seconds"]
    rows = [[r.split(",")[i] for i in keep] for r in history]
    return weights_bytes(folder / "weights.npz"), rows


def test_grid_times_seeds_then_resume(swept, tmp_path):
    code, out, err = yamlnet("run", "--config", swept, "--out", "runs", "--quiet")
    assert code == 0, err
    folders = trial_folders(tmp_path / "runs")
    assert len(folders) == 8
    rows = read_sweep_csv(tmp_path / "runs")
    assert len(rows) == 8 and {r["status"] for r in rows} == {"complete"}
    assert {(r["model.layers.0.units"], r["train.optimizer.lr"], r["seed"]) for r in rows} == {
        (u, lr, s) for u in ("2", "4") for lr in ("0.1", "0.5") for s in ("0", "1")}
    assert "rank" in out and "loss (min)" in out
    for folder in folders:  # each trial's config is its own, without the sweep
        text = (folder / "config.yaml").read_text()
        assert "sweep" not in text

    before = snapshot(tmp_path / "runs" / "xor")
    code, out, _ = yamlnet("run", "--config", swept, "--out", "runs", "--quiet")
    assert code == 0 and "0 run, 8 already complete" in out
    after = snapshot(tmp_path / "runs" / "xor")
    assert {k: v for k, v in after.items() if not k.endswith(("sweep.csv", "sweep.png"))} == {
        k: v for k, v in before.items() if not k.endswith(("sweep.csv", "sweep.png"))}

    gone = folders[2:4]
    for folder in gone:
        shutil.rmtree(folder)
    code, out, _ = yamlnet("run", "--config", swept, "--out", "runs", "--quiet")
    assert code == 0 and "2 run, 6 already complete" in out
    changed = {k for k, v in snapshot(tmp_path / "runs" / "xor").items()
               if before.get(k) != v and "sweep." not in k}
    assert {Path(k).parent for k in changed} == set(gone)


def test_dry_run_shows_statuses(swept, tmp_path):
    code, out, _ = yamlnet("run", "--config", swept, "--dry-run")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 8 and all(" pending " in line for line in lines)
    assert not (tmp_path / "runs").exists() or not trial_folders(tmp_path / "runs")
    yamlnet("run", "--config", swept, "--quiet", "--set", "sweep.seeds=[0]")
    code, out, _ = yamlnet("run", "--config", swept, "--dry-run")
    statuses = [line.split()[1] for line in out.strip().splitlines()]
    assert sorted(statuses) == ["complete"] * 4 + ["pending"] * 4


def test_dry_run_shows_failed_trials_and_folds(tmp_path):
    for name in ("puzzle.yaml", "puzzle.csv", "puzzle_query.csv", "xor.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    diverge = ["--set", "sweep={grid: {train.optimizer.lr: [0.001, 10.0]}, metric: loss}"]
    code, _, _ = yamlnet("run", "--config", "puzzle.yaml", "--quiet", *diverge, cwd=tmp_path)
    assert code == 1  # the trial at lr 10 diverged
    code, out, _ = yamlnet("run", "--config", "puzzle.yaml", "--dry-run", *diverge,
                           cwd=tmp_path)
    statuses = {line.split()[-1]: line.split()[1] for line in out.strip().splitlines()}
    assert code == 0 and statuses == {"train.optimizer.lr=0.001": "complete",
                                      "train.optimizer.lr=10.0": "failed"}, out
    assert all(line == line.rstrip() for line in out.splitlines())
    code, out, _ = yamlnet("run", "--config", tmp_path / "xor.yaml", "--dry-run", "--set",
                           "data.folds=3", "--set", "data.validation_split=0")
    lines = out.strip().splitlines()
    assert code == 0 and [line.split()[-1] for line in lines] == ["fold=0", "fold=1", "fold=2"]


@pytest.mark.parametrize("grid,words", [
    ("model.layers.9.units: [2, 4]", "model.layers.9"),
    ("model.layers.0.units: [2, -4]", "model.layers.0.units"),
    ("train.optimizer.lr: [0.1, fast]", "train.optimizer.lr"),
])
def test_bad_grid_exits_before_any_trial(swept, tmp_path, grid, words):
    text = swept.read_text().split("sweep:")[0] + f"sweep:\n  grid:\n    {grid}\n"
    write(swept, text)
    code, _, err = yamlnet("run", "--config", swept)
    assert code == 2 and words in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not trial_folders(tmp_path / "runs")


def test_bad_random_space_and_set_exit_before_any_trial(swept, tmp_path):
    text = swept.read_text().replace(
        "  seeds:", "  random:\n    samples: 2\n    space:\n"
        "      train.optimizer.lr: {loguniform: [0.0, 0.1]}\n  seeds:")
    write(tmp_path / "random.yaml", text)
    code, _, err = yamlnet("run", "--config", tmp_path / "random.yaml")
    assert code == 2 and "sweep.random" in err and "Traceback" not in err
    code, _, err = yamlnet("run", "--config", swept, "--set", "sweep.seeds=[0, x]")
    assert code == 2 and "--set sweep.seeds" in err
    assert not (tmp_path / "runs").exists() or not trial_folders(tmp_path / "runs")


def test_random_search_is_seeded(swept, tmp_path):
    text = swept.read_text().replace(
        "  seeds:", "  random:\n    samples: 3\n    space:\n"
        "      train.optimizer.momentum: {uniform: [0.0, 0.9]}\n"
        "      model.layers.0.activation: {choice: [tanh, relu]}\n  seeds:")
    write(tmp_path / "random.yaml", text)
    _, first, _ = yamlnet("run", "--config", tmp_path / "random.yaml", "--dry-run")
    _, again, _ = yamlnet("run", "--config", tmp_path / "random.yaml", "--dry-run")
    _, other, _ = yamlnet("run", "--config", tmp_path / "random.yaml", "--dry-run",
                          "--set", "seed=5")
    assert len(first.splitlines()) == 2 * 2 * 3 * 2 and first == again and first != other
    momenta = {float(w.split("=")[1]) for w in first.split() if w.startswith("train.optimizer.mom")}
    assert len(momenta) == 3 and all(0.0 <= m <= 0.9 for m in momenta)


@pytest.mark.slow
def test_workers_and_dask_give_the_same_bytes(swept, tmp_path):
    pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
    code, _, err = yamlnet("run", "--config", swept, "--out", "seq", "--quiet")
    assert code == 0, err
    code, _, err = yamlnet("run", "--config", swept, "--out", "par", "--quiet", "--workers", "2")
    assert code == 0, err
    elsewhere = tmp_path / "cluster"  # the workers' folder holds no data files
    elsewhere.mkdir()
    with dask_cluster(elsewhere) as address:
        code, _, err = yamlnet("run", "--config", swept, "--out", "dask", "--quiet",
                               "--scheduler", address)
    assert code == 0, err
    reference = {f.name: outputs(f) for f in trial_folders(tmp_path / "seq")}
    assert len(reference) == 8
    for out in ("par", "dask"):
        got = {f.name: outputs(f) for f in trial_folders(tmp_path / out)}
        assert got.keys() == reference.keys(), out
        for name in reference:
            assert got[name] == reference[name], (out, name)
    assert not list(elsewhere.iterdir())


class dask_cluster:
    """A real scheduler and two workers, as subprocesses on loopback, in `cwd`."""

    def __init__(self, cwd):
        self.cwd, self.procs = cwd, []

    def __enter__(self):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        address = f"tcp://127.0.0.1:{port}"
        scratch = self.cwd / ".." / "dask-scratch"  # in pytest's folder, not in /tmp
        env = dict(os.environ, PYTHONPATH=str(ROOT), DASK_TEMPORARY_DIRECTORY=str(scratch))
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"], cwd=self.cwd, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(2):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--no-dashboard", "--host", "127.0.0.1", "--local-directory",
                 str(scratch)], cwd=self.cwd, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        return address

    def __exit__(self, *exc):
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_provenance_and_verify(tmp_path):
    for name in ("xor.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    code, out, _ = yamlnet("run", "--config", tmp_path / "xor.yaml", "--quiet",
                           "--set", "train.epochs=50")
    folder = tmp_path / out.split(": ")[1].strip()
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "complete" and info["versions"]["numpy"]
    assert {"python", "numpy", "yamlnet", "platform"} <= set(info["versions"])
    assert "--set" in info["argv"] and set(info["sha256"]) >= {"weights.npz", "history.csv"}
    code, out, err = yamlnet("verify", folder)
    assert code == 0 and "bit-identical" in out, out + err
    weights = folder / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF
    weights.write_bytes(bytes(data))
    code, out, _ = yamlnet("verify", folder)
    assert code == 1 and "MISMATCH  weights.npz" in out
