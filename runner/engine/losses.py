"""Losses, their gradients and the metrics, as name -> function tables.

Shapes: Y (n, k) the targets, Z (n, k) the output layer's pre-activation (logits),
A (n, k) its output. Losses are means, as PyTorch's ``reduction="mean"``: over the
batch and the outputs for mse, mae and binary_crossentropy, over the batch for
categorical_crossentropy. Values are accumulated in float64 and returned as floats.

- ``LOSSES[name](Y, Z, A, work=None) -> float``; ``work``, when given, is scratch: a 1-D
  array of Z's dtype with at least n * (k + 2) elements, so that the minibatch loop
  allocates nothing.
- ``LOSS_DERIVATIVES[name](Y, A, out)`` writes dL/dA into ``out`` (n, k).
- ``FUSED[(activation, loss)](Y, A, out)`` writes dL/dZ into ``out`` (n, k) for the
  pairs whose gradient simplifies; the network uses it instead of LOSS_DERIVATIVES
  followed by the activation's derivative. The cross-entropies are defined only with
  their output activation (sigmoid, softmax), so they appear in FUSED alone.
- ``FUSED_VALUES[(activation, loss)](Y, Z, tmp)`` gives the value of LOSSES[loss] from
  the scratch ``tmp`` (n, k) the activation filled (softmax: its row max and row sum),
  which saves recomputing them; only for k >= 2.
- ``METRICS[name](Y, A) -> float``
"""

import functools

import numpy as np


def _parts(work, Z, rows=0):
    """Scratch views carved from `work` (1-D, Z's dtype, at least n * (k + rows)
    elements; allocated when None): T (n, k), then `rows` arrays (n, 1)."""
    n, k = Z.shape
    if work is None:
        work = np.empty(n * (k + rows), Z.dtype)
    T = work[: n * k].reshape(n, k)
    return [T] + [work[n * (k + i) : n * (k + i + 1)].reshape(n, 1) for i in range(rows)]


def _mean(T):
    """The mean of T, accumulated in float64."""
    return float(np.add.reduce(T, axis=None, dtype=np.float64) / T.size)


def mse(Y, Z, A, work=None):
    """mean((a - y)^2) over the batch and the outputs."""
    (T,) = _parts(work, A)
    np.subtract(A, Y, out=T)
    np.square(T, out=T)
    return _mean(T)


def mae(Y, Z, A, work=None):
    """mean(|a - y|) over the batch and the outputs."""
    (T,) = _parts(work, A)
    np.subtract(A, Y, out=T)
    np.abs(T, out=T)
    return _mean(T)


def binary_crossentropy(Y, Z, A, work=None):
    """mean(max(z, 0) - z * y + log(1 + exp(-|z|))) over all elements, from the logits.

    Equals mean(-y log(a) - (1 - y) log(1 - a)) with a = sigmoid(z) (BCEWithLogitsLoss).
    """
    (T,) = _parts(work, Z)
    np.abs(Z, out=T)
    np.negative(T, out=T)
    np.exp(T, out=T)
    np.log1p(T, out=T)
    total = np.add.reduce(T, axis=None, dtype=np.float64)
    np.maximum(Z, 0.0, out=T)
    total += np.add.reduce(T, axis=None, dtype=np.float64)
    np.multiply(Z, Y, out=T)
    total -= np.add.reduce(T, axis=None, dtype=np.float64)
    return float(total / Z.size)


def categorical_crossentropy(Y, Z, A, work=None):
    """mean over rows of logsumexp(z) - sum_j y_j z_j, from the logits.

    Equals mean(-sum_j y_j log(a_j)) with a = softmax(z) for one-hot or probability
    targets (CrossEntropyLoss).
    """
    T, zmax, s = _parts(work, Z, rows=2)  # T (n, k); zmax, s (n, 1)
    np.maximum.reduce(Z, axis=1, keepdims=True, out=zmax)
    np.subtract(Z, zmax, out=T)
    np.exp(T, out=T)
    np.add.reduce(T, axis=1, keepdims=True, out=s)
    return _crossentropy(Y, Z, zmax, s, T)


def _crossentropy(Y, Z, zmax, s, T):
    """mean(zmax + log(s) - sum_j y_j z_j) from the row max zmax (n, 1) and the row sums
    s (n, 1) of exp(z - zmax); overwrites s and T (n, k)."""
    np.log(s, out=s)  # logsumexp(z) - zmax per row
    total = np.add.reduce(s, axis=None, dtype=np.float64)
    total += np.add.reduce(zmax, axis=None, dtype=np.float64)
    np.multiply(Y, Z, out=T)
    total -= np.add.reduce(T, axis=None, dtype=np.float64)
    return float(total / Z.shape[0])


def softmax_categorical_crossentropy_value(Y, Z, tmp):
    """categorical_crossentropy(Y, Z, A) after softmax(Z, A, tmp), from the row max and
    row sum that softmax left in tmp (n, k >= 2), which it overwrites."""
    return _crossentropy(Y, Z, tmp[:, :1], tmp[:, 1:2], tmp)


def mse_derivative(Y, A, out):
    """dL/da = 2 (a - y) / (n k)."""
    np.subtract(A, Y, out=out)
    out *= 2.0 / Y.size


def mae_derivative(Y, A, out):
    """dL/da = sign(a - y) / (n k)."""
    np.subtract(A, Y, out=out)
    np.sign(out, out=out)
    out /= Y.size


def _output_gradient(Y, A, out, size):
    """(max(a, f) - y) / size into out, f = sqrt(smallest normal number) (about 1e-19
    in float32): a confident output's a of 1e-37 would make the gradient subnormal, which
    slows every pass of the backward pass that meets it; f changes the gradient by less
    than f / size, far below float resolution."""
    np.maximum(A, _floor(A.dtype), out=out)
    out -= Y
    out *= 1.0 / size


@functools.cache
def _floor(dtype):
    return np.finfo(dtype).tiny ** 0.5


def sigmoid_binary_crossentropy(Y, A, out):
    """dL/dz = (a - y) / (n k), a = sigmoid(z)."""
    _output_gradient(Y, A, out, Y.size)


def softmax_categorical_crossentropy(Y, A, out):
    """dL/dz = (a - y) / n, a = softmax(z) (rows of y summing to 1)."""
    _output_gradient(Y, A, out, Y.shape[0])


def accuracy(Y, A):
    """Fraction of correct predictions: argmax(a) == argmax(y) per row when k > 1;
    (a > 0.5) == (y > 0.5) per element when k == 1."""
    if Y.shape[1] > 1:
        return float(np.mean(A.argmax(axis=1) == Y.argmax(axis=1)))
    return float(np.mean((A > 0.5) == (Y > 0.5)))


def mse_metric(Y, A):
    """mean((a - y)^2) over all elements."""
    return mse(Y, None, A)


def mae_metric(Y, A):
    """mean(|a - y|) over all elements."""
    return mae(Y, None, A)


def r2(Y, A):
    """R^2 = 1 - sum (y - a)^2 / sum (y - mean(y))^2 per output, averaged over outputs.

    As scikit-learn's r2_score (multioutput="uniform_average"): an output with a
    constant target scores 1.0 if predicted exactly, else 0.0; NaN for fewer than 2 rows.
    """
    if Y.shape[0] < 2:
        return float("nan")
    Y = np.asarray(Y, dtype=np.float64)
    num = np.square(Y - A).sum(axis=0)  # (k,)
    den = np.square(Y - Y.mean(axis=0)).sum(axis=0)  # (k,)
    score = np.where(num == 0.0, 1.0, 0.0)
    ok = den != 0.0
    score[ok] = 1.0 - num[ok] / den[ok]
    return float(score.mean())


# ---- weighted losses: per-row values (float64), for rows of unequal weight --------------

def _row_mean(T):
    return np.add.reduce(T, axis=1, dtype=np.float64) / T.shape[1]


def _mse_rows(Y, Z, A):
    return _row_mean(np.square(A - Y))


def _mae_rows(Y, Z, A):
    return _row_mean(np.abs(A - Y))


def _bce_rows(Y, Z, A):
    return _row_mean(np.maximum(Z, 0.0) - Z * Y + np.log1p(np.exp(-np.abs(Z))))


def _cce_rows(Y, Z, A):
    zmax = Z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(Z - zmax).sum(axis=1, dtype=np.float64)) + zmax[:, 0]
    return lse - np.add.reduce(Y * Z, axis=1, dtype=np.float64)


ROW_LOSSES = {"mse": _mse_rows, "mae": _mae_rows, "binary_crossentropy": _bce_rows,
              "categorical_crossentropy": _cce_rows}
# The weighted mean of a loss over rows of weights w: sum(w * l) / sum(w) for
# categorical_crossentropy (CrossEntropyLoss(weight=...), reduction "mean"); sum(w * l) / n
# for the others (BCEWithLogitsLoss(weight=...), and Keras's sample weights).
WEIGHT_NORM = {"categorical_crossentropy": "sum"}


def weighted(loss, Y, Z, A, w):
    """(value, row factors (n, 1)) of `loss` over rows of weights w (n,): the weighted
    mean, and the factor w_i * n / norm that turns each row's share of the unweighted
    mean's gradient into its share of the weighted one."""
    norm = float(np.sum(w, dtype=np.float64)) if WEIGHT_NORM.get(loss) == "sum" else len(w)
    value = float(np.dot(ROW_LOSSES[loss](Y, Z, A), w) / norm)
    return value, (w * (len(w) / norm))[:, None].astype(Z.dtype)


LOSSES = {
    "mse": mse,
    "mae": mae,
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
}

LOSS_DERIVATIVES = {
    "mse": mse_derivative,
    "mae": mae_derivative,
}

# The valid (output activation, loss) pairs with a fused dL/dZ:
#   sigmoid + binary_crossentropy, softmax + categorical_crossentropy.
FUSED = {
    ("sigmoid", "binary_crossentropy"): sigmoid_binary_crossentropy,
    ("softmax", "categorical_crossentropy"): softmax_categorical_crossentropy,
}

# The loss value from what the output activation left in its scratch (see softmax).
FUSED_VALUES = {
    ("softmax", "categorical_crossentropy"): softmax_categorical_crossentropy_value,
}

METRICS = {
    "accuracy": accuracy,
    "mse": mse_metric,
    "mae": mae_metric,
    "r2": r2,
}
