"""The dense stack: one flat parameter buffer, preallocated batch buffers, forward and
backward passes.

Layer i maps A_{i-1} (batch, fan_in) to Z_i = A_{i-1} @ W_i + b_i (batch, units), then
A_i = f_i(Z_i). W_i (fan_in, units) and b_i (units,) are views into `params` (P,), and
dW_i, db_i the matching views into `grads` (P,), so an optimizer updates every
parameter with a few vectorized operations over the whole buffer.
"""

from functools import partial

import numpy as np

from runner.activations import ACTIVATIONS, DERIVATIVES
from runner.errors import UserError
from runner.losses import FUSED, LOSS_DERIVATIVES, LOSSES


class Network:
    """A stack of dense layers.

    sizes: [inputs, units_1, ..., units_L]; activations: [(name, params)] per layer;
    biases: [bool] per layer; dtype: "float32" or "float64".
    """

    def __init__(self, sizes, activations, biases, dtype="float32"):
        self.sizes, self.dtype = list(sizes), np.dtype(dtype)
        self.activation_names = [name for name, _ in activations]
        self.keys, shapes = [], []
        for i, (fan_in, units) in enumerate(zip(self.sizes, self.sizes[1:])):
            self.keys.append(f"layers.{i}.W")
            shapes.append((fan_in, units))
            if biases[i]:
                self.keys.append(f"layers.{i}.b")
                shapes.append((units,))
        total = sum(int(np.prod(s)) for s in shapes)
        self.params = np.zeros(total, self.dtype)  # (P,)
        self.grads = np.zeros(total, self.dtype)  # (P,)
        self.views, self.grad_views = {}, {}
        offset = 0
        for key, shape in zip(self.keys, shapes):
            size = int(np.prod(shape))
            self.views[key] = self.params[offset : offset + size].reshape(shape)
            self.grad_views[key] = self.grads[offset : offset + size].reshape(shape)
            offset += size
        layers = range(len(self.sizes) - 1)
        self.W = [self.views[f"layers.{i}.W"] for i in layers]
        self.b = [self.views.get(f"layers.{i}.b") for i in layers]
        self.dW = [self.grad_views[f"layers.{i}.W"] for i in layers]
        self.db = [self.grad_views.get(f"layers.{i}.b") for i in layers]
        self._act = [partial(ACTIVATIONS[name], **p) for name, p in activations]
        self._der = [partial(DERIVATIVES[name], **p) for name, p in activations]
        self._capacity = 0

    @property
    def n_params(self):
        return self.params.size

    # -- parameters -------------------------------------------------------------
    def initialize(self, rng, inits):
        """Draw every parameter. inits: [(weight (name, params), bias (name, params))]
        per layer; draws W then b, layer by layer, from `rng` in float64, then casts."""
        from runner.initializers import INITIALIZERS

        for i, (w_init, b_init) in enumerate(inits):
            fan_in, fan_out = self.W[i].shape
            name, p = w_init
            self.W[i][...] = INITIALIZERS[name](rng, self.W[i].shape, fan_in, fan_out, **p)
            if self.b[i] is not None:
                name, p = b_init
                self.b[i][...] = INITIALIZERS[name](rng, self.b[i].shape, fan_in, fan_out, **p)

    def state(self):
        """The parameters as {"layers.0.W": (fan_in, units), "layers.0.b": (units,), ...}."""
        return {key: view.copy() for key, view in self.views.items()}

    def load_state(self, arrays, source="weights"):
        """Copy arrays (a dict or an open .npz) into the parameters, refusing a missing
        key or a wrong shape with a message that names both."""
        for key, view in self.views.items():
            if key not in arrays:
                raise UserError(f"{source}: missing array '{key}' (expected shape {view.shape})")
            value = np.asarray(arrays[key])
            if value.shape != view.shape:
                raise UserError(
                    f"{source}: '{key}' has shape {value.shape}, the network needs {view.shape}"
                )
            if not np.issubdtype(value.dtype, np.number):
                raise UserError(f"{source}: '{key}' is not numeric (dtype {value.dtype})")
            if not np.all(np.isfinite(value)):
                raise UserError(f"{source}: '{key}' holds NaN or infinite values")
            view[...] = value

    # -- buffers ------------------------------------------------------------------
    def _reserve(self, batch):
        """Allocate Z, A and dA buffers (batch, units) per layer for batches up to `batch`."""
        if batch <= self._capacity:
            return
        units = self.sizes[1:]
        self._Z = [np.empty((batch, u), self.dtype) for u in units]
        self._A = [np.empty((batch, u), self.dtype) for u in units]
        self._dA = [np.empty((batch, u), self.dtype) for u in units]
        self._capacity = batch

    # -- passes -------------------------------------------------------------------
    def forward(self, X, train=False):
        """X (n, inputs) -> A_L (n, outputs), a view into a buffer reused by the next
        call. With train=False hidden activations run in place on Z (no cache kept for
        backward); the output layer keeps its logits Z_L apart, for the losses."""
        n = X.shape[0]
        self._reserve(n)
        last = len(self.W) - 1
        A = X
        for i, (W, b, act) in enumerate(zip(self.W, self.b, self._act)):
            Z = self._Z[i][:n]  # (n, units_i)
            np.matmul(A, W, out=Z)
            if b is not None:
                Z += b
            A = self._A[i][:n] if (train or i == last) else Z
            act(Z, out=A)
        return A

    def logits(self, n):
        """Z_L (n, outputs) of the last forward pass."""
        return self._Z[-1][:n]

    def train_step(self, X, Y, loss):
        """One forward and backward pass over a minibatch; fills `grads` and returns
        the mean loss. X (n, inputs), Y (n, outputs)."""
        n = X.shape[0]
        A = self.forward(X, train=True)
        value = LOSSES[loss](Y, self._Z[-1][:n], A)
        self.backward(X, Y, loss)
        return value

    def backward(self, X, Y, loss):
        """Backpropagate the loss of the last train-mode forward pass into `grads`.

        The output gradient is fused for (sigmoid, binary_crossentropy) and (softmax,
        categorical_crossentropy): dZ_L = (A_L - Y) / size; otherwise dA_L from the loss
        times f'(Z_L)."""
        n = X.shape[0]
        last = len(self.W) - 1
        dZ = self._dA[last][:n]
        fused = FUSED.get((self.activation_names[last], loss))
        if fused is not None:
            fused(Y, self._A[last][:n], out=dZ)
        else:
            LOSS_DERIVATIVES[loss](Y, self._A[last][:n], out=dZ)
            self._der[last](self._Z[last][:n], self._A[last][:n], dZ)
        for i in range(last, -1, -1):
            A_in = X if i == 0 else self._A[i - 1][:n]  # (n, fan_in)
            np.matmul(A_in.T, dZ, out=self.dW[i])  # (fan_in, units)
            if self.db[i] is not None:
                np.sum(dZ, axis=0, out=self.db[i])  # (units,)
            if i > 0:
                dA = self._dA[i - 1][:n]
                np.matmul(dZ, self.W[i].T, out=dA)  # (n, fan_in)
                self._der[i - 1](self._Z[i - 1][:n], self._A[i - 1][:n], dA)
                dZ = dA

    def flops(self):
        """Multiply-adds counted as 2 FLOPs per weight, plus one per bias, per row:
        [flops of layer i for one input row]."""
        return [2 * W.size + (0 if b is None else b.size) for W, b in zip(self.W, self.b)]
