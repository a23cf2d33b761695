"""The dense stack: one flat parameter buffer, preallocated batch buffers, forward and
backward passes.

Layer i maps A_{i-1} (batch, fan_in) to Z_i = A_{i-1} @ W_i + b_i (batch, units), then
A_i = f_i(Z_i). W_i (fan_in, units) and b_i (units,) are views into `params` (P,), and
dW_i, db_i the matching views into `grads` (P,), so an optimizer updates every
parameter with a few vectorized operations over the whole buffer.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from runner.engine import kernels
from runner.engine.activations import ACTIVATIONS, DERIVATIVES
from runner.engine.losses import FUSED, FUSED_VALUES, LOSS_DERIVATIVES, LOSSES, weighted
from runner.errors import UserError

THREAD_ROWS = 1024  # a forward batch of at least 2 * THREAD_ROWS rows is split in two halves
_CPUS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_POOL, _BLAS = [], []


def _threads():
    """(pool, BLAS thread controls) for running two halves of a batch at once, each with a
    single-threaded BLAS; None when that cannot help (one CPU, BLAS limited to one
    thread by the user) or threadpoolctl is not installed."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            libs = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        except ImportError:
            libs = []
        _BLAS.append(libs)
    libs = _BLAS[0]
    if _CPUS < 2 or not libs or max(c.get_num_threads() for c in libs) < 2:
        return None
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(1, thread_name_prefix="yamlnet-forward"))
    return _POOL[0], libs


def _bias_then(act, Z, b, out, tmp):
    """Z += b (b (units,) or None), then out = act(Z): the numpy path of a layer."""
    if b is not None:
        Z += b
    act(Z, out=out, tmp=tmp)


def _column_sums(dZ, db):
    """db (units,) = the sum of the rows of dZ (n, units)."""
    np.add.reduce(dZ, axis=0, out=db)


class Network:
    """A stack of dense layers.

    sizes: [inputs, units_1, ..., units_L]; activations: [(name, params)] per layer;
    biases: [bool] per layer; dtype: "float32" or "float64"; dropout: [p] per layer
    (inverted dropout on the layer's output in train_step only); penalties: [(l1, l2)]
    per layer, on its weights W (not b), added to the loss as Keras's regularizers:
    l1 * sum|W| + l2 * sum W^2.
    """

    def __init__(self, sizes, activations, biases, dtype="float32", dropout=None,
                 penalties=None):
        self.sizes, self.dtype = list(sizes), np.dtype(dtype)
        n_layers = len(self.sizes) - 1
        self.dropout = list(dropout or [0.0] * n_layers)
        self.penalties = list(penalties or [(0.0, 0.0)] * n_layers)
        self._masks = [self._mask_rule(p) for p in self.dropout]  # (threshold, scale) per layer
        self._penalized = any(l1 or l2 for l1, l2 in self.penalties)
        self._S = None  # scratch (fan_in, units) per layer for the penalties
        self.rng = None  # the generator of dropout masks, set by the fit
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
        self._activations = [(name, dict(p)) for name, p in activations]
        self._capacity = self._train_capacity = 0
        self.use_kernels(kernels.initial())

    def use_kernels(self, compiled):
        """Bind the non-matmul work of the passes to the compiled kernels (True), or to
        numpy (False; None: numpy, until a fit settles it, see kernels.engage). Both
        give the same bits."""
        self.kernels = compiled
        ops = kernels.ops() if compiled else None
        self._act, self._der = [], []
        for name, p in self._activations:
            forward = ops.FORWARD.get(name) if ops else None
            self._act.append(partial(forward, **p) if forward
                             else partial(_bias_then, partial(ACTIVATIONS[name], **p)))
            derivative = ops.DERIVATIVES.get(name) if ops else None
            self._der.append(partial(derivative or DERIVATIVES[name], **p))
        self._column_sums = ops.column_sums if ops else _column_sums
        self._ops = ops
        self._losses = {}

    # -- parameters -------------------------------------------------------------
    def initialize(self, rng, inits):
        """Draw every parameter. inits: [(weight (name, params), bias (name, params))]
        per layer; draws W then b, layer by layer, from `rng` in float64, then casts."""
        from runner.engine.initializers import INITIALIZERS

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
    def _reserve(self, batch, train=False):
        """Allocate the buffers for batches up to `batch` rows: Z, A and the scratch T
        (batch, units) per layer; for training also dA per layer and the loss scratch."""
        units = self.sizes[1:]
        if batch > self._capacity:
            self._Z = [np.empty((batch, u), self.dtype) for u in units]
            self._A = [np.empty((batch, u), self.dtype) for u in units]
            self._T = [np.empty((batch, u), self.dtype) for u in units]
            self._capacity, self._train_capacity = batch, 0
        if train and batch > self._train_capacity:
            self._dA = [np.empty((self._capacity, u), self.dtype) for u in units]
            # dropout: the mask M (0 or the scale) and the dropped output D = A * M
            self._M = [np.empty((self._capacity, u), self.dtype) if p else None
                       for u, p in zip(units, self.dropout)]
            self._D = [np.empty((self._capacity, u), self.dtype) if p else None
                       for u, p in zip(units, self.dropout)]
            self._work = np.empty(self._capacity * (units[-1] + 2), self.dtype)
            self._train_capacity = self._capacity
            self._losses = {}  # they hold the loss scratch

    # -- passes -------------------------------------------------------------------
    def forward(self, X, train=False):
        """X (n, inputs) -> A_L (n, outputs), a view into a buffer reused by the next
        call. With train=False hidden activations run in place on Z (no cache kept for
        backward); the output layer keeps its logits Z_L apart, for the losses.

        With train=False a batch of 2 * THREAD_ROWS rows or more is computed as two
        halves (always, so that the result does not depend on the machine), at once on
        two threads when threadpoolctl can hold BLAS to one thread meanwhile: each core
        then runs its own matrix multiplies and elementwise work, rather than both cores
        waiting on one thread's elementwise work between multiplies."""
        n = X.shape[0]
        self._reserve(n, train)
        if train or n < 2 * THREAD_ROWS:
            return self._rows(X, 0, n, train)
        half, threads = n // 2, _threads()
        if threads is None:
            self._rows(X, 0, half, False)
            self._rows(X, half, n, False)
            return self._A[-1][:n]
        pool, libs = threads
        saved = [c.get_num_threads() for c in libs]
        for c in libs:
            c.set_num_threads(1)
        try:
            job = pool.submit(self._rows, X, half, n, False)
            self._rows(X, 0, half, False)
            job.result()
        finally:
            for c, count in zip(libs, saved):
                c.set_num_threads(count)
        return self._A[-1][:n]

    def _rows(self, X, lo, hi, train):
        """The forward pass of rows lo:hi of X through every layer, into rows lo:hi of
        the buffers."""
        last = len(self.W) - 1
        A = X[lo:hi]
        for i, (W, b, act) in enumerate(zip(self.W, self.b, self._act)):
            Z = self._Z[i][lo:hi]  # (rows, units_i)
            np.matmul(A, W, out=Z)
            A = self._A[i][lo:hi] if (train or i == last) else Z
            act(Z, b, A, self._T[i][lo:hi])  # Z += b, A = f(Z)
            if train and self.dropout[i]:
                A = self._drop(i, A, lo, hi)
        return A

    def _mask_rule(self, p):
        """(threshold, scale) of a dropout p: a unit is kept when a uniform 16-bit draw u
        (0..65535) is >= threshold = round(p * 65536), and its output scaled by
        65536 / (65536 - threshold), the inverse of the kept fraction, so that the
        expected output is unchanged (inverted dropout)."""
        t = round(p * 65536)
        return t, self.dtype.type(65536 / (65536 - t))

    def drop_mask(self, i):
        """(threshold, scale) of layer i's dropout (see _mask_rule)."""
        return self._masks[i]

    def _drop(self, i, A, lo, hi):
        """Inverted dropout of layer i's output rows lo:hi: D = A * M, M = keep * scale
        with keep drawn from self.rng (four 16-bit draws per 64-bit word); A itself is
        kept for f'."""
        M, D = self._M[i][lo:hi], self._D[i][lo:hi]
        t, scale = self._masks[i]
        words = self.rng.bit_generator.random_raw((M.size + 3) // 4)
        np.greater_equal(words.view(np.uint16)[:M.size].reshape(M.shape), t, out=M,
                         casting="unsafe")  # 1.0 where kept, 0.0 where dropped
        M *= scale
        np.multiply(A, M, out=D)
        return D

    def _out(self, i, n):
        """What layer i passed on in the last train-mode pass: A_i, or D_i when dropped."""
        return self._D[i][:n] if self.dropout[i] else self._A[i][:n]

    def logits(self, n):
        """Z_L (n, outputs) of the last forward pass."""
        return self._Z[-1][:n]

    def _loss_functions(self, loss):
        """(value, output gradient, fused) for `loss`, looked up once per loss name:
        value(Y, Z_L, A_L, T_L) -> float; gradient(Y, A_L, out) writes dL/dZ_L when
        fused, dL/dA_L otherwise."""
        if loss not in self._losses:
            pair = (self.activation_names[-1], loss)
            fast = FUSED_VALUES.get(pair) if self.sizes[-1] > 1 else None
            generic = LOSSES[loss]
            work = self._work
            value = ((lambda Y, Z, A, T: fast(Y, Z, T)) if fast is not None
                     else (lambda Y, Z, A, T: generic(Y, Z, A, work=work)))
            fused, derivatives = ((self._ops.FUSED, self._ops.LOSS_DERIVATIVES) if self._ops
                                  else (FUSED, LOSS_DERIVATIVES))
            fused = fused.get(pair)
            self._losses[loss] = (value, fused or derivatives[loss], fused is not None)
        return self._losses[loss]

    def train_step(self, X, Y, loss, w=None):
        """One forward and backward pass over a minibatch; fills `grads` and returns
        the mean loss (with the penalties). X (n, inputs), Y (n, outputs), w (n,) row
        weights or None (see losses.weighted). Allocates no array once the buffers are
        reserved (without row weights, for a network whose activations need no
        temporaries of their own)."""
        n = X.shape[0]
        A = self.forward(X, train=True)
        factors = None
        if w is None:
            value = self._loss_functions(loss)[0](Y, self._Z[-1][:n], A, self._T[-1][:n])
        else:
            value, factors = weighted(loss, Y, self._Z[-1][:n], A, w)
        self.backward(X, Y, loss, factors)
        return value + self._penalize()

    def _scratch(self):
        """One scratch array per layer, of its W's shape (reserved once)."""
        if self._S is None:
            self._S = [np.empty_like(W) for W in self.W]
        return self._S

    def penalty(self):
        """l1 * sum|W| + l2 * sum W^2 over the layers (float64), the regularization loss."""
        total = 0.0
        if not self._penalized:
            return total
        for W, S, (l1, l2) in zip(self.W, self._scratch(), self.penalties):
            if l1:
                np.abs(W, out=S)
                total += l1 * float(np.add.reduce(S, axis=None, dtype=np.float64))
            if l2:
                total += l2 * float(np.vdot(W, W))
        return total

    def _penalize(self):
        """Add the penalties' gradients to dW (l1 * sign(W) + 2 * l2 * W), in the scratch
        arrays; returns their value."""
        if not self._penalized:
            return 0.0
        for W, dW, S, (l1, l2) in zip(self.W, self.dW, self._scratch(), self.penalties):
            if l1:
                np.sign(W, out=S)
                S *= l1
                dW += S
            if l2:
                np.multiply(W, 2.0 * l2, out=S)
                dW += S
        return self.penalty()

    def backward(self, X, Y, loss, factors=None):
        """Backpropagate the loss of the last train-mode forward pass into `grads`.

        The output gradient is fused for (sigmoid, binary_crossentropy) and (softmax,
        categorical_crossentropy): dZ_L = (A_L - Y) / size; otherwise dA_L from the loss
        times f'(Z_L). factors (n, 1): row weights' factors (losses.weighted), or None.
        Through a dropped layer, dA is masked before f'."""
        n = X.shape[0]
        last = len(self.W) - 1
        dZ = self._dA[last][:n]
        _, gradient, fused = self._loss_functions(loss)
        gradient(Y, self._A[last][:n], out=dZ)
        if factors is not None:
            dZ *= factors
        if not fused:
            self._der[last](self._Z[last][:n], self._A[last][:n], dZ, tmp=self._T[last][:n])
        for i in range(last, -1, -1):
            A_in = X if i == 0 else self._out(i - 1, n)  # (n, fan_in)
            np.matmul(A_in.T, dZ, out=self.dW[i])  # (fan_in, units)
            if self.db[i] is not None:
                self._column_sums(dZ, self.db[i])  # (units,)
            if i > 0:
                dA = self._dA[i - 1][:n]
                np.matmul(dZ, self.W[i].T, out=dA)  # (n, fan_in)
                if self.dropout[i - 1]:
                    dA *= self._M[i - 1][:n]
                self._der[i - 1](self._Z[i - 1][:n], self._A[i - 1][:n], dA,
                                 tmp=self._T[i - 1][:n])
                dZ = dA
