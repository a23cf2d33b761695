"""Resumable fits: a fit killed with SIGKILL mid-way (a real subprocess) goes on from its
last checkpoint on the next `yamlnet run` and ends byte-identical to an uninterrupted
fit; `verify` passes on the resumed folder."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, write, yamlnet

from runner.io import checkpoints
from runner.runs.folders import OUTPUTS, RunFolder, output_digest, read_info

pytestmark = pytest.mark.slow

BASE = """\
seed: 2
data: {{path: d.csv, targets: [y], scale: standard, validation_split: 0.25}}
model:
  layers:
    - {{units: 32, activation: tanh{dropout}}}
    - {{units: 1, activation: sigmoid}}
train:
  loss: binary_crossentropy
  optimizer: {optimizer}
  epochs: 400
  batch_size: 4
  metrics: [accuracy]
  checkpoint_every: 3
{extra}"""

CASES = {
    "sgd momentum": dict(optimizer="{name: sgd, lr: 0.05, momentum: 0.9}", dropout="", extra=""),
    "adam, schedule, dropout, early stopping": dict(
        optimizer="{name: adam, lr: 0.01}", dropout=", dropout: 0.3",
        extra="  schedule: {name: step, step_size: 5, gamma: 0.9}\n"
              "  warmup: {epochs: 4}\n"
              "  early_stopping: {monitor: val_loss, patience: 1000, restore_best: true}\n"),
}


def table(path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(int)
    write(path, "a,b,c,d,y\n" + "".join(f"{a!r},{b!r},{c!r},{d!r},{t}\n"
                                          for (a, b, c, d), t in zip(X.tolist(), y)))


def start(config, out):
    return subprocess.Popen([sys.executable, "-m", "runner", "run", "--config", str(config),
                             "--out", str(out), "-q"], cwd=config.parent,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_after_a_checkpoint(config, out, deadline=120):
    """Start the fit, SIGKILL it once its folder holds a checkpoint; the folder."""
    proc = start(config, out)
    stop = time.monotonic() + deadline
    found = []
    while not found and proc.poll() is None and time.monotonic() < stop:
        found = list(out.glob(f"*/*/{checkpoints.FILE}"))
        time.sleep(0.01)  # polling for the file the fit writes (bounded by the deadline)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert found, "the fit ended (or timed out) before writing a checkpoint"
    return found[0].parent


@pytest.mark.parametrize("case", CASES)
def test_a_killed_fit_resumes_and_ends_byte_identical(tmp_path, case):
    table(tmp_path / "d.csv")
    config = write(tmp_path / "c.yaml", BASE.format(**CASES[case]))
    folder = kill_after_a_checkpoint(config, tmp_path / "killed")
    assert read_info(folder)["status"] == "running"  # killed: no chance to say otherwise
    saved = checkpoints.load(folder, read_info(folder)["id"])
    assert 0 < saved.epoch < 400

    code, out, err = yamlnet("run", "--config", config, "--out", tmp_path / "killed",
                             cwd=tmp_path)
    assert code == 0, err
    assert "(resumed at epoch " in out
    resumed_at = int(out.split("(resumed at epoch ")[1].split(")")[0])
    assert resumed_at >= saved.epoch
    assert not (folder / checkpoints.FILE).exists()
    code, out, err = yamlnet("run", "--config", config, "--out", tmp_path / "whole", cwd=tmp_path)
    assert code == 0, err
    (whole,) = (tmp_path / "whole").glob("*/*/")
    assert whole.name == folder.name  # the same experiment
    for name in OUTPUTS:
        assert output_digest(folder / name) == output_digest(whole / name), name
    assert read_info(folder)["metrics"] == read_info(whole)["metrics"]
    code, out, err = yamlnet("verify", folder)
    assert code == 0 and "bit-identical" in out, out + err


def test_restart_ignores_the_checkpoint(tmp_path):
    table(tmp_path / "d.csv")
    config = write(tmp_path / "c.yaml", BASE.format(**CASES["sgd momentum"]))
    kill_after_a_checkpoint(config, tmp_path / "runs")
    code, out, err = yamlnet("run", "--config", config, "--out", tmp_path / "runs", "--restart",
                             cwd=tmp_path)
    assert code == 0, err
    assert "resumed" not in out and out.startswith("complete: ")


def test_a_resumed_folder_keeps_its_files_but_no_temporary_one(tmp_path):
    """start(keep=True), as a resumed fit calls it, keeps the checkpoint and history but
    removes what a kill in the middle of an atomic write left (.tmp-*); start() empties."""
    path = tmp_path / "run"
    path.mkdir()
    for name in ("checkpoint.npz", "history.csv", ".tmp-k2j3-weights.npz"):
        (path / name).write_bytes(b"x")
    RunFolder(str(path)).start({"name": "r"}, {"id": "r"}, keep=True)
    assert sorted(p.name for p in path.iterdir()) == [
        "checkpoint.npz", "config.yaml", "history.csv", "run.json"]
    RunFolder(str(path)).start({"name": "r"}, {"id": "r"})
    assert sorted(p.name for p in path.iterdir()) == ["config.yaml", "run.json"]
