"""Optimizers: PyTorch's update rules over one flat parameter buffer.

The network keeps every weight and bias as a view into one contiguous 1-D array
``params``, and its gradients in another of the same shape, so one ``step(grads)`` is
a handful of vectorized in-place operations over all parameters. ``params`` is updated
in place (never rebound); ``grads`` is only read. All state and scratch buffers are
allocated in ``__init__``: ``step`` allocates no array. The arithmetic follows the
single-tensor path of ``torch.optim`` (PyTorch 2.x), with the same defaults.

Every FLUSH_EVERY steps the decaying state (momentum, moments) is flushed to zero where
it has fallen below the smallest normal number, as a CPU's flush-to-zero mode would do.
A parameter whose gradient stays zero (a unit that no longer fires) otherwise leaves
its moments decaying into subnormal numbers, on which every pass of the step slows
several times over; their share of an update is below float resolution (Adam:
lr * 1e-38 / eps), so no parameter changes by the flush.
"""

from functools import partial

import numpy as np

from runner.engine import kernels

FLUSH_EVERY = 32  # steps between flushes of subnormal optimizer state


def _check(name, value, low, high=float("inf")):
    if not low <= value < high:
        raise ValueError(f"{name} must be in [{low}, {high}), got {value!r}")


class _Optimizer:
    @property
    def flush_every(self):
        """Steps between flushes: FLUSH_EVERY, read when used, for the compiled steps
        (kernels_ops cannot import this module: it would close an import cycle)."""
        return FLUSH_EVERY

    def __init__(self, params, lr, weight_decay):
        if params.ndim != 1 or not params.flags.c_contiguous:
            raise ValueError(f"params must be a contiguous 1-D array, got shape {params.shape}")
        _check("lr", lr, 0.0)
        _check("weight_decay", weight_decay, 0.0)
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.t = 0  # number of steps taken
        self._g = np.empty_like(params)  # the gradient used, g = grads (+ wd * params)
        self._tmp = np.empty_like(params)
        self._tiny = np.finfo(params.dtype).tiny
        self.use_kernels(kernels.initial())

    def use_kernels(self, compiled):
        """Take each step in one compiled pass (True) or in numpy's passes (False; None:
        numpy until a fit settles it, see kernels.engage). Both give the same bits."""
        self.kernels = compiled
        if compiled:
            self.step = partial(kernels.ops().STEPS[type(self).__name__], self)
        else:
            vars(self).pop("step", None)

    def state(self) -> dict:
        """The step count and copies of the state buffers (momentum, moments), for
        resumable fits: {"t": int, "lr": float, "_m": (P,), ...}."""
        out = {"t": self.t, "lr": self.lr}
        for key, value in vars(self).items():
            if isinstance(value, np.ndarray) and key not in ("params", "_g", "_tmp"):
                out[key] = value.copy()
        return out

    def load(self, state: dict) -> None:
        """Restore what state() saved (the buffers are copied into, not rebound)."""
        self.t, self.lr = int(state["t"]), float(state["lr"])
        for key, value in state.items():
            if key not in ("t", "lr"):
                np.copyto(getattr(self, key), value)

    def _flush(self, *buffers):
        """Every FLUSH_EVERY steps, zero the subnormal entries of `buffers` (all of
        params' shape); NaN and infinite entries are kept."""
        if self.t % FLUSH_EVERY:
            return
        tmp = self._tmp
        for buf in buffers:
            if buf is not None:
                np.abs(buf, out=tmp)
                np.greater_equal(tmp, self._tiny, out=tmp)  # 0.0 where subnormal or zero
                np.multiply(buf, tmp, out=buf)

    def _gradient(self, grads):
        """g = grads + weight_decay * params (L2 penalty), into a scratch buffer."""
        if not self.weight_decay:
            return grads
        np.multiply(self.params, self.weight_decay, out=self._g)
        self._g += grads
        return self._g


class SGD(_Optimizer):
    """Stochastic gradient descent, with momentum and Nesterov momentum.

    ```
    g = grad + weight_decay * p
    if momentum:
        v = g if t == 1 else momentum * v + g
        g = g + momentum * v if nesterov else v
    p = p - lr * g
    ```
    """

    def __init__(self, params, lr=0.001, momentum=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        _check("momentum", momentum, 0.0)
        if nesterov and momentum == 0:
            raise ValueError(f"nesterov requires a momentum > 0, got momentum={momentum!r}")
        self.momentum, self.nesterov = momentum, nesterov
        self._v = np.zeros_like(params) if momentum else None

    def step(self, grads):
        g, m, v, tmp = self._gradient(grads), self.momentum, self._v, self._tmp
        self.t += 1
        if m:
            if self.t == 1:
                np.copyto(v, g)
            else:
                v *= m
                v += g
                self._flush(v)
            if self.nesterov:
                np.multiply(v, m, out=tmp)
                tmp += g
                tmp *= self.lr
            else:
                np.multiply(v, self.lr, out=tmp)
        else:
            np.multiply(g, self.lr, out=tmp)
        self.params -= tmp


class Adam(_Optimizer):
    """Adam (Kingma & Ba), bias-corrected, eps outside the square root.

    ```
    g = grad + weight_decay * p
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    denom = sqrt(v) / sqrt(1 - beta2^t) + eps
    p = p - lr / (1 - beta1^t) * m / denom
    ```
    """

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        _check("beta1", beta1, 0.0, 1.0)
        _check("beta2", beta2, 0.0, 1.0)
        _check("eps", eps, 0.0)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        # m and v are kept unscaled, m' = m / (1 - beta1) and v' = v / (1 - beta2), so
        # that each moment costs two passes over the buffer; the scales move into the step.
        self._m, self._v = np.zeros_like(params), np.zeros_like(params)

    def step(self, grads):
        self._adam(self._gradient(grads))

    def _adam(self, g):
        m, v, tmp = self._m, self._v, self._tmp
        self.t += 1
        m *= self.beta1  # m' = beta1 * m' + g
        m += g
        np.square(g, out=tmp)  # v' = beta2 * v' + g * g
        v *= self.beta2
        v += tmp
        self._flush(m, v)
        # p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), with m = (1 - beta1) m',
        # v = (1 - beta2) v', bc_i = 1 - beta_i^t; c = sqrt((1 - beta2) / bc2):
        # p -= lr * (1 - beta1) / (bc1 * c) * m' / (sqrt(v') + eps / c)
        c = ((1.0 - self.beta2) / (1.0 - self.beta2**self.t)) ** 0.5
        step_size = self.lr * (1.0 - self.beta1) / ((1.0 - self.beta1**self.t) * c)
        np.sqrt(v, out=tmp)
        tmp += self.eps / c
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        self.params -= tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter).

    ```
    p = p * (1 - lr * weight_decay)
    then the Adam update of p with g = grad (no L2 term)
    ```
    """

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, beta1, beta2, eps, weight_decay)

    def step(self, grads):
        self.params *= 1.0 - self.lr * self.weight_decay
        self._adam(grads)


class RMSprop(_Optimizer):
    """RMSprop (Hinton), as torch.optim.RMSprop (not centered).

    ```
    g = grad + weight_decay * p
    v = alpha * v + (1 - alpha) * g * g
    if momentum:
        b = momentum * b + g / (sqrt(v) + eps)
        p = p - lr * b
    else:
        p = p - lr * g / (sqrt(v) + eps)
    ```
    """

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, momentum=0.0, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        _check("alpha", alpha, 0.0, 1.0)
        _check("eps", eps, 0.0)
        _check("momentum", momentum, 0.0)
        self.alpha, self.eps, self.momentum = alpha, eps, momentum
        self._v = np.zeros_like(params)
        self._b = np.zeros_like(params) if momentum else None

    def step(self, grads):
        g, v, b, tmp = self._gradient(grads), self._v, self._b, self._tmp
        self.t += 1
        np.multiply(g, 1.0 - self.alpha, out=tmp)  # v.mul_(alpha).addcmul_(g, g, 1 - alpha)
        tmp *= g
        v *= self.alpha
        v += tmp
        self._flush(v, b)
        np.sqrt(v, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        if b is not None:
            b *= self.momentum
            b += tmp
            np.multiply(b, self.lr, out=tmp)
        else:
            tmp *= self.lr
        self.params -= tmp


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop}
