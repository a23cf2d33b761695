"""Optimizers against a plain per-parameter transcription of torch.optim's formulas,
against torch.optim itself when it is installed, and for allocations in step()."""

import math
import tracemalloc

import numpy as np
import pytest

from runner.engine.optimizers import OPTIMIZERS

# A fixed linear least-squares problem: X (20, 3) @ W (3, 2) + b (2,) ~ Y (20, 2),
# with the parameters kept as views into one flat buffer, as the network does.
_rng = np.random.default_rng(42)
X, Y = _rng.standard_normal((20, 3)), _rng.standard_normal((20, 2))
W0, B0 = _rng.standard_normal((3, 2)), _rng.standard_normal(2)


def gradients(W, b):
    """dL/dW, dL/db of L = mean((X W + b - Y)^2)."""
    dZ = 2.0 * (X @ W + b - Y) / Y.size
    return X.T @ dZ, dZ.sum(axis=0)


def reference_run(name, hp, steps=20):
    """torch.optim's single-tensor update rules, written out for each parameter."""
    lr, wd = hp.get("lr", REF_DEFAULTS[name]["lr"]), hp.get("weight_decay",
                                                             REF_DEFAULTS[name]["wd"])
    params = [W0.copy(), B0.copy()]
    state = [{} for _ in params]
    for t in range(1, steps + 1):
        for p, g, s in zip(params, gradients(*params), state, strict=True):
            if name == "adamw":
                p *= 1 - lr * wd
            elif wd:
                g = g + wd * p
            if name == "sgd":
                m = hp.get("momentum", 0.0)
                if m:
                    s["buf"] = g.copy() if t == 1 else m * s["buf"] + g
                    g = g + m * s["buf"] if hp.get("nesterov") else s["buf"]
                p -= lr * g
            elif name in ("adam", "adamw"):
                b1, b2 = hp.get("beta1", 0.9), hp.get("beta2", 0.999)
                eps = hp.get("eps", 1e-8)
                s["m"] = s.get("m", 0 * p) + (1 - b1) * (g - s.get("m", 0 * p))
                s["v"] = b2 * s.get("v", 0 * p) + (1 - b2) * g * g
                denom = np.sqrt(s["v"]) / math.sqrt(1 - b2**t) + eps
                p -= lr / (1 - b1**t) * s["m"] / denom
            else:  # rmsprop
                alpha, eps, m = hp.get("alpha", 0.99), hp.get("eps", 1e-8), hp.get("momentum", 0)
                s["v"] = alpha * s.get("v", 0 * p) + (1 - alpha) * g * g
                avg = np.sqrt(s["v"]) + eps
                if m:
                    s["buf"] = m * s.get("buf", 0 * p) + g / avg
                    p -= lr * s["buf"]
                else:
                    p -= lr * g / avg
    return params


REF_DEFAULTS = {  # torch.optim's defaults (lr, weight_decay)
    "sgd": {"lr": 0.001, "wd": 0.0}, "adam": {"lr": 0.001, "wd": 0.0},
    "adamw": {"lr": 0.001, "wd": 0.01}, "rmsprop": {"lr": 0.01, "wd": 0.0},
}

SETTINGS = [
    ("sgd", {"lr": 0.1}),
    ("sgd", {}),
    ("sgd", {"lr": 0.05, "momentum": 0.9}),
    ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    ("sgd", {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.1}),
    ("sgd", {"lr": 0.1, "momentum": 0.8, "nesterov": True, "weight_decay": 0.05}),
    ("sgd", {"lr": 0.1, "weight_decay": 0.2}),
    ("adam", {}),
    ("adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("adam", {"lr": 0.02, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3}),
    ("adamw", {}),
    ("adamw", {"lr": 0.05, "weight_decay": 0.3, "beta2": 0.99}),
    ("rmsprop", {}),
    ("rmsprop", {"lr": 0.005, "momentum": 0.9}),
    ("rmsprop", {"lr": 0.02, "alpha": 0.9, "eps": 1e-4, "weight_decay": 0.1}),
    ("rmsprop", {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.01}),
]


def flat_run(name, hp, steps=20):
    params = np.concatenate([W0.ravel(), B0])
    W, b = params[:6].reshape(3, 2), params[6:]  # views, as the network keeps them
    grads = np.empty_like(params)
    opt = OPTIMIZERS[name](params, **hp)
    for _ in range(steps):
        dW, db = gradients(W, b)
        grads[:6], grads[6:] = dW.ravel(), db
        opt.step(grads)
    assert opt.params is params
    return W, b


@pytest.mark.parametrize(("name", "hp"), SETTINGS)
def test_matches_the_reference(name, hp):
    W, b = flat_run(name, hp)
    W_ref, b_ref = reference_run(name, hp)
    assert not np.allclose(W, W0)  # the optimizer moved the parameters
    np.testing.assert_allclose(W, W_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-10)


@pytest.mark.torch
@pytest.mark.parametrize(("name", "hp"), SETTINGS)
def test_matches_torch(name, hp):
    torch = pytest.importorskip("torch", reason="torch not installed (extra 'bench')")
    W, b = flat_run(name, hp)
    tW, tb = torch.tensor(W0, requires_grad=True), torch.tensor(B0, requires_grad=True)
    kw = {"lr": hp.get("lr", REF_DEFAULTS[name]["lr"]), "foreach": False}
    for key in ("momentum", "nesterov", "weight_decay", "eps", "alpha"):
        if key in hp:
            kw[key] = hp[key]
    if name in ("adam", "adamw"):
        kw["betas"] = (hp.get("beta1", 0.9), hp.get("beta2", 0.999))
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop}[name]
    opt = cls([tW, tb], **kw)
    for _ in range(20):
        dW, db = gradients(tW.detach().numpy(), tb.detach().numpy())
        tW.grad, tb.grad = torch.from_numpy(dW), torch.from_numpy(db)
        opt.step()
    np.testing.assert_allclose(W, tW.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(b, tb.detach().numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize(("name", "hp"), [
    ("sgd", {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("sgd", {}),
    ("adam", {"weight_decay": 0.1}),
    ("adamw", {}),
    ("rmsprop", {"momentum": 0.9, "weight_decay": 0.1}),
])
def test_step_allocates_no_array(name, hp):
    n = 50_000  # 400 kB per float64 buffer: one stray temporary would show
    params = np.random.default_rng(0).standard_normal(n)
    grads = np.random.default_rng(1).standard_normal(n)
    opt = OPTIMIZERS[name](params, **hp)
    opt.step(grads)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        for _ in range(100):
            opt.step(grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16_000


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept(dtype):
    for name in OPTIMIZERS:
        params = np.ones(10, dtype=dtype)
        opt = OPTIMIZERS[name](params)
        opt.step(np.full(10, 0.5, dtype=dtype))
        assert params.dtype == dtype and np.all(params < 1)


def test_defaults_are_torch_defaults():
    p = np.zeros(3)
    assert OPTIMIZERS["sgd"](p).lr == 0.001
    adam = OPTIMIZERS["adam"](p)
    assert (adam.lr, adam.beta1, adam.beta2, adam.eps, adam.weight_decay) == (
        0.001, 0.9, 0.999, 1e-8, 0.0)
    assert OPTIMIZERS["adamw"](p).weight_decay == 0.01
    rms = OPTIMIZERS["rmsprop"](p)
    assert (rms.lr, rms.alpha, rms.eps, rms.momentum) == (0.01, 0.99, 1e-8, 0.0)


@pytest.mark.parametrize(("name", "hp", "match"), [
    ("sgd", {"lr": -0.1}, "lr.*-0.1"),
    ("sgd", {"nesterov": True}, "nesterov"),
    ("adam", {"beta1": 1.0}, "beta1.*1.0"),
    ("rmsprop", {"alpha": -0.5}, "alpha.*-0.5"),
])
def test_bad_hyperparameters_are_rejected(name, hp, match):
    with pytest.raises(ValueError, match=match):
        OPTIMIZERS[name](np.zeros(3), **hp)


@pytest.mark.parametrize(("name", "hp"), [
    ("sgd", {"lr": 0.01, "momentum": 0.9}),
    ("adam", {"lr": 0.01}),
    ("rmsprop", {"lr": 0.01, "alpha": 0.9, "momentum": 0.5}),
])
def test_subnormal_state_is_flushed_without_changing_the_parameters(name, hp, monkeypatch):
    """A parameter whose gradient turns to zero (a unit that stopped firing) lets its
    momentum and moments decay into subnormal numbers; every FLUSH_EVERY steps they are
    zeroed, and the parameters come out exactly as without the flush."""
    import runner.engine.optimizers as optimizers

    tiny = np.finfo(np.float32).tiny
    rng = np.random.default_rng(3)
    start = rng.standard_normal(64).astype(np.float32)
    g = rng.standard_normal(64).astype(np.float32)

    def run(flush_every):
        monkeypatch.setattr(optimizers, "FLUSH_EVERY", flush_every)
        params = start.copy()
        opt = OPTIMIZERS[name](params, **hp)
        grads = g.copy()
        for t in range(1, 3201):
            if t == 5:
                grads[:32] = 0.0  # half the parameters stop receiving gradient
            opt.step(grads)
        state = [b for b in (getattr(opt, k, None) for k in ("_v", "_m", "_b")) if b is not None]
        return params, state

    flushed, state = run(optimizers.FLUSH_EVERY)
    kept, kept_state = run(10**9)
    subnormal = [int(np.sum((b != 0) & (np.abs(b) < tiny))) for b in kept_state]
    assert max(subnormal) > 0  # without the flush the state does go subnormal
    assert all(int(np.sum((b != 0) & (np.abs(b) < tiny))) == 0 for b in state)
    np.testing.assert_array_equal(flushed, kept)


def test_flush_keeps_nan_and_infinity():
    params = np.zeros(4, np.float32)
    opt = OPTIMIZERS["sgd"](params, lr=0.1, momentum=0.9)
    opt.t = 32  # a flushing step
    buf = np.array([np.nan, np.inf, 1e-40, 1.0], np.float32)
    opt._flush(buf)
    assert np.isnan(buf[0]) and buf[1] == np.inf and buf[2] == 0.0 and buf[3] == 1.0
