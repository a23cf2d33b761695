"""A finished run as an ONNX model (`yamlnet export RUN --format onnx`): what `yamlnet
predict` does around the network, in ONNX's standard and ai.onnx.ml operators (opset 17,
ai.onnx.ml 3; IR version 8), checked by onnx's checker and run by onnxruntime in the tests.

Inputs, with a dynamic batch dimension "batch":
- numeric features listed by name (or every column, or a .npy/.npz array): one input `X`
  (batch, d) of the run's dtype, its columns those of the metadata "features"; the
  data.scale statistics of weights.npz are applied in the graph (in float64, as predict).
- typed columns (data.features as a mapping; preprocess.json): one input per column,
  named by the column, (batch, 1): numeric columns and binary columns of two numbers in
  the run's dtype, NaN for a missing cell; categorical columns and binary columns of
  texts or true/false as strings, the cell's stripped text, a missing cell being one of
  the run's na_values ("" and "NA" by default).
Outputs: `probabilities` (batch, K) when the output layer is sigmoid or softmax, else
`values` (batch, K) in the targets' own units (data.target_scale inverted); `label`
(batch,) string when the run has class labels. A row that predict would refuse or leave
out (a missing cell in a missing: error or drop_row column, an unseen category under
unknown: error, a third value in a binary column) gets NaN outputs and an empty label.
Metadata: "classes", "features", "targets" (JSON lists), "yamlnet.run_id", "yamlnet.dtype".
"""

import itertools
import json
import re

import numpy as np

from runner.errors import UserError
from runner.io import data
from runner.io.table import DEFAULT_NA

OPSET, ML_OPSET, IR_VERSION = 17, 3, 8  # onnxruntime 1.14 and later run these
EXTRA = "yamlnet export --format onnx needs the extra 'onnx': pip install 'yamlnet[onnx]'"
CLASSIFYING = ("sigmoid", "softmax")  # output activations whose outputs are probabilities
ARRAYS = re.compile(r"layers\.\d+\.[Wb]|scale\.(mean|std|min|max)|classes")  # of weights.npz


def onnx_model(config, net, arrays, info, saved=None) -> bytes:
    """The serialized ONNX model of a finished run: its config, Network with the saved
    weights, the arrays of weights.npz, run.json and preprocess.json (or None). What
    cannot be expressed is a UserError naming it."""
    try:
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        raise UserError(EXTRA) from None
    from runner.runs import onnx_ops

    _refuse_unknown(config, arrays, saved or {}, onnx_ops.ACTIVATIONS)
    g = onnx_ops.Graph(net.dtype)
    g.elem = TensorProto.DOUBLE if net.dtype == np.float64 else TensorProto.FLOAT
    state = (saved or {}).get("features")
    if state is not None:
        na = ((saved or {}).get("dialect") or {}).get("na_values", DEFAULT_NA)
        A, refused = _typed_inputs(g, state, list(na))
        features = [c["name"] for c in state["columns"]]
    else:
        A, refused = _listed_input(g, net.sizes[0], data.Scaler.from_arrays(arrays))
        features = info.get("features") if isinstance(info.get("features"), list) else None
    for i, layer in enumerate(config.model.layers):
        A = g.op("MatMul", A, g.const(net.W[i]))  # (batch, units)
        if net.b[i] is not None:
            A = g.op("Add", A, g.const(net.b[i]))
        spec = layer.activation
        A = onnx_ops.ACTIVATIONS[spec.name](g, A, **spec.model_dump(exclude={"name"}))
    targets = (saved or {}).get("targets")
    if targets is not None and targets["scale"] != "none":
        A = _decode_targets(g, targets, A)
    if refused is not None:
        A = g.op("Where", refused, g.const(np.nan), A)
    K = net.sizes[-1]
    name = "probabilities" if config.model.layers[-1].activation.name in CLASSIFYING else "values"
    g.outputs.append(helper.make_tensor_value_info(g.rename(A, name), g.elem, ["batch", K]))
    classes = arrays.get("classes")
    if classes is not None:
        _label(g, name, K, [str(c) for c in np.asarray(classes).tolist()], refused)
    clash = {v.name for v in g.inputs} & {v.name for v in g.outputs}
    if clash:
        raise UserError(f"cannot export to ONNX: the input column {clash.pop()!r} has the name "
                        "of an output of the model (probabilities, values, label)")
    graph = helper.make_graph(g.nodes, config.name, g.inputs, g.outputs, g.initializers)
    model = helper.make_model(graph, producer_name="yamlnet", doc_string=__doc__.split("\n")[0],
                              opset_imports=[helper.make_opsetid("", OPSET),
                                             helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
    model.ir_version = IR_VERSION
    props = {"yamlnet.run_id": str(info.get("id")), "yamlnet.dtype": net.dtype.name,
             "features": features, "targets": info.get("targets"),
             "classes": None if classes is None else [str(c) for c in np.asarray(classes).tolist()]}
    helper.set_model_props(model, {k: v if isinstance(v, str) else json.dumps(v)
                                   for k, v in props.items() if v is not None})
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def _refuse_unknown(config, arrays, saved, activations):
    """A UserError for anything of the run that the export has no ONNX form for."""
    for i, layer in enumerate(config.model.layers):
        if layer.activation.name not in activations:
            raise UserError(f"cannot export to ONNX: model.layers.{i} has activation "
                            f"{layer.activation.name!r}, which has no ONNX form here")
    for key in arrays:
        if not ARRAYS.fullmatch(key):
            raise UserError(f"cannot export to ONNX: weights.npz holds {key!r}, which is not a "
                            "part of the dense stack the export writes")
    for col in (saved.get("features") or {}).get("columns", []):
        if col["type"] not in COLUMNS:
            raise UserError(f"cannot export to ONNX: column {col['name']!r} is of type "
                            f"{col['type']!r}, which ONNX's operators do not express here "
                            f"(exported column types: {', '.join(COLUMNS)})")


def _input(g, name, elem):
    from onnx import helper

    g.inputs.append(helper.make_tensor_value_info(name, elem, ["batch", 1]))
    return name


def _listed_input(g, width, scaler):
    """(X (batch, width) scaled by the run's Scaler in float64 as predict does, refused
    (batch, 1) bool: rows holding a NaN or an infinity, which predict refuses)."""
    from onnx import TensorProto, helper

    g.inputs.append(helper.make_tensor_value_info("X", g.elem, ["batch", width]))
    bad = g.op("Cast", g.op("Or", g.op("IsNaN", "X"), g.op("IsInf", "X")), to=TensorProto.FLOAT)
    refused = g.op("Greater", g.op("ReduceSum", bad, g.const([1], np.int64), keepdims=1),
                   g.const(np.float32(0), np.float32))
    if scaler.kind == "none":
        return "X", refused
    x = g.op("Cast", "X", to=TensorProto.DOUBLE)
    x = g.op("Sub", x, g.const(scaler.shift, np.float64))
    x = g.op("Div", x, g.const(scaler.div, np.float64))
    return g.op("Cast", x, to=g.elem), refused


def _typed_inputs(g, state, na):
    """(X (batch, width) of the plan's encoded columns, refused (batch, 1) bool or None)."""
    blocks, refused = [], []
    for col in state["columns"]:
        block, bad = COLUMNS[col["type"]](g, col, na)
        blocks.append(block)
        refused += [bad] if bad is not None else []
    X = g.op("Concat", *blocks, axis=1) if len(blocks) > 1 else blocks[0]
    for bad in refused[1:]:
        refused[0] = g.op("Or", refused[0], bad)
    return X, (refused[0] if refused else None)


def _numeric(g, col, na):
    """Fill a missing cell (NaN), then scale, in float64 (runner/io/preprocess.py)."""
    from onnx import TensorProto

    x = g.op("Cast", _input(g, col["name"], g.elem), to=TensorProto.DOUBLE)
    nan = g.op("IsNaN", x)
    bad = None
    if col["fill"] is not None:
        x = g.op("Where", nan, g.const(col["fill"], np.float64), x)
    else:  # missing: error or drop_row
        bad = nan
    if col["scale"] != "none":
        lo, hi = ("mean", "std") if col["scale"] == "standard" else ("min", "max")
        div = col[hi] - (col[lo] if hi == "max" else 0.0)
        x = g.op("Sub", x, g.const(col[lo], np.float64))
        x = g.op("Div", x, g.const(div or 1.0, np.float64))
    return g.op("Cast", x, to=g.elem), bad


def _codes(g, s, keys):
    """The int64 code (batch, 1) of each text of s by the mapping `keys`, -1 if none."""
    return g.op("LabelEncoder", s, domain="ai.onnx.ml", keys_strings=list(keys),
                values_int64s=[int(v) for v in keys.values()], default_int64=-1)


def _categorical(g, col, na):
    """One-hot over the categories, then (missing), then (other): the code of each cell
    compared with the column offsets. A missing cell without a (missing) column codes -2."""
    from onnx import TensorProto

    k, has_missing = len(col["categories"]), bool(col["missing_column"])
    keys = {c: i for i, c in enumerate(col["categories"])}
    keys.update(dict.fromkeys(col["other"], k + has_missing))
    for text in na:
        keys.setdefault(text, k if has_missing else -2)
    code = _codes(g, _input(g, col["name"], TensorProto.STRING), keys)
    width = k + has_missing + bool(col["other"])
    hot = g.op("Equal", code, g.const(np.arange(width), np.int64))  # (batch, width)
    bad = None
    if col["unknown"] == "error":
        bad = g.op("Less", code, g.const(0, np.int64))
    elif col["missing"] in ("error", "drop_row"):
        bad = g.op("Equal", code, g.const(-2, np.int64))
    return g.op("Cast", hot, to=g.elem), bad


def _binary(g, col, na):
    """1 for the value coded 1, 0 for the other; anything else is refused."""
    from onnx import TensorProto

    a, b = col["values"]
    if col["kind"] == "number":
        x = _input(g, col["name"], g.elem)
        one = g.op("Equal", x, g.const(b))
        bad = g.op("Not", g.op("Or", one, g.op("Equal", x, g.const(a))))
        return g.op("Cast", one, to=g.elem), bad
    if col["kind"] == "boolean":  # true/false in any case
        keys = {"".join(v): int(word == "true") for word in ("false", "true")
                for v in itertools.product(*[(c, c.upper()) for c in word])}
    else:
        keys = {a: 0, b: 1}
    code = _codes(g, _input(g, col["name"], TensorProto.STRING), keys)
    one = g.op("Equal", code, g.const(1, np.int64))
    return g.op("Cast", one, to=g.elem), g.op("Less", code, g.const(0, np.int64))


COLUMNS = {"numeric": _numeric, "categorical": _categorical, "binary": _binary}


def _decode_targets(g, state, A):
    """Network outputs -> the targets' units, in float64 (preprocess.decode_targets)."""
    from onnx import TensorProto

    y = g.op("Cast", A, to=TensorProto.DOUBLE)
    if state["scale"] == "log":
        y = g.op("Exp", y)
    else:
        lo, hi = ("mean", "std") if state["scale"] == "standard" else ("min", "max")
        shift = np.array(state[lo], np.float64)
        div = np.array(state[hi], np.float64) - (shift if hi == "max" else 0)
        y = g.op("Mul", y, g.const(np.where(div == 0, 1.0, div), np.float64))
        y = g.op("Add", y, g.const(shift, np.float64))
    return g.op("Cast", y, to=g.elem)


def _label(g, out, K, classes, refused):
    """label (batch,): the class of the largest output, or of p > 0.5 for one sigmoid."""
    from onnx import TensorProto, helper

    if K == 1:
        flat = g.op("Reshape", out, g.const([-1], np.int64))
        index = g.op("Cast", g.op("Greater", flat, g.const(0.5)), to=TensorProto.INT64)
    else:
        index = g.op("ArgMax", out, axis=1, keepdims=0)
    label = g.op("Gather", g.const(np.array(classes, dtype=object), object), index, axis=0)
    if refused is not None:
        flat = g.op("Reshape", refused, g.const([-1], np.int64))
        label = g.op("Where", flat, g.const(np.array("", dtype=object), object), label)
    g.outputs.append(helper.make_tensor_value_info(g.rename(label, "label"), TensorProto.STRING,
                                                   ["batch"]))
