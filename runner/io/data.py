"""Data files in, arrays out: whole-file loads for fits, streaming for forward passes,
feature scaling and class-label encoding.

Formats (SPEC §3): `.csv` with a header row (features and targets are column names);
`.npy` 2-D (a 1-D array is one feature column) with targets from a second .npy
(`targets_path`); `.npz` with features and targets as array names (default "x").
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from runner.errors import DataError, UserError
from runner.io import digests
from runner.io.readers import CsvReader, array_blocks, open_array, read_array

FORMATS = (".csv", ".npy", ".npz")


@dataclass
class Dataset:
    """A data file in memory: X (n, d) C-contiguous in the requested dtype; Y (n, t) float
    targets in dtype, or labels (n,) str when read as class labels; the column names."""

    X: np.ndarray
    Y: np.ndarray | None
    labels: np.ndarray | None
    feature_names: list[str]
    target_names: list[str]


@dataclass
class Info:
    """What `inspect` finds without reading the rows (n_rows is None for a CSV)."""

    n_rows: int | None
    feature_names: list[str]
    n_features: int
    target_names: list[str]
    n_targets: int


def _names(value):
    """None, one name or a list of names -> list of names."""
    return [] if value is None else [value] if isinstance(value, str) else list(value)


class _Source:
    """Where the features and targets of a data file live (the cheap part: headers only)."""

    def __init__(self, path, features=None, targets=None, targets_path=None, exclude=()):
        self.path, self.ext = os.fspath(path), os.path.splitext(os.fspath(path))[1].lower()
        if self.ext not in FORMATS:
            raise DataError(self.path, f"unknown data format {self.ext or '(no extension)'!r}; "
                            f"valid: {', '.join(FORMATS)}")
        if targets_path is not None and self.ext != ".npy":
            raise DataError(self.path, "targets_path is only for .npy data; a .csv or .npz "
                            "names its targets with `targets`")
        self.targets_path = None if targets_path is None else os.fspath(targets_path)
        if self.ext == ".csv":
            self.csv = CsvReader(self.path)
            targets = _names(targets)
            self.t_cols = self.csv.index(targets)
            if features is None:
                skip = set(targets) | set(exclude)
                features = [n for n in self.csv.names if n not in skip]
            self.f_cols = self.csv.index(_names(features))
            both = set(self.f_cols) & set(self.t_cols)
            if both:
                raise DataError(self.path, f"column {self.csv.names[min(both)]!r} is both a "
                                "feature and a target")
            if not self.f_cols:
                raise DataError(self.path, "no feature columns (every column is a target)")
            self.feature_names = [self.csv.names[j] for j in self.f_cols]
            self.target_names = [self.csv.names[j] for j in self.t_cols]
            return
        if self.ext == ".npy":
            if features is not None or targets is not None:
                raise DataError(self.path, "a .npy has no column names: give `features`/"
                                "`targets` for .csv or .npz data; .npy targets come from "
                                "targets_path")
            self.f_key = self.t_key = None
        else:
            self.f_key, self.t_key = self._key(features, "x"), self._key(targets, None)
        self.header = self._header(self.path, self.f_key)
        self.theader = None
        if self.t_key is not None or self.targets_path is not None:
            tpath = self.targets_path or self.path
            self.theader = self._header(tpath, self.t_key)
            if self.theader.shape[0] != self.header.shape[0]:
                raise DataError(tpath, f"{self.theader.shape[0]} rows of targets for "
                                f"{self.header.shape[0]} rows of features in {self.path}")
        stem = self.f_key or "x"
        self.feature_names = [f"{stem}{j}" for j in range(self.header.shape[1])]
        stem = self.t_key or "y"
        self.target_names = ([f"{stem}{j}" for j in range(self.theader.shape[1])]
                             if self.theader else [])

    def _key(self, value, default):
        names = _names(value)
        if len(names) > 1:
            raise DataError(self.path, f"a .npz takes one array name, got {names}")
        return names[0] if names else default

    @staticmethod
    def _header(path, key):
        with open_array(path, key) as (_, h):
            return h

    def info(self):
        n = None if self.ext == ".csv" else self.header.shape[0]
        return Info(n, self.feature_names, len(self.feature_names), self.target_names,
                    len(self.target_names))


def _numeric(h, what):
    if h.dtype.kind not in "biuf":
        raise h.error(f"{what} must be numbers (found dtype {h.dtype}); complex and text "
                      "values are not supported")


def _read_numeric(path, key, names, dtype, what):
    """The whole array `key` of `path` as (n, cols) C-contiguous dtype, finite-checked."""
    with open_array(path, key) as (f, h):
        _numeric(h, what)
        out = np.empty(h.shape, dtype)
        for start, V in array_blocks(f, h, names):
            out[start:start + len(V)] = V
    return out


def _read_labels(path, key):
    """Class labels (n,) str from an integer, integral-float or string array."""
    with open_array(path, key) as (f, h):
        if h.shape[1] != 1:
            raise h.error(f"labels must be one column, got {h.shape[1]}")
        a = read_array(f, h)[:, 0]
    if a.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(a) | (a != np.round(a)))
        if len(bad):
            raise h.error(f"labels must be integers or strings, found {a[bad[0]]}", bad[0] + 1)
        a = a.astype(np.int64)
    elif a.dtype.kind == "S":
        return np.char.decode(a, "utf-8")
    elif a.dtype.kind not in "biuU":
        raise h.error(f"labels must be integers or strings (found dtype {a.dtype})")
    return a.astype(np.int64).astype(str) if a.dtype.kind in "biu" else a.astype(str)


def load(path, *, features=None, targets=None, targets_path=None, dtype="float32",
         labels=False) -> Dataset:
    """Read a whole data file into memory (for fits). With labels=True the single target
    column is read as class labels (text), else targets must be numbers."""
    src, dtype = _Source(path, features, targets, targets_path), np.dtype(dtype)
    if labels and len(src.target_names) > 1:
        raise DataError(src.path, f"class labels must be one target column, got "
                        f"{len(src.target_names)}: {', '.join(src.target_names)}")
    X = Y = lab = None
    if src.ext == ".csv":
        d, numeric = len(src.f_cols), src.f_cols + ([] if labels else src.t_cols)
        label_col = src.t_cols[0] if labels and src.t_cols else None
        parts = list(src.csv.blocks(numeric, label_col, dtype))
        if not sum(len(V) for V, _ in parts):
            raise DataError(src.path, "no data rows (the file has only a header)")
        X = np.concatenate([V[:, :d] for V, _ in parts])
        if src.t_cols and not labels:
            Y = np.concatenate([V[:, d:] for V, _ in parts])
        if label_col is not None:
            lab = np.concatenate([t for _, t in parts])
    else:
        X = _read_numeric(src.path, src.f_key, src.feature_names, dtype, "features")
        tpath = src.targets_path or src.path
        if src.theader and labels:
            lab = _read_labels(tpath, src.t_key)
        elif src.theader:
            Y = _read_numeric(tpath, src.t_key, src.target_names, dtype, "targets")
    return Dataset(X, Y, lab, src.feature_names, src.target_names)


def inspect(path, *, features=None, targets=None, targets_path=None) -> Info:
    """Cheap look without reading the rows: column names and widths; n_rows from the
    .npy/.npz header, None for a CSV (only its header line is read)."""
    return _Source(path, features, targets, targets_path).info()


def stream(path, *, features=None, batch_size, dtype="float32", exclude=()) -> Iterator[np.ndarray]:
    """Yield feature chunks X (b, d) of dtype, batch_size rows each (the last one shorter), in
    file order, holding only a few MiB of the file at a time: a .npy or an array of a .npz is
    read block by block (a Fortran-order array is read whole), a CSV in blocks of lines.
    `exclude`: column names (the targets) left out of the default CSV feature set.

    Each chunk is a view of a reused buffer (the block read, or one holding the rows of
    a batch that spans blocks), soon overwritten: copy it to keep it.
    File-level errors are raised here; row-level errors (a bad value) when the row is reached.
    """
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    src, dtype = _Source(path, features, exclude=exclude), np.dtype(dtype)
    if src.ext == ".csv":
        blocks = (V for V, _ in src.csv.blocks(src.f_cols, None, dtype))
    else:
        _numeric(src.header, "features")
        blocks = _array_stream(src.path, src.f_key, src.feature_names, batch_size)
    return _rebatch(src.path, blocks, batch_size, len(src.feature_names), dtype)


def _array_stream(path, key, names, batch_size):
    with open_array(path, key) as (f, h):
        for _, V in array_blocks(f, h, names, multiple=batch_size):
            yield V


def _rebatch(path, blocks, batch_size, d, dtype):
    """Blocks of any length -> views of one (batch_size, d) buffer, filled in order (the
    buffer grows to batch_size only as rows arrive, so a huge batch_size costs nothing)."""
    buf, n, total = np.empty((0, d), dtype), 0, 0
    for V in blocks:
        i = 0
        if V.dtype == dtype and V.flags.c_contiguous:  # whole batches: views of the block
            while n == 0 and len(V) - i >= batch_size:
                yield V[i:i + batch_size]
                i, total = i + batch_size, total + batch_size
        while i < len(V):
            if n == len(buf):  # room for more rows, below batch_size: grow
                grown = np.empty((min(batch_size, max(2 * n, len(V) - i)), d), dtype)
                grown[:n] = buf[:n]
                buf = grown
            take = min(len(buf) - n, len(V) - i)
            buf[n:n + take] = V[i:i + take]
            n, i, total = n + take, i + take, total + take
            if n == batch_size:
                yield buf
                n = 0
    if n:
        yield buf[:n]
    if not total:
        raise DataError(path, "no data rows (the file has only a header)")


def encode_labels(labels, classes=None, dtype="float32", *, path="labels", first_row=1):
    """labels (n,) str -> (classes (K,) str, one-hot Y (n, K) of dtype). Classes are sorted
    numerically when every label is a number ("9" before "10"), else lexically. With
    `classes` given (from a trained run) a label outside them is a DataError naming `path`
    and the row (`first_row` is the row number of labels[0]: 2 for a CSV)."""
    labels = np.asarray(labels).astype(str)
    uniq, inverse = np.unique(labels, return_inverse=True)  # lexical order
    if classes is None:
        try:
            order = np.argsort([float(u) for u in uniq], kind="stable")
        except ValueError:
            order = np.arange(len(uniq))
        classes, rank = uniq[order], np.argsort(order)
        idx = rank[inverse]
    else:
        classes = np.asarray(classes).astype(str)
        where = {c: k for k, c in enumerate(classes.tolist())}
        missing = [u not in where for u in uniq.tolist()]
        if any(missing):
            i = int(np.flatnonzero(np.asarray(missing)[inverse])[0])
            raise DataError(path, f"label {str(labels[i])!r} is not one of the classes of the "
                            f"trained run ({', '.join(classes.tolist())})", first_row + i)
        idx = np.array([where[u] for u in uniq.tolist()], dtype=np.intp)[inverse]
    Y = np.zeros((len(labels), len(classes)), dtype)
    Y[np.arange(len(labels)), idx] = 1
    return classes, Y


class Scaler:
    """Feature scaling with statistics from the training rows (float64), applied in place:
    standard X = (X - mean) / std (population std, ddof=0), minmax X = (X - min) / (max -
    min), none: X unchanged. Columns of zero std or zero range are divided by 1."""

    KINDS = ("none", "standard", "minmax")
    KEYS = {"standard": ("scale.mean", "scale.std"), "minmax": ("scale.min", "scale.max")}

    def __init__(self, kind, a=None, b=None):
        if kind not in self.KINDS:
            raise ValueError(f"scale must be one of {self.KINDS}, got {kind!r}")
        self.kind, self.a, self.b = kind, a, b  # (mean, std) or (min, max), each (d,) float64
        if kind != "none":
            self.shift = np.asarray(a, np.float64)
            div = np.asarray(b, np.float64) - (self.shift if kind == "minmax" else 0)
            self.div = np.where(div == 0, 1.0, div)

    @classmethod
    def fit(cls, kind, X) -> "Scaler":
        """From the training rows X (n, d)."""
        if kind == "standard":
            return cls(kind, X.mean(0, dtype=np.float64), X.std(0, dtype=np.float64))
        if kind == "minmax":
            return cls(kind, X.min(0).astype(np.float64), X.max(0).astype(np.float64))
        return cls(kind)

    @classmethod
    def fit_stream(cls, kind, chunks) -> "Scaler":
        """From an iterator of chunks (b, d), for forward-only runs: Chan et al.'s pairwise
        update of count n, mean and M2 = sum((x - mean)**2), merged chunk by chunk."""
        if kind == "none":
            return cls(kind)
        n, a, b = 0, None, None
        for C in chunks:
            C = np.asarray(C, np.float64)
            m = len(C)
            if not m:
                continue
            if kind == "minmax":
                lo, hi = C.min(0), C.max(0)
                a, b = (lo, hi) if a is None else (np.minimum(a, lo), np.maximum(b, hi))
            else:
                mean = C.mean(0)
                m2 = ((C - mean) ** 2).sum(0)
                if a is None:
                    a, b = mean, m2
                else:
                    delta = mean - a
                    a = a + delta * (m / (n + m))
                    b = b + m2 + delta**2 * (n * m / (n + m))
            n += m
        if not n:
            raise ValueError("no rows to fit the scaler on")
        return cls(kind, a, np.sqrt(b / n) if kind == "standard" else b)

    def apply(self, X) -> None:
        """Scale X (n, d) in place; its dtype is kept (the arithmetic is float64)."""
        if self.kind != "none":
            np.subtract(X, self.shift, out=X, casting="same_kind")
            np.divide(X, self.div, out=X, casting="same_kind")

    def arrays(self) -> dict[str, np.ndarray]:
        """The statistics for weights.npz: scale.mean/scale.std or scale.min/scale.max."""
        if self.kind == "none":
            return {}
        ka, kb = self.KEYS[self.kind]
        return {ka: np.asarray(self.a, np.float64), kb: np.asarray(self.b, np.float64)}

    @classmethod
    def from_arrays(cls, arrays) -> "Scaler":
        """Inverse of arrays(): kind "none" when there are no scale.* keys."""
        keys = {k for k in arrays if k.startswith("scale.")}
        for kind, pair in cls.KEYS.items():
            if keys == set(pair):
                return cls(kind, np.asarray(arrays[pair[0]]), np.asarray(arrays[pair[1]]))
        if keys:
            raise UserError(f"weights hold scaling arrays {sorted(keys)}; expected "
                            "scale.mean and scale.std, or scale.min and scale.max")
        return cls("none")


def file_sha256(path) -> str:
    """Hex sha256 of a file; a missing file is a DataError."""
    try:
        return digests.file_sha256(path)
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
