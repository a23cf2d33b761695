"""Activations and their derivatives, as name -> function tables.

Shapes: Z (batch, units) before the activation, A = f(Z) after it, dA the gradient of
the loss with respect to A. The functions keep the dtype of their input (float32 or
float64) and work in place:

- ``ACTIVATIONS[name](Z, out, tmp=None, **params)`` writes f(Z) into ``out``; ``out`` may
  be ``Z``.
- ``DERIVATIVES[name](Z, A, dA, tmp=None, **params)`` multiplies ``dA`` in place by f'(Z),
  so that it then holds dL/dZ. Z and A are the cached forward buffers; they are not
  modified.

``tmp`` is an optional scratch array of Z's shape and dtype that the function may
overwrite; the network passes one it owns, so that the minibatch loop allocates nothing
(gelu, and the derivatives of elu and silu, still allocate temporaries of their own).

Exponentials are clipped where their result would overflow or fall below the smallest
normal number, so that extreme inputs raise no floating-point warning even under
``np.errstate(all="raise")``.
"""

import functools
import math

import numpy as np

_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@functools.cache
def _explim(dtype):
    """Largest integer L with exp(L) finite and 1 / (1 + exp(L)) a normal number."""
    return math.floor(-math.log(np.finfo(dtype).tiny))  # 708 for float64, 87 for float32


# --- erf and erfc: W. J. Cody, "Rational Chebyshev approximations for the error
# function", Math. Comp. 23 (1969), as in his netlib specfun CALERF. Coefficients are
# listed from the highest power down; each denominator is monic.
_P1 = (1.85777706184603153e-1, 3.16112374387056560e0, 1.13864154151050156e2,
       3.77485237685302021e2, 3.20937758913846947e3)
_Q1 = (1.0, 2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3,
       2.84423683343917062e3)
_P2 = (2.15311535474403846e-8, 5.64188496988670089e-1, 8.88314979438837594e0,
       6.61191906371416295e1, 2.98635138197400131e2, 8.81952221241769090e2,
       1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3)
_Q2 = (1.0, 1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2,
       1.62138957456669019e3, 3.29079923573345963e3, 4.36261909014324716e3,
       3.43936767414372164e3, 1.23033935480374942e3)
_P3 = (1.63153871373020978e-2, 3.05326634961232344e-1, 3.60344899949804439e-1,
       1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4)
_Q3 = (1.0, 2.56852019228982242e0, 1.87295284992346047e0, 5.27905102951428412e-1,
       6.05183413124413191e-2, 2.33520497626869185e-3)


def _ratio(p, q, t):
    """p(t) / q(t) by Horner's rule, in Cody's order of operations."""
    num, den = t * p[0], t.copy()
    for a, b in zip(p[1:-1], q[1:-1], strict=True):
        num += a
        num *= t
        den += b
        den *= t
    num += p[-1]
    den += q[-1]
    num /= den
    return num


def _exp_neg_square(t):
    """exp(-t^2), split as t = s + (t - s) with s = trunc(16 t) / 16 to keep t^2 exact."""
    s = np.trunc(t * 16.0) / 16.0
    return np.exp(-(s * s)) * np.exp(-((t - s) * (t + s)))


def _erfc_mid(t):
    """erfc(t) for 0.46875 < t <= 4."""
    return _exp_neg_square(t) * _ratio(_P2, _Q2, t)


def _erfc_tail(t):
    """erfc(t) for t > 4."""
    s = 1.0 / (t * t)
    return _exp_neg_square(t) * (1.0 / math.sqrt(math.pi) - s * _ratio(_P3, _Q3, s)) / t


def _erfc_zero(t):
    """erfc(t) for t beyond xbig, where it is below 1e-300 (f64) or 1e-36 (f32)."""
    return np.zeros_like(t)


def _cody(x, complement):
    """erf(x), or erfc(x) if `complement`, for a float array x. Each of Cody's ranges of
    |x| is gathered by index, evaluated, and put back."""
    x = np.asarray(x)
    x = x if x.dtype.kind == "f" else x.astype(np.float64)
    flat = x.ravel()
    y = np.abs(flat)
    r = np.full_like(y, np.nan)  # NaN stays NaN
    i = np.flatnonzero(y <= 0.46875)
    t = y.take(i)
    v = np.copysign(t * _ratio(_P1, _Q1, np.square(np.maximum(t, 1e-16))), flat.take(i))
    r.put(i, 1.0 - v if complement else v)  # erfc = 1 - erf
    xbig = 9.0 if y.dtype == np.float32 else 26.5
    for lo, hi, erfc_of in ((0.46875, 4.0, _erfc_mid), (4.0, xbig, _erfc_tail),
                            (xbig, np.inf, _erfc_zero)):
        i = np.flatnonzero((y > lo) & (y <= hi))
        v = erfc_of(y.take(i))  # erfc(|x|)
        negative = flat.take(i) < 0
        if complement:
            v[negative] = 2.0 - v[negative]  # erfc(-t) = 2 - erfc(t)
        else:
            v = (0.5 - v) + 0.5  # erf(t) = 1 - erfc(t)
            v[negative] *= -1.0
        r.put(i, v)
    return r.reshape(x.shape)


def erf(x):
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, elementwise (Cody's method)."""
    return _cody(x, complement=False)


def erfc(x):
    """erfc(x) = 1 - erf(x), elementwise, accurate in the upper tail."""
    return _cody(x, complement=True)


# --- activations: fn(Z, out, tmp=None, **params) writes f(Z) into out (out may be Z);
# tmp, when given, is scratch of Z's shape and dtype (distinct from Z and out).
def _scratch(tmp, Z):
    return np.empty_like(Z) if tmp is None else tmp


def identity(Z, out, tmp=None):
    """identity(z) = z."""
    if out is not Z:
        np.copyto(out, Z)


def sigmoid(Z, out, tmp=None):
    """sigmoid(z) = 1 / (1 + exp(-z))."""
    lim = _explim(Z.dtype)
    np.clip(Z, -lim, lim, out=out)
    np.negative(out, out=out)
    np.exp(out, out=out)
    out += 1.0
    np.reciprocal(out, out=out)


def tanh(Z, out, tmp=None):
    """tanh(z) = (exp(z) - exp(-z)) / (exp(z) + exp(-z))."""
    np.tanh(Z, out=out)


def relu(Z, out, tmp=None):
    """relu(z) = max(z, 0)."""
    np.maximum(Z, 0.0, out=out)


def leaky_relu(Z, out, tmp=None, alpha=0.01):
    """leaky_relu(z) = z if z > 0 else alpha * z."""
    t = np.minimum(Z, 0.0, out=_scratch(tmp, Z))
    t *= alpha
    np.maximum(Z, 0.0, out=out)
    out += t


def elu(Z, out, tmp=None, alpha=1.0):
    """elu(z) = z if z > 0 else alpha * (exp(z) - 1)."""
    t = np.minimum(Z, 0.0, out=_scratch(tmp, Z))
    np.expm1(t, out=t)
    t *= alpha
    np.maximum(Z, 0.0, out=out)
    out += t


def softplus(Z, out, tmp=None):
    """softplus(z) = log(1 + exp(z)), computed as log1p(exp(-|z|)) + max(z, 0)."""
    t = np.abs(Z, out=_scratch(tmp, Z))
    np.minimum(t, _explim(Z.dtype), out=t)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    np.maximum(Z, 0.0, out=out)
    out += t


def gelu(Z, out, tmp=None):
    """gelu(z) = 0.5 * z * (1 + erf(z / sqrt(2))) = z * Phi(z), Phi the normal CDF.

    Phi(z) is computed as erfc(-z / sqrt(2)) / 2, which keeps its accuracy for z << 0.
    """
    cdf = erfc(Z * -_SQRT1_2)
    cdf *= 0.5
    np.multiply(Z, cdf, out=out)


def silu(Z, out, tmp=None):
    """silu(z) = z * sigmoid(z) = z / (1 + exp(-z))."""
    lim = _explim(Z.dtype)
    t = np.clip(Z, -lim, lim, out=_scratch(tmp, Z))
    np.negative(t, out=t)
    np.exp(t, out=t)
    t += 1.0
    np.maximum(Z, -lim, out=out)  # silu(z) for z < -lim is below 1e-300 (f64): ~0
    out /= t


def softmax(Z, out, tmp=None):
    """softmax(z)_i = exp(z_i - c) / sum_j exp(z_j - c), row by row, c the row max.

    When every logit of the batch lies within +-_softmax_bound (about 42 for float32 and
    ten units), exp(z) neither overflows nor makes a probability fall below the smallest
    normal number, so the shift is left out (c = 0): the row max, a slow reduction over
    short rows, is not needed. Row sums are a matrix-vector product.

    Leaves the shift c in tmp[:, 0] and the row sum of exp(z - c) in tmp[:, 1] (for two
    units or more), from which the cross-entropy's value follows cheaply."""
    t = _scratch(tmp, Z)
    k = Z.shape[1]
    shift, total = t[:, :1], t[:, 1:2] if k > 1 else t[:, :1]  # (n, 1) each
    bound = _softmax_bound(k, Z.dtype)
    if Z.size and -bound <= np.minimum.reduce(Z, axis=None) and np.maximum.reduce(Z, axis=None) <= bound:
        shift[...] = 0.0
        np.exp(Z, out=out)
    else:
        np.maximum.reduce(Z, axis=1, keepdims=True, out=shift)
        np.subtract(Z, shift, out=out)
        np.maximum(out, 1.0 + math.log(k) - _explim(Z.dtype), out=out)
        np.exp(out, out=out)
    np.matmul(out, _ones(k, Z.dtype), out=total)
    out /= total


@functools.cache
def _softmax_bound(k, dtype):
    """B such that for logits in [-B, B] every exp(z) / sum exp(z) over k units is a
    normal number: exp(-2B) / k >= exp(1 - L), L = _explim."""
    return (_explim(dtype) - 1.0 - math.log(k)) / 2.0


@functools.cache
def _ones(k, dtype):
    """A read-only (k, 1) column of ones: row sums as a matrix-vector product."""
    ones = np.ones((k, 1), dtype)
    ones.flags.writeable = False
    return ones


# --- derivatives: fn(Z, A, dA, tmp=None, **params) multiplies dA in place by f'(Z);
# tmp, when given, is scratch of Z's shape and dtype.
def identity_derivative(Z, A, dA, tmp=None):
    """f'(z) = 1."""


def sigmoid_derivative(Z, A, dA, tmp=None):
    """f'(z) = a * (1 - a)."""
    t = np.subtract(1.0, A, out=_scratch(tmp, Z))
    t *= A
    dA *= t


def tanh_derivative(Z, A, dA, tmp=None):
    """f'(z) = 1 - a^2."""
    t = np.square(A, out=_scratch(tmp, Z))
    np.subtract(1.0, t, out=t)
    dA *= t


def relu_derivative(Z, A, dA, tmp=None):
    """f'(z) = 1 if z > 0 else 0."""
    t = np.greater(Z, 0.0, out=_scratch(tmp, Z))  # (batch, units): 1.0 or 0.0
    dA *= t


def leaky_relu_derivative(Z, A, dA, tmp=None, alpha=0.01):
    """f'(z) = 1 if z > 0 else alpha."""
    t = np.less_equal(Z, 0.0, out=_scratch(tmp, Z))  # (batch, units): 1.0 or 0.0
    t *= alpha - 1.0
    t += 1.0
    dA *= t


def elu_derivative(Z, A, dA, tmp=None, alpha=1.0):
    """f'(z) = 1 if z > 0 else alpha * exp(z) = a + alpha."""
    t = np.greater(Z, 0.0, out=_scratch(tmp, Z))  # (batch, units): 1.0 or 0.0
    t *= 1.0 - alpha
    t += alpha
    t += np.minimum(A, 0.0)  # a <= 0 where z <= 0 (alpha > 0)
    dA *= t


def softplus_derivative(Z, A, dA, tmp=None):
    """f'(z) = sigmoid(z) = 1 - exp(-a)."""
    t = np.negative(A, out=_scratch(tmp, Z))
    np.expm1(t, out=t)
    np.negative(t, out=t)
    dA *= t


def gelu_derivative(Z, A, dA, tmp=None):
    """f'(z) = Phi(z) + z * phi(z), with phi(z) = exp(-z^2 / 2) / sqrt(2 pi)."""
    bound = math.sqrt(2.0 * (_explim(Z.dtype) - 2))  # f'(z) is 0 or 1 beyond it
    z = np.clip(Z, -bound, bound)
    cdf = erfc(z * -_SQRT1_2)
    cdf *= 0.5
    pdf = np.square(z)
    pdf *= -0.5
    np.exp(pdf, out=pdf)
    pdf *= _INV_SQRT2PI
    pdf *= z
    pdf += cdf
    dA *= pdf


def silu_derivative(Z, A, dA, tmp=None):
    """f'(z) = s + a * (1 - s), with s = sigmoid(z)."""
    s = _scratch(tmp, Z)
    sigmoid(Z, s)
    t = np.subtract(1.0, s)
    t *= A
    t += s
    dA *= t


def softmax_derivative(Z, A, dA, tmp=None):
    """Jacobian-vector product per row: dz = a * (da - sum_j da_j a_j)."""
    t = _scratch(tmp, Z)[:, 0]  # (batch,)
    np.einsum("ij,ij->i", dA, A, out=t)
    dA -= t[:, None]  # (batch,) -> (batch, 1)
    dA *= A


ACTIVATIONS = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "gelu": gelu,
    "silu": silu,
    "softmax": softmax,
}

DERIVATIVES = {
    "identity": identity_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "elu": elu_derivative,
    "softplus": softplus_derivative,
    "gelu": gelu_derivative,
    "silu": silu_derivative,
    "softmax": softmax_derivative,
}
