"""One class per data format, registered in FORMATS by file extension (docs/data.md).

A source is made from the file's header alone (the cheap part): it resolves which
columns or arrays are the features and which the targets, and knows the names. It then
reads the rows two ways: `load` the whole file (for fits) and `stream` the features
block by block (for forward passes). runner/io/data.py is the public face.

A new format is a Source subclass and an entry in FORMATS; the row-level parsing lives
in runner/io/readers.py.
"""

import os
from dataclasses import dataclass

import numpy as np

from runner.errors import DataError, did_you_mean
from runner.io import table
from runner.io.readers import CsvReader, array_blocks, header_hint, open_array, read_array
from runner.io.rows import Rows


@dataclass
class Info:
    """What `inspect` finds without reading the rows (n_rows is None for a CSV)."""

    n_rows: int | None
    feature_names: list[str]
    n_features: int
    target_names: list[str]
    n_targets: int


@dataclass
class Labels:
    """Class labels of n rows, each distinct value kept once: values (K,) str, distinct;
    codes (n,) intp, row i holding values[codes[i]]. (An (n,) str array of integer labels
    takes some 84 bytes a row, more than a row of 20 float32 features.)"""

    values: np.ndarray
    codes: np.ndarray

    @classmethod
    def of(cls, labels) -> "Labels":
        """From labels (n,) str (or Labels, returned as they are)."""
        if isinstance(labels, Labels):
            return labels
        values, codes = np.unique(labels, return_inverse=True)
        return cls(values, codes)

    def rows(self) -> np.ndarray:
        """The labels (n,) str, one per row."""
        return self.values[self.codes]


def _names(value):
    """None, one name or a list of names -> list of names; a position (an int, for a file
    without a header) is named by its digits."""
    if value is None:
        return []
    values = [value] if isinstance(value, (str, int)) else list(value)
    return [str(v) for v in values]


def _no_targets_path(path, targets_path):
    if targets_path is not None:
        raise DataError(path, "targets_path is only for .npy data; a .csv or .npz "
                        "names its targets with `targets`")


class Source:
    """Where the features and targets of a data file live. A format's __init__(path,
    features, targets, targets_path, exclude) reads only the header, raises DataError for
    what the file or the names get wrong, and sets path, feature_names, target_names (and
    n_rows, when the header tells). `exclude`: names left out of a default feature set.

        load(dtype, labels) -> X (n, d) C-contiguous of dtype; Y (n, t) of dtype, or None
            when there are no targets or labels=True; labels (n,) str or Labels (the single
            target column as text) when labels=True, else None. A .npy's load(dtype, labels,
            mapped=True) gives X as rows.Rows of a memory map of the file instead, and an
            array's load(dtype, labels, order=rows) its rows in that order.
        stream(dtype, batch_size) -> iterator of feature blocks X (m, d) in file order, of
            any m and of dtype or another numeric dtype (data.stream cuts them into batches
            of batch_size and casts). File-level checks happen in the call, row-level
            errors when the row is reached.
    """

    n_rows = None

    def info(self) -> Info:
        return Info(self.n_rows, self.feature_names, len(self.feature_names), self.target_names,
                    len(self.target_names))


class CsvSource(Source):
    """A .csv with a header row: features and targets are column names (all the columns
    that are not targets or excluded, by default)."""

    def __init__(self, path, features=None, targets=None, targets_path=None, exclude=()):
        _no_targets_path(path, targets_path)
        self.path, self.csv = path, CsvReader(path)
        targets = _names(targets)
        self.t_cols = self.csv.index(targets)
        if features is None:
            skip = set(targets) | set(exclude)
            features = [n for n in self.csv.names if n not in skip]
        self.f_cols = self.csv.index(_names(features))
        both = set(self.f_cols) & set(self.t_cols)
        if both:
            raise DataError(path, f"column {self.csv.names[min(both)]!r} is both a "
                            "feature and a target")
        if not self.f_cols:
            raise DataError(path, "no feature columns (every column is a target)")
        self.feature_names = [self.csv.names[j] for j in self.f_cols]
        self.target_names = [self.csv.names[j] for j in self.t_cols]

    def load(self, dtype, labels):
        d, numeric = len(self.f_cols), self.f_cols + ([] if labels else self.t_cols)
        label_col = self.t_cols[0] if labels and self.t_cols else None
        parts = list(self.csv.blocks(numeric, label_col, dtype))  # [(V (m, n_numeric), labels (m,))]
        if not sum(len(V) for V, _ in parts):
            raise DataError(self.path, "no data rows (the file has only a header)")
        X = np.concatenate([V[:, :d] for V, _ in parts])  # (n, d)
        Y = np.concatenate([V[:, d:] for V, _ in parts]) if self.t_cols and not labels else None
        lab = np.concatenate([t for _, t in parts]) if label_col is not None else None
        return X, Y, lab

    def stream(self, dtype, batch_size):
        return (V for V, _ in self.csv.blocks(self.f_cols, None, dtype))


class _ArraySource(Source):
    """Features from the array `f_key` of `path`, targets (if any) from the array `t_key` of
    `targets_path` or `path` (key None: a .npy). Names are the key (or x, y) and the column."""

    def __init__(self, path, f_key, t_key, targets_path):
        self.path, self.f_key, self.t_key = path, f_key, t_key
        self.tpath = (None if targets_path is None else os.fspath(targets_path)) or path
        self.header = _header(path, f_key)
        self.theader = None
        if t_key is not None or targets_path is not None:
            self.theader = _header(self.tpath, t_key)
            if self.theader.shape[0] != self.header.shape[0]:
                raise DataError(self.tpath, f"{self.theader.shape[0]} rows of targets for "
                                f"{self.header.shape[0]} rows of features in {path}")
        self.n_rows = self.header.shape[0]
        stem = f_key or "x"
        self.feature_names = [f"{stem}{j}" for j in range(self.header.shape[1])]
        stem = t_key or "y"
        self.target_names = ([f"{stem}{j}" for j in range(self.theader.shape[1])]
                             if self.theader is not None else [])

    def load(self, dtype, labels, mapped=False, order=None):
        if mapped:  # a .npy: rows read as the fit asks for them
            X = _map_numeric(self.path, self.feature_names, dtype, "features")
        else:
            X = _read_numeric(self.path, self.f_key, self.feature_names, dtype, "features",
                              order)
        Y = lab = None
        if self.theader is not None and labels:
            lab = _read_labels(self.tpath, self.t_key)
        elif self.theader is not None:
            Y = _read_numeric(self.tpath, self.t_key, self.target_names, dtype, "targets")
        return X, Y, lab

    def stream(self, dtype, batch_size):
        _numeric(self.header, "features")
        return _array_blocks(self.path, self.f_key, self.feature_names, batch_size)


class NpySource(_ArraySource):
    """A 2-D .npy of features (a 1-D array is one feature column); targets, if any, from a
    second .npy (`targets_path`)."""

    def __init__(self, path, features=None, targets=None, targets_path=None, exclude=()):
        if features is not None or targets is not None:
            raise DataError(path, "a .npy has no column names: give `features`/"
                            "`targets` for .csv or .npz data; .npy targets come from "
                            "targets_path")
        super().__init__(path, None, None, targets_path)


class NpzSource(_ArraySource):
    """A .npz: features and targets are the names of one array each (features "x" by default)."""

    def __init__(self, path, features=None, targets=None, targets_path=None, exclude=()):
        _no_targets_path(path, targets_path)
        super().__init__(path, self._key(path, features, "x"), self._key(path, targets, None), None)

    @staticmethod
    def _key(path, value, default):
        names = _names(value)
        if len(names) > 1:
            raise DataError(path, f"a .npz takes one array name, got {names}")
        return names[0] if names else default


class TableSource(Source):
    """A table read by runner/io/table.py: a .tsv or .txt, a .csv in another dialect
    (delimiter, no header line, decimal comma), or a .parquet (runner/io/parquet.py).
    Numeric columns; without a header, columns are named by position ("0", "1", ...)."""

    def __init__(self, path, features=None, targets=None, targets_path=None, exclude=(),
                 dialect=None):
        _no_targets_path(path, targets_path)
        self.path, self.dialect = path, {**table.PLAIN, **(dialect or {})}
        names, self.dialect["delimiter"] = table.read_header(
            path, delimiter=self.dialect["delimiter"], header=self.dialect["header"],
            decimal=self.dialect["decimal"])
        targets = _names(targets)
        if features is None:
            skip = set(targets) | set(_names(exclude))
            features = [n for n in names if n not in skip]
        self.feature_names, self.target_names = _names(features), targets
        for name in self.feature_names + targets:
            if name not in names:
                hint = header_hint(names) if self.dialect["header"] else ""
                raise DataError(path, f"no column {name!r}{did_you_mean(name, names)} "
                                f"(columns: {', '.join(names)}){hint}", column=name)
        both = set(self.feature_names) & set(targets)
        if both:
            raise DataError(path, f"column {min(both)!r} is both a feature and a target")
        if not self.feature_names:
            raise DataError(path, "no feature columns (every column is a target)")

    def _numbers(self, t, names, dtype):
        table.refuse_missing(t, names, "declare the column under data.features with type "
                             "numeric and a missing: rule (mean, median, constant, drop_row)")
        return np.ascontiguousarray(table.numbers(t, names), dtype)

    def load(self, dtype, labels):
        t = table.read_table(self.path, self.feature_names + self.target_names, **self.dialect)
        X = self._numbers(t, self.feature_names, dtype)
        Y = lab = None
        if labels and self.target_names:
            table.refuse_missing(t, self.target_names, "every row needs its target")
            lab = t.values[self.target_names[0]]
        elif self.target_names:
            Y = self._numbers(t, self.target_names, dtype)
        return X, Y, lab

    def stream(self, dtype, batch_size):
        for t in table.iter_table(self.path, self.feature_names, **self.dialect):
            yield self._numbers(t, self.feature_names, dtype)


FORMATS = {".csv": CsvSource, ".npy": NpySource, ".npz": NpzSource, ".tsv": TableSource,
           ".txt": TableSource, ".parquet": TableSource}


def open_source(path, features=None, targets=None, targets_path=None, exclude=(),
                dialect=None) -> Source:
    """The Source of `path`, its class chosen by the extension (FORMATS); a .csv whose
    `dialect` (delimiter, header, na_values, decimal) is not plain goes to TableSource."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise DataError(path, f"unknown data format {ext or '(no extension)'!r}; "
                        f"valid: {', '.join(FORMATS)}")
    if FORMATS[ext] is TableSource or (ext == ".csv" and table.needed(path, dialect)):
        return TableSource(path, features, targets, targets_path, exclude, dialect)
    return FORMATS[ext](path, features, targets, targets_path, exclude)


# ----------------------------------------------------------------------------- array helpers


def _header(path, key):
    with open_array(path, key) as (_, h):
        return h


def _numeric(h, what):
    if h.dtype.kind not in "biuf":
        raise h.error(f"{what} must be numbers (found dtype {h.dtype}); complex and text "
                      "values are not supported")


def _read_numeric(path, key, names, dtype, what, order=None):
    """The whole array `key` of `path` as (n, cols) C-contiguous dtype, finite-checked;
    order (n,): the file's rows in the order to hold them (each put in place as its block
    is read), None: file order."""
    with open_array(path, key) as (f, h):
        _numeric(h, what)
        out = np.empty(h.shape, dtype)
        at = None
        if order is not None:
            at = np.empty(len(order), np.intp)
            at[order] = np.arange(len(order))  # the place of each file row
        for start, V in array_blocks(f, h, names):
            if at is None:
                out[start:start + len(V)] = V
            else:
                out[at[start:start + len(V)]] = V
    return out


def _map_numeric(path, names, dtype, what):
    """rows.Rows (n, cols) of dtype over a read-only memory map of the .npy `path`, once a
    pass over the file (block by block, as _read_numeric) found its values finite."""
    with open_array(path, None) as (f, h):
        _numeric(h, what)
        for _ in array_blocks(f, h, names):
            pass
    A = np.load(path, mmap_mode="r", allow_pickle=False)
    return Rows(A.reshape(h.shape, order="F" if h.fortran else "C"), None, dtype)


def _read_labels(path, key):
    """Class labels from an integer or integral-float array (Labels: the integers written
    as int64 would be, str of dtype <U21), or (n,) str from a string array."""
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
    if a.dtype.kind == "U":
        return a.astype(str)
    values, codes = np.unique(a.astype(np.int64), return_inverse=True)
    return Labels(values.astype(str), codes)


def _array_blocks(path, key, names, batch_size):
    """Blocks of whole batches of the array, in its own dtype (data.stream casts)."""
    with open_array(path, key) as (f, h):
        for _, V in array_blocks(f, h, names, multiple=batch_size):
            yield V
