"""The compiled loops (numba), each the fusion of a run of numpy's in-place operations.

Every loop repeats the numpy path's operations in its order and its dtype, element by
element, so that its result is bit-identical: scalars arrive already cast to the arrays'
dtype (numpy 2 computes ``float32_array * 0.9`` in float32; numba, given a Python
float, would compute in float64), and each intermediate stays in that dtype. No
transcendental function is called here (numba's libm could round differently from
numpy's exp, tanh, expm1, log1p): the callers apply numpy's on whole arrays between
two loops. Reductions whose order numpy picks (pairwise sums, matrix products) stay in
numpy too; the one reduction here, the bias gradient, adds rows in order as numpy's
``add.reduce(axis=0)`` does over a C-contiguous array of two columns or more.

numpy's ``maximum(a, b)`` and ``minimum(a, b)`` return ``a`` when it is NaN and ``b``
when the two are equal (so ``maximum(-0.0, 0.0)`` is ``0.0``); ``_mx`` and ``_mn``
do the same. Shapes: Z, A, dA, T, out (n, k); b (k,); Y (n, k); flat buffers (P,).
"""

import numpy as np
from numba import njit

jit = njit(cache=True, nogil=True, fastmath=False, error_model="numpy")


@jit
def _mx(a, b):
    return a if (a > b or a != a) else b


@jit
def _mn(a, b):
    return a if (a < b or a != a) else b


# --- forward: bias add (Z += b) fused with the activation's loops -------------------
@jit
def bias_identity(Z, b, has_b, out):
    """Z += b; out = Z."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            z = Z[i, j] + b[j] if has_b else Z[i, j]
            Z[i, j] = z
            out[i, j] = z


@jit
def bias_relu(Z, b, has_b, out, zero):
    """Z += b; out = maximum(Z, 0)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            z = Z[i, j] + b[j] if has_b else Z[i, j]
            Z[i, j] = z
            out[i, j] = _mx(z, zero)


@jit
def bias_leaky_relu(Z, b, has_b, out, zero, alpha):
    """Z += b; out = maximum(Z, 0) + minimum(Z, 0) * alpha."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            z = Z[i, j] + b[j] if has_b else Z[i, j]
            Z[i, j] = z
            out[i, j] = _mx(z, zero) + _mn(z, zero) * alpha


@jit
def bias_neg_clip(Z, b, has_b, T, lim):
    """Z += b; T = -clip(Z, -lim, lim) (sigmoid's and silu's argument of exp)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            z = Z[i, j] + b[j] if has_b else Z[i, j]
            Z[i, j] = z
            T[i, j] = -_mn(_mx(z, -lim), lim)


@jit
def reciprocal_plus_one(T, out, one):
    """out = 1 / (T + 1) (sigmoid after exp)."""
    n, k = T.shape
    for i in range(n):
        for j in range(k):
            out[i, j] = one / (T[i, j] + one)


@jit
def bias_min0(Z, b, has_b, T, zero):
    """Z += b; T = minimum(Z, 0) (elu's argument of expm1)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            z = Z[i, j] + b[j] if has_b else Z[i, j]
            Z[i, j] = z
            T[i, j] = _mn(z, zero)


@jit
def max0_plus_scaled(Z, T, out, zero, alpha):
    """out = maximum(Z, 0) + T * alpha (elu after expm1)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            out[i, j] = _mx(Z[i, j], zero) + T[i, j] * alpha


@jit
def bias_neg_abs_min(Z, b, has_b, T, lim):
    """Z += b; T = -minimum(|Z|, lim) (softplus's argument of exp)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            z = Z[i, j] + b[j] if has_b else Z[i, j]
            Z[i, j] = z
            T[i, j] = -_mn(abs(z), lim)


@jit
def max0_plus(Z, T, out, zero):
    """out = maximum(Z, 0) + T (softplus after exp and log1p)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            out[i, j] = _mx(Z[i, j], zero) + T[i, j]


@jit
def silu_finish(Z, T, out, neglim, one):
    """out = maximum(Z, -lim) / (T + 1) (silu after exp)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            t = T[i, j] + one
            out[i, j] = _mx(Z[i, j], neglim) / t


@jit
def bias_bounded(Z, b, has_b, bound):
    """Z += b; whether every logit lies within [-bound, bound] (softmax's test; False
    at a NaN, as numpy's min and max reductions propagate it)."""
    n, k = Z.shape
    ok = True
    for i in range(n):
        for j in range(k):
            z = Z[i, j] + b[j] if has_b else Z[i, j]
            Z[i, j] = z
            if not (-bound <= z and z <= bound):
                ok = False
    return ok


@jit
def divide_rows(out, total):
    """out /= total, total (n, 1) (softmax's normalization)."""
    n, k = out.shape
    for i in range(n):
        s = total[i, 0]
        for j in range(k):
            out[i, j] = out[i, j] / s


# --- backward: dA *= f'(Z), the output gradients, the bias gradient -----------------
@jit
def relu_derivative(Z, dA, zero, one):
    """dA *= (Z > 0)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            dA[i, j] = dA[i, j] * (one if Z[i, j] > zero else zero)


@jit
def leaky_relu_derivative(Z, dA, zero, one, am1):
    """dA *= (Z <= 0) * (alpha - 1) + 1."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            t = (one if Z[i, j] <= zero else zero) * am1
            dA[i, j] = dA[i, j] * (t + one)


@jit
def elu_derivative(Z, A, dA, zero, one, oma, alpha):
    """dA *= (Z > 0) * (1 - alpha) + alpha + minimum(A, 0)."""
    n, k = Z.shape
    for i in range(n):
        for j in range(k):
            t = (one if Z[i, j] > zero else zero) * oma
            t = t + alpha
            t = t + _mn(A[i, j], zero)
            dA[i, j] = dA[i, j] * t


@jit
def sigmoid_derivative(A, dA, one):
    """dA *= (1 - A) * A."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            a = A[i, j]
            dA[i, j] = dA[i, j] * ((one - a) * a)


@jit
def tanh_derivative(A, dA, one):
    """dA *= 1 - A^2."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            a = A[i, j]
            dA[i, j] = dA[i, j] * (one - a * a)


@jit
def silu_derivative_finish(T, A, dA, one):
    """s = 1 / (T + 1) (T = exp(-clip(Z))); dA *= (1 - s) * A + s."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            s = one / (T[i, j] + one)
            t = (one - s) * A[i, j]
            dA[i, j] = dA[i, j] * (t + s)


@jit
def softmax_derivative_finish(t, A, dA):
    """dA = (dA - t[:, None]) * A, t (n,) the row dots of dA and A."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            dA[i, j] = (dA[i, j] - t[i]) * A[i, j]


@jit
def fused_gradient(A, Y, out, floor, scale):
    """out = (maximum(A, floor) - Y) * scale (sigmoid + BCE, softmax + CCE)."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            out[i, j] = (_mx(A[i, j], floor) - Y[i, j]) * scale


@jit
def mse_derivative(A, Y, out, scale):
    """out = (A - Y) * scale."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            out[i, j] = (A[i, j] - Y[i, j]) * scale


@jit
def mae_derivative(A, Y, out, size, zero, one):
    """out = sign(A - Y) / size (sign(0) = +0, sign(NaN) = NaN)."""
    n, k = A.shape
    for i in range(n):
        for j in range(k):
            d = A[i, j] - Y[i, j]
            s = one if d > zero else (-one if d < zero else (zero if d == zero else d))
            out[i, j] = s / size


@jit
def column_sums(dZ, db, zero):
    """db = sum of dZ's rows, added in order from 0 (numpy's add.reduce(axis=0) over a
    C-contiguous array of two columns or more)."""
    n, k = dZ.shape
    for j in range(k):
        db[j] = zero
    for i in range(n):
        for j in range(k):
            db[j] = db[j] + dZ[i, j]


# --- optimizer steps over the flat buffers ----------------------------------------
@jit
def _flushed(x, flush, tiny, zero, one):
    """x * (|x| >= tiny) on a flush step (subnormals to zero, NaN and inf kept)."""
    return x * (one if abs(x) >= tiny else zero) if flush else x


@jit
def sgd_step(p, grads, v, lr, m, wd, use_wd, has_m, first, nesterov, flush, tiny,
             zero, one):
    """SGD with momentum and Nesterov momentum (optimizers.SGD.step), one pass."""
    for i in range(p.shape[0]):
        g = grads[i]
        if use_wd:
            g = p[i] * wd + g
        if has_m:
            if first:
                vi = g
            else:
                vi = _flushed(v[i] * m + g, flush, tiny, zero, one)
            v[i] = vi
            t = (vi * m + g) * lr if nesterov else vi * lr
        else:
            t = g * lr
        p[i] = p[i] - t


@jit
def adam_step(p, grads, m, v, b1, b2, epsc, step, wd, use_wd, decay, decoupled, flush,
              tiny, zero, one):
    """Adam (optimizers.Adam._adam, with its L2 term) or AdamW (p *= decay first), one
    pass."""
    for i in range(p.shape[0]):
        pi = p[i]
        if decoupled:
            pi = pi * decay
        g = grads[i]
        if use_wd:
            g = pi * wd + g
        mi = _flushed(m[i] * b1 + g, flush, tiny, zero, one)
        vi = _flushed(v[i] * b2 + g * g, flush, tiny, zero, one)
        m[i] = mi
        v[i] = vi
        t = np.sqrt(vi) + epsc
        t = mi / t
        p[i] = pi - t * step


@jit
def rmsprop_step(p, grads, v, b, lr, alpha, oma, eps, mom, wd, use_wd, has_b, flush,
                 tiny, zero, one):
    """RMSprop, with momentum (optimizers.RMSprop.step), one pass."""
    for i in range(p.shape[0]):
        g = grads[i]
        if use_wd:
            g = p[i] * wd + g
        t = (g * oma) * g
        vi = _flushed(v[i] * alpha + t, flush, tiny, zero, one)
        v[i] = vi
        t = g / (np.sqrt(vi) + eps)
        if has_b:
            bi = _flushed(b[i], flush, tiny, zero, one) * mom + t
            b[i] = bi
            t = bi * lr
        else:
            t = t * lr
        p[i] = p[i] - t
