"""The network's math as ONNX nodes: a small graph builder and every activation of the
vocabulary, each written from standard operators that onnxruntime runs in float32 and in
float64 alike (its Erf, Elu, Softplus and Gelu kernels are float32 only).

ACTIVATIONS[name](g, Z, **params) adds the nodes of A = f(Z) to the Graph g and returns
A's name; Z and A are (batch, units) tensors of the graph's dtype. The formulas are those
of runner/engine/activations.py, in the same order of operations, so that the exported
model agrees with the engine to a few units in the last place. gelu is the exact erf
form, with erfc built from W. J. Cody's rational approximations, the engine's own.
"""

import math

import numpy as np
from onnx import helper, numpy_helper

from runner.engine.activations import _P1, _P2, _P3, _Q1, _Q2, _Q3, _explim


class Graph:
    """The nodes, initializers and value infos of one ONNX graph under construction.

    op(type, *inputs, **attrs) appends a node and returns its one output's name; const
    (value) adds an initializer (in the graph's dtype unless told) and returns its name.
    Internal names start with "yamlnet/", so they never collide with column names."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return f"yamlnet/{hint}_{self._count}"

    def const(self, value, dtype=None, hint="const"):
        array = np.asarray(value, dtype=dtype or self.dtype)
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def op(self, op_type, *inputs, domain=None, hint=None, **attrs):
        out = self._name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], domain=domain, **attrs))
        return out

    def rename(self, name, new):
        """Give the value `name` (the output of the last node that made it) the name `new`."""
        for node in reversed(self.nodes):
            outputs = list(node.output)
            if name in outputs:
                node.output[outputs.index(name)] = new
                return new
        self.nodes.append(helper.make_node("Identity", [name], [new]))
        return new


# ---- activations: fn(g, Z, **params) -> A ---------------------------------------------


def identity(g, Z):
    return Z


def sigmoid(g, Z):
    return g.op("Sigmoid", Z)


def tanh(g, Z):
    return g.op("Tanh", Z)


def relu(g, Z):
    return g.op("Relu", Z)


def leaky_relu(g, Z, alpha=0.01):
    return g.op("LeakyRelu", Z, alpha=float(alpha))


def elu(g, Z, alpha=1.0):
    """max(z, 0) + alpha * (exp(min(z, 0)) - 1)."""
    zero = g.const(0.0)
    t = g.op("Sub", g.op("Exp", g.op("Min", Z, zero)), g.const(1.0))
    return g.op("Add", g.op("Max", Z, zero), g.op("Mul", t, g.const(alpha)))


def softplus(g, Z):
    """log(1 + exp(-min(|z|, L))) + max(z, 0), L the engine's exponent limit."""
    t = g.op("Min", g.op("Abs", Z), g.const(_explim(g.dtype)))
    t = g.op("Log", g.op("Add", g.op("Exp", g.op("Neg", t)), g.const(1.0)))
    return g.op("Add", g.op("Max", Z, g.const(0.0)), t)


def silu(g, Z):
    return g.op("Mul", Z, g.op("Sigmoid", Z))


def softmax(g, Z):
    return g.op("Softmax", Z, axis=-1)


def gelu(g, Z):
    """z * Phi(z), Phi(z) = erfc(-z / sqrt(2)) / 2 (the engine's form)."""
    cdf = g.op("Mul", erfc(g, g.op("Mul", Z, g.const(-math.sqrt(0.5)))), g.const(0.5))
    return g.op("Mul", Z, cdf)


ACTIVATIONS = {
    "identity": identity,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softplus": softplus,
    "gelu": gelu,
    "silu": silu,
    "softmax": softmax,
}


# ---- erfc (W. J. Cody, Math. Comp. 23, 1969), as runner/engine/activations.py ----------


def _ratio(g, p, q, t):
    """p(t) / q(t) by Horner's rule, in Cody's order of operations (q monic)."""
    num, den = g.op("Mul", t, g.const(p[0])), t
    for a, b in zip(p[1:-1], q[1:-1], strict=True):
        num = g.op("Mul", g.op("Add", num, g.const(a)), t)
        den = g.op("Mul", g.op("Add", den, g.const(b)), t)
    return g.op("Div", g.op("Add", num, g.const(p[-1])), g.op("Add", den, g.const(q[-1])))


def _exp_neg_square(g, t):
    """exp(-t^2) for t >= 0, split at s = floor(16 t) / 16 to keep t^2 exact."""
    sixteen = g.const(16.0)
    s = g.op("Div", g.op("Floor", g.op("Mul", t, sixteen)), sixteen)
    a = g.op("Exp", g.op("Neg", g.op("Mul", s, s)))
    b = g.op("Exp", g.op("Neg", g.op("Mul", g.op("Sub", t, s), g.op("Add", t, s))))
    return g.op("Mul", a, b)


def erfc(g, x):
    """erfc(x) elementwise: each of Cody's ranges of |x| is evaluated on |x| clipped into
    it, and Where picks the one that applies; erfc(-t) = 2 - erfc(t)."""
    y = g.op("Abs", x)
    xbig = 9.0 if g.dtype == np.float32 else 26.5  # erfc(xbig) underflows
    small, mid = g.const(0.46875), g.const(4.0)
    t = g.op("Min", y, small)
    floor = g.op("Max", t, g.const(1e-16))
    erf_small = g.op("Mul", t, _ratio(g, _P1, _Q1, g.op("Mul", floor, floor)))
    e_small = g.op("Sub", g.const(1.0), erf_small)
    t = g.op("Clip", y, small, mid)
    e_mid = g.op("Mul", _exp_neg_square(g, t), _ratio(g, _P2, _Q2, t))
    t = g.op("Clip", y, mid, g.const(xbig))
    s = g.op("Reciprocal", g.op("Mul", t, t))
    tail = g.op("Sub", g.const(1.0 / math.sqrt(math.pi)), g.op("Mul", s, _ratio(g, _P3, _Q3, s)))
    e_tail = g.op("Div", g.op("Mul", _exp_neg_square(g, t), tail), t)
    e = g.op("Where", g.op("LessOrEqual", y, g.const(xbig)), e_tail, g.const(0.0))
    e = g.op("Where", g.op("LessOrEqual", y, mid), e_mid, e)
    e = g.op("Where", g.op("LessOrEqual", y, small), e_small, e)
    return g.op("Where", g.op("Less", x, g.const(0.0)), g.op("Sub", g.const(2.0), e), e)
