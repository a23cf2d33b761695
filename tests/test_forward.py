"""A forward pass equals an independent numpy computation written here, for every
activation, from CSV, .npy and .npz, with a short last minibatch and weights loaded
from model.weights."""

import csv
import math

import numpy as np
import pytest
from conftest import example_run, write, yamlnet

from runner import api
from schemas import ACTIVATION_NAMES, load_config_dict

_erf = np.vectorize(math.erf)

REFERENCE = {
    "identity": lambda z: z,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: np.where(z > 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.exp(z) - 1.0),
    "softplus": lambda z: np.log(1.0 + np.exp(z)),
    "gelu": lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0))),
    "silu": lambda z: z / (1.0 + np.exp(-z)),
    "softmax": lambda z: np.exp(z) / np.exp(z).sum(axis=1, keepdims=True),
}
ROWS, BATCH = 37, 8  # 4 full minibatches and a short one of 5 rows


def test_reference_covers_the_vocabulary():
    assert sorted(REFERENCE) == sorted(ACTIVATION_NAMES)


def reference_forward(X, params, activations):
    A = X.astype(np.float64)
    for i, name in enumerate(activations):
        A = REFERENCE[name](A @ params[f"layers.{i}.W"].astype(np.float64)
                            + params[f"layers.{i}.b"].astype(np.float64))
    return A


@pytest.fixture
def problem(tmp_path):
    rng = np.random.default_rng(42)
    X = rng.normal(size=(ROWS, 3))
    params = {
        "layers.0.W": rng.normal(size=(3, 5)), "layers.0.b": rng.normal(size=5),
        "layers.1.W": rng.normal(size=(5, 4)) * 0.5, "layers.1.b": rng.normal(size=4),
    }
    np.savez(tmp_path / "w.npz", **params)
    with open(tmp_path / "x.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "c"])
        w.writerows([[repr(float(v)) for v in row] for row in X])
    np.save(tmp_path / "x.npy", X)
    np.savez(tmp_path / "x.npz", x=X)
    return X, params


def forward_config(tmp_path, source, activations, dtype):
    return load_config_dict({
        "name": "fwd", "dtype": dtype,
        "data": {"path": str(tmp_path / source)},
        "model": {"weights": str(tmp_path / "w.npz"), "layers": [
            {"units": 5, "activation": activations[0]},
            {"units": 4, "activation": activations[1]},
        ]},
        "predict": {"batch_size": BATCH, "format": "npy"},
    })


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-12), ("float32", 1e-5)])
@pytest.mark.parametrize("source", ["x.csv", "x.npy", "x.npz"])
@pytest.mark.parametrize("activation", sorted(REFERENCE))
def test_forward_matches_reference(tmp_path, problem, activation, source, dtype, rtol):
    X, params = problem
    activations = [activation, "tanh" if activation == "softmax" else activation]
    outcome = api.run(forward_config(tmp_path, source, activations, dtype), out=tmp_path / "runs")
    got = np.load(f"{outcome.folder}/predictions.npy", allow_pickle=False)
    assert got.shape == (ROWS, 4) and got.dtype == np.dtype(dtype)
    if dtype == "float32":  # the reference sees what the engine sees: float32 inputs
        X = X.astype(np.float32)
        params = {k: v.astype(np.float32) for k, v in params.items()}
    want = reference_forward(X, params, activations)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * 1e-3)


def test_predictions_csv_round_trips_the_values(tmp_path, problem):
    X, params = problem
    config = forward_config(tmp_path, "x.csv", ["tanh", "identity"], "float64")
    config.predict.format = "csv"
    outcome = api.run(config, out=tmp_path / "runs")
    with open(f"{outcome.folder}/predictions.csv") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["y0", "y1", "y2", "y3"]
    got = np.array([[float(v) for v in row] for row in rows[1:]])
    np.testing.assert_allclose(got, reference_forward(X, params, ["tanh", "identity"]),
                               rtol=1e-12)


def test_weights_saved_are_the_weights_used(tmp_path, problem):
    _, params = problem
    outcome = api.run(forward_config(tmp_path, "x.npy", ["relu", "relu"], "float64"),
                      out=tmp_path / "runs")
    with np.load(f"{outcome.folder}/weights.npz") as saved:
        for key, value in params.items():
            assert np.array_equal(saved[key], value)


def test_predict_from_a_forward_run_reads_columns_by_name(tmp_path):
    """A forward-only run's predict finds a table's columns by name, as a fitted run's
    does: reordered columns give the same outputs, a missing one is refused (it read
    them by position, swapping x1 and x2 silently)."""
    run = example_run(tmp_path, "forward.yaml", "xor.csv")
    write(tmp_path / "in_order.csv", "x1,x2\n1,0\n0,1\n")
    write(tmp_path / "swapped.csv", "x2,x1\n0,1\n1,0\n")
    write(tmp_path / "other.csv", "x1,foo\n1,0\n")
    outputs = []
    for name in ("in_order.csv", "swapped.csv"):
        code, _, err = yamlnet("predict", "--run", run, "--data", name, "--out", f"p-{name}",
                               cwd=tmp_path)
        assert code == 0, err
        outputs.append((tmp_path / f"p-{name}").read_text())
    assert outputs[0] == outputs[1]
    code, _, err = yamlnet("predict", "--run", run, "--data", "other.csv", cwd=tmp_path)
    assert code == 2 and "no column 'x2'" in err, err
