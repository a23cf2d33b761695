"""Initializers: the distributions' bounds and moments on a large draw, orthogonality,
seeding, and that only the Generator passed in is used."""

import math

import numpy as np
import pytest

from runner.engine.initializers import INITIALIZERS

FAN_IN, FAN_OUT = 400, 600
SHAPE = (FAN_IN, FAN_OUT)
N = FAN_IN * FAN_OUT

# name, params, expected (kind, a, b): uniform on [a, b) or normal with mean a, std b
DISTRIBUTIONS = [
    ("uniform", {"low": -0.3, "high": 0.7}, ("uniform", -0.3, 0.7)),
    ("uniform", {}, ("uniform", -0.05, 0.05)),
    ("normal", {"mean": 1.5, "std": 0.2}, ("normal", 1.5, 0.2)),
    ("normal", {}, ("normal", 0.0, 0.05)),
    ("xavier_uniform", {}, ("uniform", -math.sqrt(6 / 1000), math.sqrt(6 / 1000))),
    ("xavier_normal", {}, ("normal", 0.0, math.sqrt(2 / 1000))),
    ("he_uniform", {}, ("uniform", -math.sqrt(6 / 400), math.sqrt(6 / 400))),
    ("he_normal", {}, ("normal", 0.0, math.sqrt(2 / 400))),
    ("lecun_uniform", {}, ("uniform", -math.sqrt(3 / 400), math.sqrt(3 / 400))),
    ("lecun_normal", {}, ("normal", 0.0, math.sqrt(1 / 400))),
]
RANDOM = ["normal", "uniform", "xavier_uniform", "xavier_normal", "he_uniform", "he_normal",
          "lecun_uniform", "lecun_normal", "orthogonal"]


def draw(name, seed=0, shape=SHAPE, **params):
    return INITIALIZERS[name](np.random.default_rng(seed), shape, FAN_IN, FAN_OUT, **params)


def test_table_covers_the_vocabulary():
    assert sorted(INITIALIZERS) == sorted(
        ["zeros", "ones", "constant"] + RANDOM)


@pytest.mark.parametrize(("name", "params", "expected"), DISTRIBUTIONS)
def test_distribution(name, params, expected):
    W = draw(name, **params)
    assert W.shape == SHAPE and W.dtype == np.float64
    kind, a, b = expected
    if kind == "uniform":
        mean, std = (a + b) / 2, (b - a) / math.sqrt(12)
        assert W.min() >= a and W.max() < b
        assert W.min() < a + 1e-3 * (b - a) and W.max() > b - 1e-3 * (b - a)
    else:
        mean, std = a, b
        assert np.abs(W - mean).max() > 4 * std  # plain normal: not truncated at 2 std
    assert abs(W.mean() - mean) < 5 * std / math.sqrt(N)
    assert abs(W.std() / std - 1) < 5 / math.sqrt(2 * N)


@pytest.mark.parametrize("name", RANDOM[2:-1])
def test_bias_uses_the_layer_fans(name):
    b = draw(name, shape=(FAN_OUT,))
    assert b.shape == (FAN_OUT,)
    # a bias is given its layer's fans: it spreads like the layer's weights
    scale = np.sqrt(np.mean(np.square(draw(name, seed=1))))
    assert abs(np.sqrt(np.mean(b**2)) / scale - 1) < 0.15


def test_constant_zeros_ones():
    np.testing.assert_array_equal(draw("zeros", shape=(3, 2)), np.zeros((3, 2)))
    np.testing.assert_array_equal(draw("ones", shape=(4,)), np.ones(4))
    np.testing.assert_array_equal(draw("constant", shape=(2, 5), value=0.25),
                                  np.full((2, 5), 0.25))
    assert draw("constant", shape=(3,), value=2).dtype == np.float64


@pytest.mark.parametrize("shape", [(600, 400), (400, 600), (50, 50), (7, 1), (1, 7)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    W = draw("orthogonal", shape=shape, gain=gain)
    assert W.shape == shape
    rows, cols = shape
    gram = W.T @ W if rows >= cols else W @ W.T
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(shape)), atol=1e-12)


def test_orthogonal_vector_is_a_unit_row():
    b = draw("orthogonal", shape=(9,), gain=3.0)
    assert b.shape == (9,)
    assert math.isclose(np.linalg.norm(b), 3.0, rel_tol=1e-12)


def test_orthogonal_is_sign_corrected():
    # with the diagonal of R made positive, Q is Haar distributed: the diagonal of Q
    # averages 0 (numpy's QR alone gives a diagonal of mean about -0.13)
    diag = np.concatenate([np.diag(draw("orthogonal", seed=s, shape=(20, 20)))
                           for s in range(50)])
    assert abs(diag.mean()) < 5 / math.sqrt(20 * diag.size)
    q, r = np.linalg.qr(np.random.default_rng(0).standard_normal((20, 20)))
    np.testing.assert_allclose(draw("orthogonal", shape=(20, 20)), q * np.sign(np.diag(r)))


@pytest.mark.parametrize("name", RANDOM)
def test_seeding(name):
    np.testing.assert_array_equal(draw(name, seed=3, shape=(30, 20)),
                                  draw(name, seed=3, shape=(30, 20)))
    assert not np.array_equal(draw(name, seed=3, shape=(30, 20)),
                              draw(name, seed=4, shape=(30, 20)))


@pytest.mark.parametrize("name", RANDOM)
def test_global_rng_is_untouched(name):
    np.random.seed(123)
    _, keys, pos, *_ = np.random.get_state()
    draw(name, shape=(30, 20))
    _, keys_after, pos_after, *_ = np.random.get_state()
    np.testing.assert_array_equal(keys_after, keys)
    assert pos_after == pos
