"""Weight initializers, as a name -> function table.

``INITIALIZERS[name](rng, shape, fan_in, fan_out, **params)`` returns a new float64 array
of ``shape``: (fan_in, fan_out) for a weight matrix W, (units,) for a bias b, which is
given the fan_in and fan_out of its layer. The caller casts to the network's dtype.
All randomness comes from ``rng`` (a ``numpy.random.Generator``); normal draws are
plain, not truncated, as in PyTorch.
"""

import math

import numpy as np


def zeros(rng, shape, fan_in, fan_out):
    """All zeros."""
    return np.zeros(shape)


def ones(rng, shape, fan_in, fan_out):
    """All ones."""
    return np.ones(shape)


def constant(rng, shape, fan_in, fan_out, value=0.0):
    """Every entry equal to `value`."""
    return np.full(shape, float(value))


def normal(rng, shape, fan_in, fan_out, mean=0.0, std=0.05):
    """Draws from N(mean, std^2)."""
    return rng.normal(mean, std, size=shape)


def uniform(rng, shape, fan_in, fan_out, low=-0.05, high=0.05):
    """Draws from U[low, high)."""
    return rng.uniform(low, high, size=shape)


def xavier_uniform(rng, shape, fan_in, fan_out):
    """Glorot uniform: U[-limit, limit) with limit = sqrt(6 / (fan_in + fan_out))."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def xavier_normal(rng, shape, fan_in, fan_out):
    """Glorot normal: N(0, std^2) with std = sqrt(2 / (fan_in + fan_out))."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_uniform(rng, shape, fan_in, fan_out):
    """He (Kaiming) uniform: U[-limit, limit) with limit = sqrt(6 / fan_in)."""
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def he_normal(rng, shape, fan_in, fan_out):
    """He (Kaiming) normal: N(0, std^2) with std = sqrt(2 / fan_in)."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


def lecun_uniform(rng, shape, fan_in, fan_out):
    """LeCun uniform: U[-limit, limit) with limit = sqrt(3 / fan_in)."""
    limit = math.sqrt(3.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape)


def lecun_normal(rng, shape, fan_in, fan_out):
    """LeCun normal: N(0, std^2) with std = sqrt(1 / fan_in)."""
    return rng.normal(0.0, math.sqrt(1.0 / fan_in), size=shape)


def orthogonal(rng, shape, fan_in, fan_out, gain=1.0):
    """gain * Q, Q from the QR decomposition of a standard normal matrix (as PyTorch).

    For (rows, cols): the columns of Q are orthonormal when rows >= cols (Q^T Q = I),
    its rows when rows < cols (Q Q^T = I). The signs of Q follow the diagonal of R, so
    Q is uniformly (Haar) distributed. A 1-D shape (n,) is drawn as a (1, n) matrix.
    """
    rows, cols = (1, shape[0]) if len(shape) == 1 else (shape[0], math.prod(shape[1:]))
    a = rng.standard_normal((rows, cols))
    if rows < cols:
        a = a.T  # (cols, rows): tall, for a reduced QR
    q, r = np.linalg.qr(a)
    q *= np.copysign(1.0, np.diag(r))  # column j times sign(R_jj)
    if rows < cols:
        q = q.T  # back to (rows, cols)
    return (gain * q).reshape(shape)


INITIALIZERS = {
    "zeros": zeros,
    "ones": ones,
    "constant": constant,
    "normal": normal,
    "uniform": uniform,
    "xavier_uniform": xavier_uniform,
    "xavier_normal": xavier_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "lecun_uniform": lecun_uniform,
    "lecun_normal": lecun_normal,
    "orthogonal": orthogonal,
}
