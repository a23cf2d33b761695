"""Activations against scalar references written with `math`, derivatives against
central finite differences, erf against math.erf."""

import math

import numpy as np
import pytest

from runner.engine.activations import ACTIVATIONS, DERIVATIVES, erf, erfc

NAMES = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "gelu",
         "silu", "softmax"]
PARAMS = [(name, {}) for name in NAMES] + [("leaky_relu", {"alpha": 0.2}),
                                           ("elu", {"alpha": 0.5})]


def _sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


SCALAR = {
    "identity": lambda z: z,
    "sigmoid": _sigmoid,
    "tanh": math.tanh,
    "relu": lambda z: max(z, 0.0),
    "leaky_relu": lambda z, alpha=0.01: z if z > 0 else alpha * z,
    "elu": lambda z, alpha=1.0: z if z > 0 else alpha * math.expm1(z),
    "softplus": lambda z: math.log1p(math.exp(-abs(z))) + max(z, 0.0),
    "gelu": lambda z: 0.5 * z * math.erfc(-z / math.sqrt(2.0)),  # = 0.5 z (1 + erf(z/√2))
    "silu": lambda z: z * _sigmoid(z),
}


def reference(name, Z, **params):
    """float64 reference of f(Z), element by element (row by row for softmax)."""
    Z = np.asarray(Z, dtype=np.float64)
    if name == "softmax":
        rows = []
        for row in Z:
            e = [math.exp(z - max(row)) for z in row]
            rows.append([v / math.fsum(e) for v in e])
        return np.array(rows)
    f = SCALAR[name]
    return np.array([[f(z, **params) for z in row] for row in Z])


def sample(dtype, rng=None):
    """(64, 6) pre-activations: a grid over [-30, 30] plus normal draws."""
    rng = rng or np.random.default_rng(0)
    grid = np.linspace(-30.0, 30.0, 6 * 32).reshape(32, 6)
    return np.vstack([grid, 3.0 * rng.standard_normal((32, 6))]).astype(dtype)


def test_tables_cover_the_vocabulary():
    assert list(ACTIVATIONS) == NAMES
    assert list(DERIVATIVES) == NAMES


@pytest.mark.parametrize(("name", "params"), PARAMS)
@pytest.mark.parametrize(("dtype", "rtol"), [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_activation_matches_reference(name, params, dtype, rtol):
    Z = sample(dtype)
    out = np.full_like(Z, np.nan)
    ACTIVATIONS[name](Z, out, **params)
    assert out.dtype == dtype
    atol = 0.0 if dtype == np.float64 else 1e-30
    np.testing.assert_allclose(out, reference(name, Z, **params), rtol=rtol, atol=atol)
    # in place: out is Z, as inference runs
    Z2 = Z.copy()
    ACTIVATIONS[name](Z2, Z2, **params)
    np.testing.assert_array_equal(Z2, out)


def test_gelu_is_the_erf_form():
    Z = np.linspace(-6.0, 6.0, 121).reshape(11, 11)
    out = np.empty_like(Z)
    ACTIVATIONS["gelu"](Z, out)
    erf_form = np.vectorize(lambda z: 0.5 * z * (1.0 + math.erf(z / math.sqrt(2.0))))(Z)
    np.testing.assert_allclose(out, erf_form, rtol=1e-12, atol=1e-15)


def extremes(dtype):
    big = 1e300 if dtype == np.float64 else 1e38
    tiny = 1e-300 if dtype == np.float64 else 1e-30
    z = [-big, -1e4, -800.0, -100.0, -40.0, -1.0, -tiny, 0.0, tiny, 1.0, 40.0, 100.0,
         800.0, 1e4, big]
    return np.array([z, z[::-1]], dtype=dtype)


@pytest.mark.parametrize(("name", "params"), PARAMS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_inputs_raise_no_warning(name, params, dtype):
    Z = extremes(dtype)
    A = np.empty_like(Z)
    with np.errstate(all="raise"):
        ACTIVATIONS[name](Z, A, **params)
    assert np.all(np.isfinite(A))
    big = Z[0, -1]
    right, left = A[0, -1], A[0, 0]  # f(big), f(-big)
    expected = {
        "sigmoid": (1.0, 0.0), "tanh": (1.0, -1.0), "relu": (big, 0.0),
        "softplus": (big, 0.0), "gelu": (big, 0.0), "silu": (big, 0.0),
        "elu": (big, -params.get("alpha", 1.0)),
    }
    if name in expected:
        np.testing.assert_allclose([right, left], expected[name], rtol=1e-6, atol=1e-30)
    if name == "softmax":
        np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-6)
        assert A[0, -1] == 1.0 and A[1, 0] == 1.0
    dA = np.ones_like(Z)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        DERIVATIVES[name](Z, A, dA, **params)
    assert np.all(np.isfinite(dA))


def finite_difference(name, Z, dA, params, h=1e-5):
    """dL/dZ for L = sum(dA * f(Z)), by central differences."""
    def f(Zp):
        A = np.empty_like(Zp)
        ACTIVATIONS[name](Zp, A, **params)
        return A

    if name != "softmax":  # elementwise: perturb every entry at once
        return dA * (f(Z + h) - f(Z - h)) / (2 * h)
    grad = np.empty_like(Z)  # the full Jacobian-vector product, one entry at a time
    for i, j in np.ndindex(Z.shape):
        Zp, Zm = Z.copy(), Z.copy()
        Zp[i, j] += h
        Zm[i, j] -= h
        grad[i, j] = np.sum(dA[i] * (f(Zp)[i] - f(Zm)[i])) / (2 * h)
    return grad


@pytest.mark.parametrize(("name", "params"), PARAMS)
def test_derivative_matches_finite_differences(name, params):
    rng = np.random.default_rng(1)
    Z = 2.0 * rng.standard_normal((5, 4))
    Z[np.abs(Z) < 1e-2] = 0.5  # keep away from the kinks of relu, leaky_relu and elu
    dA = rng.standard_normal(Z.shape)
    A = np.empty_like(Z)
    ACTIVATIONS[name](Z, A, **params)
    Z0, A0, dZ = Z.copy(), A.copy(), dA.copy()
    DERIVATIVES[name](Z, A, dZ, **params)
    np.testing.assert_array_equal(Z, Z0)  # the cached forward buffers are left alone
    np.testing.assert_array_equal(A, A0)
    np.testing.assert_allclose(dZ, finite_difference(name, Z, dA, params),
                               rtol=1e-6, atol=1e-9)


def test_derivatives_keep_float32():
    Z = sample(np.float32)
    for name in NAMES:
        A, dA = np.empty_like(Z), np.ones_like(Z)
        ACTIVATIONS[name](Z, A)
        DERIVATIVES[name](Z, A, dA)
        assert dA.dtype == np.float32


def test_erf_matches_math_erf():
    x = np.concatenate([np.linspace(-8.0, 8.0, 40001), np.linspace(-40.0, 40.0, 4001),
                        [0.0, 1e-300, -1e-300, 1e-20, 0.46875, 4.0, 1e300, -1e300]])
    np.testing.assert_allclose(erf(x), [math.erf(v) for v in x], rtol=2e-15, atol=0)
    with np.errstate(all="raise"):
        erf(x)
    assert np.isnan(erf(np.array([np.nan]))).all()


def test_erfc_matches_math_erfc_in_the_tail():
    x = np.concatenate([np.linspace(-6.0, 26.0, 32001), [0.0, 0.46875, 4.0]])
    np.testing.assert_allclose(erfc(x), [math.erfc(v) for v in x], rtol=2e-14, atol=0)
    far = np.array([26.5, 27.0, 40.0, 1e300])
    np.testing.assert_allclose(erfc(far), [math.erfc(v) for v in far], rtol=0, atol=1e-300)
    assert erfc(np.array([-40.0]))[0] == 2.0


def test_erf_float32():
    x = np.linspace(-12.0, 12.0, 24001).astype(np.float32)
    with np.errstate(all="raise"):
        y, yc = erf(x), erfc(x)
    assert y.dtype == yc.dtype == np.float32
    ref = np.array([math.erf(v) for v in x.astype(np.float64)])
    np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6)
    tail = (x > 0) & (x < 9)
    refc = np.array([math.erfc(v) for v in x[tail].astype(np.float64)])
    np.testing.assert_allclose(yc[tail], refc, rtol=2e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_paths_agree(dtype):
    """Logits within the bound take the path without the row max; shifted by a
    constant (softmax is shift-invariant) past the bound they take the shifted path.
    Both match the float64 reference, and neither gives a subnormal probability."""
    from runner.engine.activations import _softmax_bound

    rng = np.random.default_rng(5)
    k = 10
    bound = _softmax_bound(k, dtype)
    Z = rng.uniform(-bound, bound, (200, k)).astype(dtype)
    Z[0] = [-bound] * (k - 1) + [bound]  # the widest row the fast path accepts
    ref = reference("softmax", Z)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for shift in (0.0, 2 * bound):
        out = np.empty_like(Z)
        with np.errstate(all="raise"):
            ACTIVATIONS["softmax"](Z + dtype(shift), out=out)
        assert out.dtype == dtype
        np.testing.assert_allclose(out, ref, rtol=rtol * 10, atol=0)
        assert out.min() >= np.finfo(dtype).tiny
