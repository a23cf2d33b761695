"""Losses against plain references, their gradients against central finite
differences, and the metrics against hand computations (and scikit-learn if present)."""

import math

import numpy as np
import pytest

from runner.engine.activations import ACTIVATIONS, DERIVATIVES
from runner.engine.losses import FUSED, LOSS_DERIVATIVES, LOSSES, METRICS

N, K = 6, 3


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def ref_loss(name, Y, Z, A):
    """Plain per-element / per-row definitions (PyTorch reduction="mean")."""
    cells = [(y, z, a) for ry, rz, ra in zip(Y, Z, A, strict=True)
             for y, z, a in zip(ry, rz, ra, strict=True)]
    if name == "mse":
        return sum((a - y) ** 2 for y, _, a in cells) / len(cells)
    if name == "mae":
        return sum(abs(a - y) for y, _, a in cells) / len(cells)
    if name == "binary_crossentropy":
        return -sum(y * math.log(sigmoid(z)) + (1 - y) * math.log(1 - sigmoid(z))
                    for y, z, _ in cells) / len(cells)
    total = 0.0  # categorical: -sum_j y_j log softmax(z)_j, averaged over rows
    for ry, rz in zip(Y, Z, strict=True):
        s = sum(math.exp(z) for z in rz)
        total -= sum(y * math.log(math.exp(z) / s) for y, z in zip(ry, rz, strict=True))
    return total / len(Y)


def problem(loss):
    """Targets, logits and outputs suited to the loss."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((N, K))
    if loss == "binary_crossentropy":
        Y, act = rng.uniform(size=(N, K)).round(1), "sigmoid"  # soft and hard labels
    elif loss == "categorical_crossentropy":
        Y, act = rng.dirichlet(np.ones(K), size=N), "softmax"
        Y[:3] = np.eye(K)[rng.integers(0, K, size=3)]  # some rows one-hot
    else:
        Y, act = rng.standard_normal((N, K)), "tanh"
    A = np.empty_like(Z)
    ACTIVATIONS[act](Z, A)
    return Y, Z, A, act


def test_tables():
    assert list(LOSSES) == ["mse", "mae", "binary_crossentropy", "categorical_crossentropy"]
    assert set(FUSED) == {("sigmoid", "binary_crossentropy"),
                          ("softmax", "categorical_crossentropy")}
    assert set(LOSS_DERIVATIVES) | {loss for _, loss in FUSED} == set(LOSSES)
    assert list(METRICS) == ["accuracy", "mse", "mae", "r2"]


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_matches_reference(name):
    Y, Z, A, _ = problem(name)
    value = LOSSES[name](Y, Z, A)
    assert isinstance(value, float)
    assert math.isclose(value, ref_loss(name, Y, Z, A), rel_tol=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_float32_input(name):
    Y, Z, A, _ = problem(name)
    value = LOSSES[name](Y.astype(np.float32), Z.astype(np.float32), A.astype(np.float32))
    assert math.isclose(value, ref_loss(name, Y, Z, A), rel_tol=1e-5)


def test_cross_entropies_are_stable_for_large_logits():
    Z = np.array([[800.0], [-800.0], [800.0], [30.0]])
    Y = np.array([[1.0], [0.0], [0.0], [0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        bce = LOSSES["binary_crossentropy"](Y, Z, None)
    assert math.isclose(bce, (800.0 + 30.0 + math.log1p(math.exp(-30.0))) / 4, rel_tol=1e-14)
    Z = np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]])
    Y = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        cce = LOSSES["categorical_crossentropy"](Y, Z, None)
    assert math.isclose(cce, (1000.0 + math.log(3.0)) / 2, rel_tol=1e-14)


def numeric_gradient(f, X, h=1e-6):
    grad = np.empty_like(X)
    for idx in np.ndindex(X.shape):
        Xp, Xm = X.copy(), X.copy()
        Xp[idx] += h
        Xm[idx] -= h
        grad[idx] = (f(Xp) - f(Xm)) / (2 * h)
    return grad


@pytest.mark.parametrize("name", list(LOSS_DERIVATIVES))
def test_loss_derivative_matches_finite_differences(name):
    Y, _, A, _ = problem(name)
    out = np.full_like(A, np.nan)
    LOSS_DERIVATIVES[name](Y, A, out)
    expected = numeric_gradient(lambda Ap: LOSSES[name](Y, None, Ap), A)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize(("activation", "loss"), list(FUSED))
def test_fused_gradient_matches_finite_differences(activation, loss):
    Y, Z, A, _ = problem(loss)

    def through_activation(Zp):
        Ap = np.empty_like(Zp)
        ACTIVATIONS[activation](Zp, Ap)
        return LOSSES[loss](Y, Zp, Ap)

    out = np.full_like(Z, np.nan)
    FUSED[(activation, loss)](Y, A, out)
    np.testing.assert_allclose(out, numeric_gradient(through_activation, Z),
                               rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize(("activation", "loss"), [("softmax", "mse"), ("sigmoid", "mae"),
                                                  ("gelu", "mse")])
def test_chain_through_the_activation(activation, loss):
    """The unfused path of the network: LOSS_DERIVATIVES, then DERIVATIVES."""
    Y, Z, _, _ = problem(loss)
    A = np.empty_like(Z)
    ACTIVATIONS[activation](Z, A)
    dZ = np.empty_like(A)
    LOSS_DERIVATIVES[loss](Y, A, dZ)
    DERIVATIVES[activation](Z, A, dZ)

    def through_activation(Zp):
        Ap = np.empty_like(Zp)
        ACTIVATIONS[activation](Zp, Ap)
        return LOSSES[loss](Y, Zp, Ap)

    np.testing.assert_allclose(dZ, numeric_gradient(through_activation, Z),
                               rtol=1e-6, atol=1e-10)


def test_accuracy():
    Y = np.eye(3)[[0, 1, 2, 1]]
    A = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.0, 0.1, 0.9], [0.2, 0.6, 0.2]])
    assert METRICS["accuracy"](Y, A) == 0.75
    Y = np.array([[1.0], [0.0], [1.0], [0.0], [1.0]])
    A = np.array([[0.9], [0.4], [0.2], [0.6], [0.51]])
    assert METRICS["accuracy"](Y, A) == 0.6


def test_mse_mae_metrics():
    Y = np.array([[1.0, 2.0], [3.0, 4.0]])
    A = np.array([[1.5, 2.0], [2.0, 6.0]])
    assert METRICS["mse"](Y, A) == (0.25 + 0 + 1 + 4) / 4
    assert METRICS["mae"](Y, A) == (0.5 + 0 + 1 + 2) / 4


def test_r2():
    Y = np.array([[1.0, 5.0, 2.0], [2.0, 5.0, 2.0], [4.0, 5.0, 2.0], [5.0, 5.0, 2.0]])
    A = np.array([[1.5, 5.0, 2.0], [2.0, 5.0, 2.0], [3.0, 5.0, 2.0], [5.0, 5.0, 2.1]])
    # column 0: 1 - 1.25 / 10; column 1 constant, predicted exactly: 1; column 2: 0
    assert math.isclose(METRICS["r2"](Y, A), (1 - 1.25 / 10 + 1 + 0) / 3, rel_tol=1e-15)
    assert METRICS["r2"](Y[:, :1], np.full((4, 1), 3.0)) == 0.0  # predicting the mean
    assert math.isnan(METRICS["r2"](Y[:1], A[:1]))


@pytest.mark.torch
def test_r2_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")
    rng = np.random.default_rng(1)
    Y = rng.standard_normal((40, 3))
    A = Y + 0.5 * rng.standard_normal((40, 3))
    Y[:, 2] = 1.0
    assert math.isclose(METRICS["r2"](Y, A), metrics.r2_score(Y, A), rel_tol=1e-12)


@pytest.mark.parametrize(("activation", "loss"), [("softmax", "categorical_crossentropy"),
                                                  ("sigmoid", "binary_crossentropy")])
def test_fused_gradient_of_a_confident_output_is_not_subnormal(activation, loss):
    """An output of 1e-37 (a confident wrong class) divided by the batch size would be
    subnormal; the gradient stays a normal number and within 1e-19 / n of (a - y) / n."""
    n, k = 64, 3
    A = np.full((n, k), 1e-37, np.float32)
    A[:, 0] = 1.0 - 2e-37
    Y = np.zeros((n, k), np.float32)
    Y[:, 0] = 1.0
    out = np.empty_like(A)
    FUSED[(activation, loss)](Y, A, out)
    size = n if loss == "categorical_crossentropy" else n * k
    tiny = np.finfo(np.float32).tiny
    assert np.all((out == 0) | (np.abs(out) >= tiny))
    np.testing.assert_allclose(out, (A.astype(np.float64) - Y) / size, rtol=0, atol=2e-19 / size)
