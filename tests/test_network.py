"""Backpropagation through a 3-layer network against central finite differences, for
every activation with every loss (float64)."""

import zlib

import numpy as np
import pytest

from runner.engine.losses import LOSSES
from runner.engine.network import Network
from schemas import ACTIVATION_NAMES

OUTPUT_FOR_LOSS = {  # the output activations each loss is used with
    "mse": ACTIVATION_NAMES,
    "mae": ("identity", "tanh", "sigmoid"),
    "binary_crossentropy": ("sigmoid",),
    "categorical_crossentropy": ("softmax",),
}
PARAMS = {"leaky_relu": {"alpha": 0.1}, "elu": {"alpha": 0.7}}


def targets(loss, rng, n, k):
    if loss == "categorical_crossentropy":
        return np.eye(k)[rng.integers(0, k, n)]
    if loss == "binary_crossentropy":
        return rng.integers(0, 2, (n, k)).astype(float)
    return rng.normal(size=(n, k))


def loss_of(net, X, Y, loss):
    A = net.forward(X, train=True)
    return LOSSES[loss](Y, net.logits(len(X)), A)


def numeric_gradient(net, X, Y, loss, h=1e-6):
    grad = np.empty_like(net.params)
    for p in range(net.params.size):
        saved = net.params[p]
        net.params[p] = saved + h
        up = loss_of(net, X, Y, loss)
        net.params[p] = saved - h
        down = loss_of(net, X, Y, loss)
        net.params[p] = saved
        grad[p] = (up - down) / (2 * h)
    return grad


CASES = [(hidden, out, loss) for loss, outs in OUTPUT_FOR_LOSS.items()
         for out in outs for hidden in ACTIVATION_NAMES]


@pytest.mark.parametrize("hidden,output,loss", CASES)
def test_gradients_match_finite_differences(hidden, output, loss):
    rng = np.random.default_rng(zlib.crc32(f"{hidden}/{output}/{loss}".encode()))
    acts = [(hidden, PARAMS.get(hidden, {})), (hidden, PARAMS.get(hidden, {})),
            (output, PARAMS.get(output, {}))]
    net = Network([4, 5, 6, 3], acts, [True, False, True], "float64")
    net.params[...] = rng.normal(scale=0.7, size=net.params.size)
    X, Y = rng.normal(size=(7, 4)), targets(loss, rng, 7, 3)
    net.train_step(X, Y, loss)
    analytic = net.grads.copy()
    numeric = numeric_gradient(net, X, Y, loss)
    err = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
    assert err < 1e-6, f"relative error {err:.2e}"


def test_views_share_the_flat_buffer():
    net = Network([3, 4, 2], [("tanh", {}), ("identity", {})], [True, True], "float32")
    net.params[...] = np.arange(net.params.size)
    assert net.params.size == net.grads.size == 3 * 4 + 4 + 4 * 2 + 2
    assert net.W[0][0, 0] == 0 and net.b[0][0] == 12 and net.W[1][0, 0] == 16
    net.W[1][...] = -1
    assert (net.params[16:24] == -1).all()


def test_load_state_refuses_a_wrong_shape():
    from runner.errors import UserError

    net = Network([3, 4], [("tanh", {})], [True], "float64")
    with pytest.raises(UserError, match=r"layers.0.W.*\(3, 5\).*\(3, 4\)"):
        net.load_state({"layers.0.W": np.zeros((3, 5)), "layers.0.b": np.zeros(4)}, "w.npz")
