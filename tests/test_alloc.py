"""The minibatch loop allocates no new arrays after its first step (docs/data.md, issue 5).

numpy reports its array buffers to tracemalloc, so an array allocated inside the loop,
even one freed at once, raises the traced peak by its size. The peak growth over many
steps must stay below a small constant that does not grow with the batch size: numpy's
own iteration buffers (at most 8192 elements per operand, for casts and broadcasts) and
Python objects, never a (batch, units) array.
"""

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from runner.engine import train
from runner.engine.network import Network
from runner.engine.optimizers import OPTIMIZERS

LIMIT = 160 * 1024  # bytes; one (8192, 10) float32 temporary is 320 KiB
K = 10  # outputs

CASES = [  # (activations, loss, optimizer)
    (["relu", "relu", "softmax"], "categorical_crossentropy", ("sgd", {"lr": 0.01, "momentum": 0.9})),
    (["tanh", "sigmoid", "softmax"], "categorical_crossentropy", ("adam", {})),
    (["tanh", "relu", "sigmoid"], "binary_crossentropy", ("rmsprop", {"momentum": 0.5})),
    (["relu", "tanh", "identity"], "mse", ("adamw", {})),
    (["leaky_relu", "softplus", "identity"], "mae", ("sgd", {"nesterov": True, "momentum": 0.9})),
]


def problem(loss, n, k, rng):
    X = rng.standard_normal((n, 32)).astype(np.float32)
    if loss == "categorical_crossentropy":
        return X, np.eye(k, dtype=np.float32)[rng.integers(0, k, n)]
    if loss == "binary_crossentropy":
        return X, rng.integers(0, 2, (n, k)).astype(np.float32)
    return X, rng.standard_normal((n, k)).astype(np.float32)


def peak_growth(activations, loss, opt, batch, steps=6):
    """Bytes by which the traced peak rises over `steps` minibatch steps (gather, train
    step, optimizer step), measured after one warm-up step."""
    rng = np.random.default_rng(0)
    k = K
    X, Y = problem(loss, 4 * batch, k, rng)
    net = Network([32, 48, 24, k], [(a, {}) for a in activations], [True] * 3, "float32")
    net.params[...] = rng.normal(scale=0.2, size=net.params.size)
    optimizer = OPTIMIZERS[opt[0]](net.params, **opt[1])
    Xb, Yb = np.empty((batch, 32), np.float32), np.empty((batch, k), np.float32)
    order = rng.permutation(len(X))

    def step(i):
        idx = order[(i % 4) * batch : (i % 4 + 1) * batch]
        xb = np.take(X, idx, axis=0, out=Xb, mode="clip")
        yb = np.take(Y, idx, axis=0, out=Yb, mode="clip")
        net.train_step(xb, yb, loss)
        optimizer.step(net.grads)

    step(0)  # the first step reserves the buffers
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for i in range(1, steps + 1):
            step(i)
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(("activations", "loss", "opt"), CASES)
def test_minibatch_steps_allocate_no_arrays(activations, loss, opt):
    growth = [peak_growth(activations, loss, opt, batch) for batch in (64, 8192)]
    assert max(growth) < LIMIT, f"peak grew by {growth} bytes at batch 64 and 8192"


def test_the_fit_loop_allocates_no_arrays_per_minibatch():
    """train.fit itself: the peak of a whole epoch of 8192-row minibatches stays within
    what one epoch must allocate (the shuffled order) plus a small constant."""
    rng = np.random.default_rng(1)
    n, batch = 4 * 8192, 8192
    X, Y = problem("categorical_crossentropy", n, K, rng)
    net = Network([32, 48, 24, K], [("relu", {}), ("tanh", {}), ("softmax", {})],
                  [True] * 3, "float32")
    net.params[...] = rng.normal(scale=0.2, size=net.params.size)
    optimizer = OPTIMIZERS["adam"](net.params)
    spec = SimpleNamespace(batch_size=batch, epochs=1, shuffle=True, metrics=[],
                           loss="categorical_crossentropy", early_stopping=None)
    train.fit(net, optimizer, X, Y, spec, np.random.default_rng(2))  # reserves the buffers
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        train.fit(net, optimizer, X, Y, spec, np.random.default_rng(3))
        growth = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    minibatch_buffers = batch * (32 + K) * 4  # Xb and Yb, allocated once per fit
    order = n * 8  # rng.permutation(n), int64, once per epoch
    assert growth < minibatch_buffers + order + 2 * LIMIT, f"peak grew by {growth} bytes"
