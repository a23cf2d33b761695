"""Fits end to end through the CLI: what a fit leaves, early stopping, divergence,
Ctrl-C, warm starts and `predict`."""

import csv
import json
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, ROOT, write, yamlnet

from runner import api
from runner.engine import train
from runner.runs import build
from schemas import load_config_dict


def folder_of(stdout, base):
    line = [w for w in stdout.split() if w.startswith("runs/")][0]
    return Path(base) / line


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture
def iris(tmp_path):
    """iris split by the test into a training and a validation file (float64)."""
    with open(CONFIGS / "iris.csv") as f:
        rows = list(csv.reader(f))
    head, body = rows[0], rows[1:]
    rng = np.random.default_rng(3)
    order = rng.permutation(len(body))
    for name, part in (("train.csv", order[:110]), ("val.csv", order[110:])):
        with open(tmp_path / name, "w", newline="") as f:
            csv.writer(f).writerows([head] + [body[i] for i in sorted(part)])
    text = (CONFIGS / "iris.yaml").read_text()
    text = text.replace("path: iris.csv", "path: train.csv\n  validation_path: val.csv")
    text = text.replace("  validation_split: 0.2\n", "").replace("seed: 0", "seed: 0\ndtype: float64")
    return write(tmp_path / "iris.yaml", text)


def softmax_ce(X, Y, w):
    """Independent forward + cross-entropy with the saved weights and scaling."""
    X = (X - w["scale.mean"]) / np.where(w["scale.std"] == 0, 1, w["scale.std"])
    H = np.maximum(X @ w["layers.0.W"] + w["layers.0.b"], 0)
    Z = H @ w["layers.1.W"] + w["layers.1.b"]
    Z = Z - Z.max(1, keepdims=True)
    logp = Z - np.log(np.exp(Z).sum(1, keepdims=True))
    return float(-(Y * logp).sum(1).mean())


def load_xy(path, classes):
    rows = read_csv(path)
    X = np.array([[float(r[k]) for k in list(r)[:4]] for r in rows])
    Y = np.array([[r["species"] == c for c in classes] for r in rows], float)
    return X, Y


def test_fit_leaves_history_metrics_weights(iris, tmp_path):
    code, out, err = yamlnet("run", "--config", iris, "--set", "train.early_stopping=null",
                             "--set", "train.epochs=40")
    assert code == 0, err
    folder = folder_of(out, tmp_path)
    history = read_csv(folder / "history.csv")
    assert list(history[0]) == ["epoch", "lr", "loss", "val_loss", "accuracy", "val_accuracy",
                                "seconds"]
    assert [int(r["epoch"]) for r in history] == list(range(1, 41))
    metrics = json.loads((folder / "metrics.json").read_text())
    with np.load(folder / "weights.npz") as w:
        w = dict(w)
    assert list(w["classes"]) == ["setosa", "versicolor", "virginica"]
    X, Y = load_xy(tmp_path / "val.csv", w["classes"])
    assert metrics["val_loss"] == pytest.approx(softmax_ce(X, Y, w), rel=1e-10)
    assert metrics["val_loss"] == pytest.approx(float(history[-1]["val_loss"]), rel=1e-10)
    assert "epoch 40/40" in err  # progress lines when stderr is not a terminal
    assert (folder / "loss.png").read_bytes()[:4] == b"\x89PNG"  # drawn without matplotlib


def test_early_stopping_restores_the_best_weights(iris, tmp_path):
    code, out, err = yamlnet("run", "--config", iris, "--quiet",
                             "--set", "train.early_stopping={monitor: val_loss, patience: 5, "
                             "restore_best: true}", "--set", "train.optimizer.lr=0.05")
    assert code == 0, err
    folder = folder_of(out, tmp_path)
    history = read_csv(folder / "history.csv")
    val = [float(r["val_loss"]) for r in history]
    assert len(history) < 200, "did not stop early"
    best = int(np.argmin(val))
    assert len(history) == best + 1 + 5  # patience epochs after the best one
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["best_epoch"] == best + 1
    assert metrics["val_loss"] == pytest.approx(val[best], rel=1e-10)
    assert metrics["val_loss"] < val[-1]
    with np.load(folder / "weights.npz") as w:
        X, Y = load_xy(tmp_path / "val.csv", w["classes"])
        assert softmax_ce(X, Y, dict(w)) == pytest.approx(val[best], rel=1e-10)


def test_divergence_fails_with_exit_1(tmp_path):
    for name in ("puzzle.yaml", "puzzle.csv", "puzzle_query.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    code, out, err = yamlnet("run", "--config", tmp_path / "puzzle.yaml", "--quiet",
                             "--set", "train.optimizer.lr=10.0")
    assert code == 1 and "Traceback" not in err
    assert "not finite at epoch" in err and "lower" in err
    (folder,) = (tmp_path / "runs" / "puzzle").iterdir()
    info = json.loads((folder / "run.json").read_text())
    assert info["status"] == "failed" and "epoch" in info["error"]
    assert not (folder / "weights.npz").exists() and not (folder / "metrics.json").exists()
    code, out, _ = yamlnet("run", "--config", tmp_path / "puzzle.yaml", "--dry-run",
                           "--set", "train.optimizer.lr=10.0")
    assert " failed " in out  # as run.json says, and redone by the next run


def first_line(stream, timeout, start=""):
    """The first line written to the pipe `stream` that starts with `start`, waiting at
    most `timeout` seconds (a fresh install's first compiled fit says so first)."""
    deadline = time.monotonic() + timeout
    while True:
        ready, _, _ = select.select([stream], [], [], max(deadline - time.monotonic(), 0))
        assert ready, f"no line starting with {start!r} in {timeout} s"
        line = stream.readline()
        if line.startswith(start) or not line:
            return line


@pytest.mark.slow
def test_ctrl_c_marks_the_run_interrupted(tmp_path):
    for name in ("digits.yaml", "digits.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    args = [sys.executable, "-m", "runner", "run", "--config", "digits.yaml",
            "--set", "train.epochs=100000"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        # well inside the fit: its first progress line (one every few seconds) is out
        assert first_line(proc.stderr, 60, "digits: epoch ").startswith("digits: epoch ")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    (run_json,) = (tmp_path / "runs").glob("digits/*/run.json")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    folder = run_json.parent
    assert json.loads(run_json.read_text())["status"] == "interrupted"
    assert not (folder / "weights.npz").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp")]


def test_warm_start_and_predict(iris, tmp_path):
    code, out, err = yamlnet("run", "--config", iris, "--quiet", "--set", "train.epochs=30",
                             "--set", "train.early_stopping=null")
    assert code == 0, err
    first = folder_of(out, tmp_path)
    code, out, err = yamlnet("run", "--config", iris, "--quiet", "--set", "train.epochs=1",
                             "--set", "train.early_stopping=null",
                             "--set", f"model.weights={first / 'weights.npz'}",
                             "--set", "train.optimizer={name: sgd, lr: 1.0e-12}")
    assert code == 0, err
    second = folder_of(out, tmp_path)
    with np.load(first / "weights.npz") as a, np.load(second / "weights.npz") as b:
        np.testing.assert_allclose(a["layers.0.W"], b["layers.0.W"], atol=1e-9)
    # predict applies the run's scaling and class list to new rows, without targets
    rows = read_csv(tmp_path / "val.csv")
    with open(tmp_path / "new.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(rows[0])[:4])
        writer.writerows([list(r.values())[:4] for r in rows])
    code, out, err = yamlnet("predict", "--run", first, "--data", tmp_path / "new.csv",
                             "--out", tmp_path / "p.csv")
    assert code == 0, err
    got = read_csv(tmp_path / "p.csv")
    with np.load(first / "weights.npz") as w:
        X, _ = load_xy(tmp_path / "val.csv", w["classes"])
        w = dict(w)
    Xs = (X - w["scale.mean"]) / w["scale.std"]
    Z = np.maximum(Xs @ w["layers.0.W"] + w["layers.0.b"], 0) @ w["layers.1.W"] + w["layers.1.b"]
    assert [r["label"] for r in got] == list(w["classes"][Z.argmax(1)])
    code, _, err = yamlnet("predict", "--run", first, "--data", tmp_path / "nowhere.csv")
    assert code == 2 and "nowhere.csv" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------
# train.shuffle: every epoch visits the rows in a new order drawn from the config's seed

class RecordingNet:
    """Stands in for a Network in train.fit: records the rows of each minibatch."""

    def __init__(self):
        self.params, self.grads, self.seen = np.zeros(1), np.zeros(1), []

    def train_step(self, xb, yb, loss, w=None):
        self.seen.extend(xb[:, 0].astype(int).tolist())
        return 0.0


class NoStep:
    lr = 0.1

    def step(self, grads):
        pass


def visit_orders(shuffle, seed, epochs=4, n=12):
    """The order in which each epoch of train.fit visits n rows (minibatches of 5)."""
    config = load_config_dict({
        "data": {"path": "d.csv"}, "model": {"layers": [{"units": 1}]},
        "train": {"loss": "mse", "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": epochs,
                  "batch_size": 5, "shuffle": shuffle}}, source="test")
    net = RecordingNet()
    X = np.arange(n, dtype=float).reshape(n, 1)
    *_, shuffle_rng = build.generators(seed)
    train.fit(net, NoStep(), X, np.zeros((n, 1)), config.train, shuffle_rng)
    return [tuple(net.seen[i:i + n]) for i in range(0, len(net.seen), n)]


def test_shuffle_visits_every_row_once_per_epoch_in_a_new_order():
    orders = visit_orders(shuffle=True, seed=0)
    assert all(sorted(order) == list(range(12)) for order in orders)
    assert tuple(range(12)) not in orders and len(set(orders)) == len(orders)
    assert visit_orders(shuffle=True, seed=0) == orders  # drawn from the seed
    assert visit_orders(shuffle=True, seed=1) != orders
    assert visit_orders(shuffle=False, seed=0) == [tuple(range(12))] * 4


SHUFFLED = """\
name: order
data: {path: d.csv, targets: [y]}
model:
  weights: w.npz  # fixed initial weights: the seed then decides the row order alone
  layers:
    - {units: 3, activation: tanh}
    - {units: 1, activation: sigmoid}
train:
  loss: binary_crossentropy
  optimizer: {name: sgd, lr: 0.5}
  epochs: 5
  batch_size: 1
"""


def test_the_fitted_weights_follow_the_shuffle_and_the_seed(tmp_path):
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{a:.3f},{b:.3f},{int(a > b)}" for a, b in rng.random((12, 2)))
    write(tmp_path / "d.csv", "x1,x2,y\n" + rows + "\n")
    np.savez(tmp_path / "w.npz", **{"layers.0.W": rng.normal(size=(2, 3)),
                                    "layers.0.b": np.zeros(3),
                                    "layers.1.W": rng.normal(size=(3, 1)),
                                    "layers.1.b": np.zeros(1)})
    config = write(tmp_path / "order.yaml", SHUFFLED)

    def fitted(shuffle, seed, force=False):
        outcome = api.run(api.load_config(str(config), overrides=[
            f"train.shuffle={shuffle}", f"seed={seed}"]), out=tmp_path / "runs", force=force)
        with np.load(Path(outcome.folder) / "weights.npz") as w:
            return w["layers.0.W"].tobytes() + w["layers.1.W"].tobytes()

    in_file_order = fitted("false", 1)
    assert fitted("false", 2) == in_file_order  # without shuffling the seed changes nothing
    shuffled = fitted("true", 1)
    assert shuffled != in_file_order
    assert fitted("true", 1, force=True) == shuffled  # the same seed, the same order
    assert fitted("true", 2) != shuffled
