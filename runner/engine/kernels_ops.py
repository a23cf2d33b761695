"""The compiled forms of the engine's operations, as name -> function tables mirroring
activations.py, losses.py and optimizers.py (imported only when the compiled path is
chosen: it imports numba).

- ``FORWARD[name](Z, b, out, tmp, **params)``: Z += b (b (units,) or None), then
  ACTIVATIONS[name](Z, out, tmp).
- ``DERIVATIVES[name](Z, A, dA, tmp, **params)``: as activations.DERIVATIVES.
- ``FUSED[(activation, loss)](Y, A, out)`` and ``LOSS_DERIVATIVES[name](Y, A, out)``:
  as in losses.py.
- ``column_sums(dZ, db)``: db = dZ summed over rows, as np.add.reduce(dZ, axis=0).
- ``STEPS[optimizer class name](optimizer, grads)``: as its ``step(grads)``.

numpy's exp, expm1, log1p and the row sums (a matrix product) run between the loops,
on whole arrays, as on the numpy path. Operations without a compiled form fall back to
the numpy function for that operation alone: tanh's forward (a bias add and np.tanh,
nothing to fuse), gelu's forward and derivative (Cody's erfc by ranges), softplus's
derivative (one expm1 between two short loops), the bias gradient of a one-unit layer
(numpy sums one column pairwise), the loss values (pairwise float64 sums), and the
softmax's row max when a logit lies beyond its bound (a rare path).
"""

import functools

import numpy as np

from runner.engine import activations
from runner.engine import kernels_jit as K
from runner.engine.activations import _explim, _ones, _softmax_bound
from runner.engine.losses import _floor


@functools.cache
def _c(dtype):
    """(zero, one, an empty bias) of `dtype`: scalars the loops compute with."""
    t = np.dtype(dtype).type
    return t(0.0), t(1.0), np.zeros(0, dtype)


def _b(b, Z):
    """(bias array, has_bias) for the loops."""
    return (_c(Z.dtype)[2], False) if b is None else (b, True)


# --- forward ----------------------------------------------------------------------
def identity(Z, b, out, tmp=None):
    K.bias_identity(Z, *_b(b, Z), out)


def relu(Z, b, out, tmp=None):
    K.bias_relu(Z, *_b(b, Z), out, _c(Z.dtype)[0])


def leaky_relu(Z, b, out, tmp=None, alpha=0.01):
    K.bias_leaky_relu(Z, *_b(b, Z), out, _c(Z.dtype)[0], Z.dtype.type(alpha))


def sigmoid(Z, b, out, tmp=None):
    K.bias_neg_clip(Z, *_b(b, Z), out, Z.dtype.type(_explim(Z.dtype)))
    np.exp(out, out=out)
    K.reciprocal_plus_one(out, out, _c(Z.dtype)[1])


def elu(Z, b, out, tmp, alpha=1.0):
    K.bias_min0(Z, *_b(b, Z), tmp, _c(Z.dtype)[0])
    np.expm1(tmp, out=tmp)
    K.max0_plus_scaled(Z, tmp, out, _c(Z.dtype)[0], Z.dtype.type(alpha))


def softplus(Z, b, out, tmp):
    K.bias_neg_abs_min(Z, *_b(b, Z), tmp, Z.dtype.type(_explim(Z.dtype)))
    np.exp(tmp, out=tmp)
    np.log1p(tmp, out=tmp)
    K.max0_plus(Z, tmp, out, _c(Z.dtype)[0])


def silu(Z, b, out, tmp):
    lim = Z.dtype.type(_explim(Z.dtype))
    K.bias_neg_clip(Z, *_b(b, Z), tmp, lim)
    np.exp(tmp, out=tmp)
    K.silu_finish(Z, tmp, out, -lim, _c(Z.dtype)[1])


def softmax(Z, b, out, tmp):
    """activations.softmax after Z += b; the bound test rides on the bias loop."""
    k = Z.shape[1]
    shift, total = tmp[:, :1], tmp[:, 1:2] if k > 1 else tmp[:, :1]  # (n, 1) each
    bound = Z.dtype.type(_softmax_bound(k, Z.dtype))
    if not (K.bias_bounded(Z, *_b(b, Z), bound) and Z.size):
        activations.softmax(Z, out, tmp)  # a logit beyond the bound: the row max
        return
    shift[...] = 0.0
    np.exp(Z, out=out)
    np.matmul(out, _ones(k, Z.dtype), out=total)
    K.divide_rows(out, total)


def _numpy_forward(act):
    """The numpy path for an activation without a compiled form: Z += b, then act."""
    def forward(Z, b, out, tmp=None, **params):
        if b is not None:
            Z += b
        act(Z, out, tmp=tmp, **params)
    return forward


# --- derivatives -------------------------------------------------------------------
def identity_derivative(Z, A, dA, tmp=None):
    pass


def relu_derivative(Z, A, dA, tmp=None):
    K.relu_derivative(Z, dA, *_c(Z.dtype)[:2])


def leaky_relu_derivative(Z, A, dA, tmp=None, alpha=0.01):
    K.leaky_relu_derivative(Z, dA, *_c(Z.dtype)[:2], Z.dtype.type(alpha - 1.0))


def elu_derivative(Z, A, dA, tmp=None, alpha=1.0):
    t = Z.dtype.type
    K.elu_derivative(Z, A, dA, *_c(Z.dtype)[:2], t(1.0 - alpha), t(alpha))


def sigmoid_derivative(Z, A, dA, tmp=None):
    K.sigmoid_derivative(A, dA, _c(Z.dtype)[1])


def tanh_derivative(Z, A, dA, tmp=None):
    K.tanh_derivative(A, dA, _c(Z.dtype)[1])


def silu_derivative(Z, A, dA, tmp):
    K.bias_neg_clip(Z, _c(Z.dtype)[2], False, tmp, Z.dtype.type(_explim(Z.dtype)))
    np.exp(tmp, out=tmp)
    K.silu_derivative_finish(tmp, A, dA, _c(Z.dtype)[1])


def softmax_derivative(Z, A, dA, tmp):
    t = tmp[:, 0]  # (batch,)
    np.einsum("ij,ij->i", dA, A, out=t)
    K.softmax_derivative_finish(t, A, dA)


# --- losses and the bias gradient ---------------------------------------------------
def fused_binary(Y, A, out):
    K.fused_gradient(A, Y, out, A.dtype.type(_floor(A.dtype)), A.dtype.type(1.0 / Y.size))


def fused_categorical(Y, A, out):
    K.fused_gradient(A, Y, out, A.dtype.type(_floor(A.dtype)),
                     A.dtype.type(1.0 / Y.shape[0]))


def mse_derivative(Y, A, out):
    K.mse_derivative(A, Y, out, A.dtype.type(2.0 / Y.size))


def mae_derivative(Y, A, out):
    K.mae_derivative(A, Y, out, A.dtype.type(Y.size), *_c(A.dtype)[:2])


def column_sums(dZ, db):
    """db (units,) = the sum of dZ's rows (n, units)."""
    if dZ.shape[1] < 2:  # one column: numpy sums it pairwise
        np.add.reduce(dZ, axis=0, out=db)
    else:
        K.column_sums(dZ, db, _c(dZ.dtype)[0])


# --- optimizers ----------------------------------------------------------------------
def _flags(opt):
    """(flush now, tiny, zero, one) of optimizer `opt` after it counted this step."""
    zero, one, _ = _c(opt.params.dtype)
    return opt.t % opt.flush_every == 0, opt._tiny, zero, one


def sgd_step(opt, grads):
    t = opt.params.dtype.type
    opt.t += 1
    v = opt._v if opt._v is not None else opt._tmp
    K.sgd_step(opt.params, grads, v, t(opt.lr), t(opt.momentum), t(opt.weight_decay),
               bool(opt.weight_decay), bool(opt.momentum), opt.t == 1, bool(opt.nesterov),
               *_flags(opt))


def adam_step(opt, grads, decoupled=False):
    t = opt.params.dtype.type
    opt.t += 1
    c = ((1.0 - opt.beta2) / (1.0 - opt.beta2**opt.t)) ** 0.5
    step_size = opt.lr * (1.0 - opt.beta1) / ((1.0 - opt.beta1**opt.t) * c)
    K.adam_step(opt.params, grads, opt._m, opt._v, t(opt.beta1), t(opt.beta2),
                t(opt.eps / c), t(step_size), t(opt.weight_decay),
                bool(opt.weight_decay) and not decoupled,
                t(1.0 - opt.lr * opt.weight_decay), decoupled, *_flags(opt))


def adamw_step(opt, grads):
    adam_step(opt, grads, decoupled=True)


def rmsprop_step(opt, grads):
    t = opt.params.dtype.type
    opt.t += 1
    b = opt._b if opt._b is not None else opt._tmp
    K.rmsprop_step(opt.params, grads, opt._v, b, t(opt.lr), t(opt.alpha), t(1.0 - opt.alpha),
                   t(opt.eps), t(opt.momentum), t(opt.weight_decay), bool(opt.weight_decay),
                   opt._b is not None, *_flags(opt))


FORWARD = {
    "identity": identity,
    "sigmoid": sigmoid,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "silu": silu,
    "softmax": softmax,
}  # tanh, gelu: numpy (_numpy_forward)

DERIVATIVES = {
    "identity": identity_derivative,
    "sigmoid": sigmoid_derivative,
    "tanh": tanh_derivative,
    "relu": relu_derivative,
    "leaky_relu": leaky_relu_derivative,
    "elu": elu_derivative,
    "silu": silu_derivative,
    "softmax": softmax_derivative,
}  # softplus, gelu: numpy

FUSED = {
    ("sigmoid", "binary_crossentropy"): fused_binary,
    ("softmax", "categorical_crossentropy"): fused_categorical,
}

LOSS_DERIVATIVES = {"mse": mse_derivative, "mae": mae_derivative}

STEPS = {"SGD": sgd_step, "Adam": adam_step, "AdamW": adamw_step, "RMSprop": rmsprop_step}


def warm(dtype="float32"):
    """Call every loop once on small arrays of `dtype`, laid out as the network's
    buffers are, so that numba compiles (or loads) them all now rather than one by one
    in later fits."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    n, k = 3, 4
    Z, T, A, dA = (rng.standard_normal((n + 1, k)).astype(dtype)[:n] for _ in range(4))
    b, Y = Z[0].copy(), np.abs(A)
    for name, forward in FORWARD.items():
        forward(Z, b, A, T)
        forward(Z, None, Z, T)
        if name in DERIVATIVES:
            DERIVATIVES[name](Z, A, dA, T)
    for gradient in (*FUSED.values(), *LOSS_DERIVATIVES.values()):
        gradient(Y, A, dA)
    column_sums(dA, b)
    params = rng.standard_normal(8).astype(dtype)  # an optimizer's attributes, no more
    opt = SimpleNamespace(params=params, t=0, lr=0.1, momentum=0.9, nesterov=False,
                          weight_decay=0.0, beta1=0.9, beta2=0.999, eps=1e-8, alpha=0.99,
                          flush_every=32, _tiny=np.finfo(dtype).tiny,
                          **{k: np.zeros_like(params) for k in ("_m", "_v", "_b", "_tmp")})
    for step in STEPS.values():
        step(opt, params.copy())
