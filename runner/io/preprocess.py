"""Column preprocessing: a plan learned from the training rows and replayed on any table
with the same columns, like a fitted scikit-learn ColumnTransformer. The fitted state is
plain JSON (the run's preprocess.json); columns are found by name, in any order.

Features (one spec per column, plain dicts; DEFAULTS fill what a spec leaves out):
- numeric: missing error|mean|median|constant (`value`)|drop_row, then scale
  none|standard|minmax, in that order (SimpleImputer -> StandardScaler): the statistics
  are those of the filled training column; a zero std or range divides by 1.
- categorical: one-hot. Categories are the texts of the training cells, sorted
  numerically when every one is a number, else by code point (Python's `sorted`). With
  max_categories K and more than K categories, the K - 1 most frequent are kept (ties:
  the earlier in that order) and the rest share one "(other)" column. Columns: the
  categories, then "(missing)" (missing: category, when the training rows had missing
  cells; missing_column in the state), then "(other)". An unseen value (and a missing
  cell without a "(missing)" column) is an error, or all zeros under unknown: ignore.
  This is scikit-learn's OneHotEncoder (handle_unknown="ignore" for unknown: ignore).
- binary: two values -> 0, 1: numbers in numeric order (0/1 stay 0/1), true/false
  (any case) as false 0, true 1, else two texts in code point order.
Rows with a missing cell in a drop_row column are dropped first, then everything is
learned from the remaining rows; missing: error reports every missing cell at once.

The state: {"format": 1, "rows": training rows used, "width": encoded width, "columns":
[one dict per column, in spec order: the spec with its defaults ("name", "type",
"missing", ...) plus what was learned: numeric "fill" (None: no fill) and "mean"/"std"
or "min"/"max"; categorical "categories", "other" (lists of texts), "missing_column";
binary "kind" (number|boolean|text) and "values" [coded 0, coded 1]]}.

Targets: `fit_labels` codes a binary_crossentropy target as 0/1 the same way, refusing
anything but two classes with advice; `fit_target_scale` scales a regression target
(none|standard|minmax|log) and `decode_targets` inverts it.
"""

from dataclasses import dataclass

import numpy as np

from runner.errors import DataError, did_you_mean
from runner.io.table import SHOWN, cell_error, numbers, parse_numbers, refuse_missing

FORMAT = 1
MISSING, OTHER = "(missing)", "(other)"
OPTIONS = {  # type -> option -> allowed values (the first is the default)
    "numeric": {"missing": ("error", "mean", "median", "constant", "drop_row"),
                "scale": ("none", "standard", "minmax")},
    "categorical": {"missing": ("error", "category", "drop_row"), "unknown": ("error", "ignore")},
    "binary": {"missing": ("error", "drop_row")},
}
DEFAULTS = {t: {k: v[0] for k, v in o.items()} for t, o in OPTIONS.items()}
DEFAULTS["numeric"]["value"] = None  # the fill of missing: constant
DEFAULTS["categorical"]["max_categories"] = None
TARGET_SCALES = ("none", "standard", "minmax", "log")


@dataclass
class Encoded:
    """X (m, width) C-contiguous; kept (n,) bool: the table rows encoded (the others were
    dropped by drop_row, X row i is the i-th kept row); names (width,) of X's columns."""

    X: np.ndarray
    kept: np.ndarray
    names: list[str]


def _listing(values, most=5):
    return ", ".join(map(repr, values[:most])) + (", ..." if len(values) > most else "")


def _column(table, name):
    """The cells (n,) str of column `name`; a DataError if the table lacks it."""
    if name not in table.values:
        raise DataError(table.path, f"no column {name!r}{did_you_mean(name, table.names)}")
    return table.values[name]


def _cells(table, name, where):
    return [(int(table.rows[i]), name, str(table.values[name][i])) for i in where[:SHOWN]]


def _report(table, problem, masks, advice=""):
    """A DataError over the cells set in masks {column: (n,) bool}, if any."""
    count = sum(int(m.sum()) for m in masks.values())
    if count:
        cells = sorted(c for name, m in masks.items() for c in _cells(table, name, np.flatnonzero(m)))
        raise cell_error(table.path, problem, cells, count, advice)


def _parse(columns, table):
    """What fitting and encoding need: the kept rows (n,) bool; the numbers of each numeric
    column over the kept rows {name: (m,) float64}; the distinct texts (k,) of each
    categorical column over the kept rows and each row's index into them (m,). Missing
    cells of missing: error columns are reported."""
    for c in columns:
        _column(table, c["name"])
    kept = np.ones(len(table), bool)
    for c in columns:
        if c["missing"] == "drop_row":
            kept &= ~table.missing[c["name"]]
    errors = [c["name"] for c in columns if c["missing"] == "error"]
    refuse_missing(table.take(kept) if errors and not kept.all() else table, errors,
                   "set the column's missing: to another choice than error")
    if not kept.any():
        raise DataError(table.path, "every row has a missing cell in a drop_row column")
    rows = np.flatnonzero(kept)
    names = [c["name"] for c in columns if c["type"] == "numeric"]
    nums = dict(zip(names, numbers(table.take(rows) if len(rows) < len(table) else table, names).T))
    factors = {c["name"]: np.unique(table.values[c["name"]][rows], return_inverse=True)
               for c in columns if c["type"] == "categorical"}
    return kept, nums, factors


def _order(texts):
    """Sorting indices of distinct texts (k,) (sorted by code point): numerically when
    all are numbers (stable, so "1" before "1.0"), else as they are."""
    x, bad = parse_numbers(texts)
    return np.arange(len(texts)) if bad.any() else np.argsort(x, kind="stable")


def _at(table, rows, bad):
    """(n,) bool mask over the table of the kept rows `rows` (m,) where bad (m,) is set."""
    mask = np.zeros(len(table), bool)
    mask[rows[bad]] = True
    return mask


def _pair(texts):
    """Distinct texts (k,) -> (kind, the distinct values in coding order): "number"
    (numerically; "1" and "1.0" are one value), "boolean" (true/false in any case: false
    first) or "text" (code point order)."""
    x, bad = parse_numbers(texts)
    if not bad.any():
        return "number", [int(v) if v == int(v) else float(v) for v in np.unique(x)]
    lowered = set(np.strings.lower(texts).tolist())
    if lowered <= {"false", "true"}:
        return "boolean", sorted(lowered)
    return "text", sorted(texts.tolist())


def _pair_codes(col, table, rows):
    """(m,) int8 0/1 codes of the kept rows `rows` of a two-valued column; other values
    are a DataError."""
    name, (a, b) = col["name"], col["values"]
    v = table.values[name][rows]
    if col["kind"] == "number":
        v = parse_numbers(v)[0]
    elif col["kind"] == "boolean":
        v = np.strings.lower(v)
    one, zero = v == b, v == a
    if not (one | zero).all():
        _report(table, f"value other than {a!r} and {b!r} (the two of column {name!r})",
                {name: _at(table, rows, ~(one | zero))})
    return one.astype(np.int8)


def _fit_column(col, table, rows, nums, factors):
    name, kind = col["name"], col["type"]
    col = dict(col)
    if kind == "numeric":
        if col["missing"] == "constant" and col["value"] is None:
            raise ValueError(f"column {name!r}: missing: constant needs a value")
        x = nums[name]
        given = x[~np.isnan(x)]
        fill = {"mean": np.mean, "median": np.median}.get(col["missing"])
        if fill is not None and not len(given):
            raise DataError(table.path, f"column {name!r} has no values to take the "
                            f"{col['missing']} of")
        col["fill"] = float(fill(given)) if fill else col["value"]
        x = np.where(np.isnan(x), col["fill"] if col["fill"] is not None else 0.0, x)
        if col["scale"] == "standard":
            col["mean"], col["std"] = float(x.mean()), float(x.std())
        elif col["scale"] == "minmax":
            col["min"], col["max"] = float(x.min()), float(x.max())
        if not all(np.isfinite(col[k]) for k in ("mean", "std", "min", "max") if k in col):
            raise DataError(table.path, f"column {name!r} is too large to scale: its statistics "
                            "overflow float64")
        return col
    if kind == "binary":
        col["kind"], values = _pair(np.unique(table.values[name][rows][~table.missing[name][rows]]))
        if len(values) != 2:
            raise DataError(table.path, f"binary column {name!r} has {len(values)} distinct "
                            f"values ({_listing(values)}); binary needs two; use type: "
                            "categorical for more")
        col["values"] = values
        return col
    texts, inverse = factors[name]
    counts = np.bincount(inverse[~table.missing[name][rows]], minlength=len(texts))
    texts, counts = texts[counts > 0], counts[counts > 0]  # leave out the missing cells' texts
    order = _order(texts)
    texts, counts = texts[order], counts[order]
    k = col["max_categories"]
    keep = np.ones(len(texts), bool)
    if k is not None and len(texts) > k:
        keep[:] = False
        keep[np.lexsort((np.arange(len(texts)), -counts))[:k - 1]] = True  # most frequent
    col["categories"], col["other"] = texts[keep].tolist(), texts[~keep].tolist()
    col["missing_column"] = bool(table.missing[name][rows].any())  # missing: category only
    return col


def _width(col):
    if col["type"] != "categorical":
        return 1
    return len(col["categories"]) + col["missing_column"] + bool(col["other"])


def _encoded_names(col):
    name = col["name"]
    if col["type"] == "numeric":
        return [name]
    if col["type"] == "binary":
        return [f"{name}={col['values'][1]}"]
    extra = [MISSING] * col["missing_column"] + [OTHER] * bool(col["other"])
    return [f"{name}={c}" for c in col["categories"] + extra]


def _fit(specs, table):
    columns = [{"name": name, **DEFAULTS[s["type"]], **s} for name, s in specs.items()]
    kept, nums, factors = _parse(columns, table)
    rows = np.flatnonzero(kept)
    columns = [_fit_column(c, table, rows, nums, factors) for c in columns]
    state = {"format": FORMAT, "rows": len(rows), "width": sum(map(_width, columns)),
             "columns": columns}
    return state, (kept, nums, factors)


def fit(specs, table) -> dict:
    """Learn the plan of `specs` {column name: spec dict}, in that order, from the rows
    of `table`: the state (plain JSON), see the module docstring and `plan`."""
    return _fit(specs, table)[0]


def fit_transform(specs, table, dtype="float32") -> tuple[dict, Encoded]:
    """fit, then transform the same table, reading its cells once."""
    state, parsed = _fit(specs, table)
    return state, _encode(state, table, dtype, *parsed)


def transform(state, table, dtype="float32") -> Encoded:
    """Encode the rows of `table` (its columns found by name) by the fitted `state`."""
    return _encode(state, table, dtype, *_parse(state["columns"], table))


def plan(state) -> list[dict]:
    """The input plan: per column {column, type, width, encoded (width,) names}; the
    network's input width is state["width"]."""
    return [{"column": c["name"], "type": c["type"], "width": _width(c),
             "encoded": _encoded_names(c)} for c in state["columns"]]


def _encode(state, table, dtype, kept, nums, factors):
    rows = np.flatnonzero(kept)
    X = np.zeros((len(rows), state["width"]), dtype)  # (m, width)
    j = 0
    for col in state["columns"]:
        name = col["name"]
        if col["type"] == "numeric":
            x = nums[name]
            if col["fill"] is not None:
                x = np.where(np.isnan(x), col["fill"], x)
            if col["scale"] == "standard":
                x = (x - col["mean"]) / (col["std"] or 1.0)
            elif col["scale"] == "minmax":
                x = (x - col["min"]) / ((col["max"] - col["min"]) or 1.0)
            X[:, j] = x
        elif col["type"] == "binary":
            X[:, j] = _pair_codes(col, table, rows)
        else:
            codes = _categories(col, table, rows, *factors[name])
            hit = np.flatnonzero(codes >= 0)
            X[hit, j + codes[hit]] = 1
        j += _width(col)
    return Encoded(X, kept, [n for c in state["columns"] for n in _encoded_names(c)])


def _categories(col, table, rows, texts, inverse):
    """(m,) column offset of each kept row's category within the block; -1: all zeros."""
    name, cats = col["name"], col["categories"]
    where = {c: k for k, c in enumerate(cats)}
    where.update(dict.fromkeys(col["other"], len(cats) + col["missing_column"]))
    codes = np.array([where.get(t, -1) for t in texts.tolist()], np.intp)[inverse]
    missing = table.missing[name][rows]  # only under missing: category (else none is left)
    codes[missing] = len(cats) if col["missing_column"] else -1
    if col["unknown"] == "error" and (codes < 0).any():
        _report(table, f"category not seen in training (column {name!r})",
                {name: _at(table, rows, codes < 0)},
                "set unknown: ignore to encode unseen values as all zeros")
    return codes


# ----------------------------------------------------------------------------- targets


def _target_cells(table, name):
    cells = _column(table, name)
    refuse_missing(table, [name], "every row needs its target")
    return cells


def fit_labels(table, name) -> dict:
    """Code the target column `name` for binary_crossentropy: {"name", "kind", "values":
    [value coded 0, value coded 1]}, in the order of binary columns (0/1 stay 0/1). Non-
    integer numbers or other than two values are refused, with the loss that fits."""
    kind, values = _pair(np.unique(_target_cells(table, name)))
    n = len(values)
    if kind == "number" and any(isinstance(v, float) for v in values):
        raise DataError(table.path, f"target {name!r} holds non-integer numbers ({n} distinct "
                        "values): binary_crossentropy needs two classes; for a continuous "
                        "target use loss mse with an identity output layer")
    if n != 2:
        advice = (f"; for {n} classes use loss categorical_crossentropy with {n} softmax "
                  "units in the output layer" if n > 2 else "")
        raise DataError(table.path, f"target {name!r} has {n} distinct value{'s' * (n != 1)} "
                        f"({_listing(values)}); binary_crossentropy needs exactly two{advice}")
    return {"name": name, "kind": kind, "values": values}


def encode_labels(state, table, dtype="float32") -> np.ndarray:
    """Y (n, 1) of 0/1 in dtype: the coded target column of every row of `table`."""
    _target_cells(table, state["name"])
    return _pair_codes(state, table, np.arange(len(table)))[:, None].astype(dtype)


def decode_labels(state, P) -> np.ndarray:
    """Probabilities P (n, 1) of the value coded 1 -> the predicted values (n,) str."""
    return np.where(np.asarray(P)[:, 0] >= 0.5, *map(str, state["values"][::-1]))


def fit_target_scale(kind, Y, names, path) -> dict:
    """Scaling of regression targets Y (n, t) (the training rows of the columns `names`
    of the file `path`): {"names", "scale", and per column "mean"/"std" or "min"/"max"
    lists}; log is ln(y), for y > 0 only."""
    Y = np.asarray(Y, np.float64)
    if kind == "log" and (Y <= 0).any():
        i, j = np.argwhere(Y <= 0)[0]
        raise DataError(path, f"target_scale log takes ln(y), but {int((Y <= 0).sum())} target "
                        f"values are not above 0 (column {names[j]!r}: {Y[i, j]:g}); use "
                        "target_scale standard or minmax, or none")
    state = {"names": list(names), "scale": kind}
    if kind == "standard":
        state["mean"], state["std"] = Y.mean(0).tolist(), Y.std(0).tolist()
    elif kind == "minmax":
        state["min"], state["max"] = Y.min(0).tolist(), Y.max(0).tolist()
    return state


def _shift_div(state):
    if state["scale"] == "standard":
        return np.array(state["mean"]), np.where(np.array(state["std"]) == 0, 1.0, state["std"])
    lo, hi = np.array(state["min"]), np.array(state["max"])
    return lo, np.where(hi == lo, 1.0, hi - lo)


def encode_targets(state, Y, dtype="float32") -> np.ndarray:
    """Targets Y (n, t) scaled by `state` (float64 arithmetic), (n, t) C-contiguous dtype."""
    Y = np.asarray(Y, np.float64)
    if state["scale"] == "log":
        Y = np.log(Y)
    elif state["scale"] != "none":
        shift, div = _shift_div(state)
        Y = (Y - shift) / div
    return np.ascontiguousarray(Y, dtype)


def decode_targets(state, Y) -> np.ndarray:
    """Network outputs Y (n, t) -> targets in the file's units, (n, t) float64."""
    Y = np.asarray(Y, np.float64)
    if state["scale"] == "log":
        return np.exp(Y)
    if state["scale"] == "none":
        return Y.copy()
    shift, div = _shift_div(state)
    return Y * div + shift
