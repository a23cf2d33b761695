"""Losses, their gradients and the metrics, as name -> function tables.

Shapes: Y (n, k) the targets, Z (n, k) the output layer's pre-activation (logits),
A (n, k) its output. Losses are means, as PyTorch's ``reduction="mean"``: over the
batch and the outputs for mse, mae and binary_crossentropy, over the batch for
categorical_crossentropy. Values are accumulated in float64 and returned as floats.

- ``LOSSES[name](Y, Z, A) -> float``
- ``LOSS_DERIVATIVES[name](Y, A, out)`` writes dL/dA into ``out`` (n, k).
- ``FUSED[(activation, loss)](Y, A, out)`` writes dL/dZ into ``out`` (n, k) for the
  pairs whose gradient simplifies; the network uses it instead of LOSS_DERIVATIVES
  followed by the activation's derivative. The cross-entropies are defined only with
  their output activation (sigmoid, softmax), so they appear in FUSED alone.
- ``METRICS[name](Y, A) -> float``
"""

import numpy as np


def mse(Y, Z, A):
    """mean((a - y)^2) over the batch and the outputs."""
    return float(np.mean(np.square(A - Y), dtype=np.float64))


def mae(Y, Z, A):
    """mean(|a - y|) over the batch and the outputs."""
    return float(np.mean(np.abs(A - Y), dtype=np.float64))


def binary_crossentropy(Y, Z, A):
    """mean(max(z, 0) - z * y + log(1 + exp(-|z|))) over all elements, from the logits.

    Equals mean(-y log(a) - (1 - y) log(1 - a)) with a = sigmoid(z) (BCEWithLogitsLoss).
    """
    t = np.abs(Z)
    np.negative(t, out=t)
    np.exp(t, out=t)
    np.log1p(t, out=t)
    t += np.maximum(Z, 0.0)
    t -= Z * Y
    return float(np.mean(t, dtype=np.float64))


def categorical_crossentropy(Y, Z, A):
    """mean over rows of logsumexp(z) - sum_j y_j z_j, from the logits.

    Equals mean(-sum_j y_j log(a_j)) with a = softmax(z) for one-hot or probability
    targets (CrossEntropyLoss).
    """
    zmax = Z.max(axis=1)  # (n,)
    t = np.exp(Z - zmax[:, None])
    lse = np.log(t.sum(axis=1, dtype=np.float64)) + zmax
    return float(np.mean(lse - np.einsum("ij,ij->i", Y, Z, dtype=np.float64)))


def mse_derivative(Y, A, out):
    """dL/da = 2 (a - y) / (n k)."""
    np.subtract(A, Y, out=out)
    out *= 2.0 / Y.size


def mae_derivative(Y, A, out):
    """dL/da = sign(a - y) / (n k)."""
    np.subtract(A, Y, out=out)
    np.sign(out, out=out)
    out /= Y.size


def sigmoid_binary_crossentropy(Y, A, out):
    """dL/dz = (a - y) / (n k), a = sigmoid(z)."""
    np.subtract(A, Y, out=out)
    out /= Y.size


def softmax_categorical_crossentropy(Y, A, out):
    """dL/dz = (a - y) / n, a = softmax(z) (rows of y summing to 1)."""
    np.subtract(A, Y, out=out)
    out /= Y.shape[0]


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

METRICS = {
    "accuracy": accuracy,
    "mse": mse_metric,
    "mae": mae_metric,
    "r2": r2,
}
