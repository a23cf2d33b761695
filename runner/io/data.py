"""Data files in, arrays out: whole-file loads for fits, streaming for forward passes,
feature scaling and class-label encoding.

Formats (docs/data.md), one Source class each in runner/io/sources.py (FORMATS): `.csv` with a
header row (features and targets are column names); `.npy` 2-D (a 1-D array is one
feature column) with targets from a second .npy (`targets_path`); `.npz` with features and
targets as array names (default "x").
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from runner.errors import DataError, UserError
from runner.io import rows
from runner.io.sources import Info, Labels, NpySource, _ArraySource, open_source


@dataclass
class Dataset:
    """A data file in memory: X (n, d) C-contiguous in the requested dtype (or rows.Rows of
    a memory-mapped .npy); Y (n, t) float targets in dtype, or labels (n,) str (or Labels)
    when read as class labels; the column names."""

    X: np.ndarray
    Y: np.ndarray | None
    labels: np.ndarray | None
    feature_names: list[str]
    target_names: list[str]


def load(path, *, features=None, targets=None, targets_path=None, dtype="float32",
         labels=False, dialect=None, exclude=(), mapped=False, coded=False,
         order=None) -> Dataset:
    """Read a whole data file into memory (for fits). With labels=True the single target
    column is read as class labels (text), else targets must be numbers. `dialect`: the
    delimited-text settings {delimiter, header, na_values, decimal} (None: plain CSV).
    mapped=True (a .npy only): X is rows.Rows of a memory map of the file, checked but
    not read; the targets are read. coded=True: labels may come as Labels (each distinct
    value once), as a .npy of integers gives them. order (n,) (a .npy or .npz): X holds
    the file's rows in that order, each put in place as it is read."""
    src = open_source(path, features, targets, targets_path, exclude, dialect=dialect)
    dtype = np.dtype(dtype)
    if labels and len(src.target_names) > 1:
        raise DataError(src.path, f"class labels must be one target column, got "
                        f"{len(src.target_names)}: {', '.join(src.target_names)}")
    if mapped and not isinstance(src, NpySource):
        raise ValueError(f"only a .npy is memory-mapped, not {src.path}")
    if order is not None and not isinstance(src, _ArraySource):
        raise ValueError(f"only an array is read in another order, not {src.path}")
    X, Y, lab = (src.load(dtype, labels, mapped=True) if mapped else
                 src.load(dtype, labels, order=order) if order is not None else
                 src.load(dtype, labels))
    if isinstance(lab, Labels) and not coded:
        lab = lab.rows()
    return Dataset(X, Y, lab, src.feature_names, src.target_names)


MAP_SHARE = 4  # data.memory auto maps a .npy larger than 1/MAP_SHARE of the available memory


def large(path) -> bool:
    """Whether the file `path` takes more than 1/MAP_SHARE of the memory available now
    (False when that is unknown)."""
    available = available_memory()
    return available is not None and os.path.getsize(path) * MAP_SHARE > available


def available_memory() -> int | None:
    """Bytes of memory available to this process: MemAvailable of /proc/meminfo, or less
    when a cgroup (v2) limit leaves less; None off Linux."""
    try:
        with open("/proc/meminfo") as f:
            found = [int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")]
    except OSError:
        return None
    if not found:
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read())
        if limit != "max":
            return min(found[0], max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return found[0]


def feature_columns(features, names, exclude=()):
    """The feature column names: `features` (a name, a position, a list of them) or, when
    None, every name of `names` that is not in `exclude`."""
    if features is None:
        skip = {str(e) for e in exclude}
        return [n for n in names if n not in skip]
    return [str(f) for f in ([features] if isinstance(features, (str, int)) else features)]


def inspect(path, *, features=None, targets=None, targets_path=None, dialect=None) -> Info:
    """Cheap look without reading the rows: column names and widths; n_rows from the
    .npy/.npz header, None for a CSV (only its header line is read)."""
    return open_source(path, features, targets, targets_path, dialect=dialect).info()


def stream(path, *, features=None, batch_size, dtype="float32", exclude=(),
           dialect=None) -> Iterator[np.ndarray]:
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
    src = open_source(path, features, exclude=exclude, dialect=dialect)
    dtype = np.dtype(dtype)
    blocks = src.stream(dtype, batch_size)
    return _rebatch(src.path, blocks, batch_size, len(src.feature_names), dtype)


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
        """From the training rows X (n, d), an array or rows.Rows, read block by block
        (bit for bit numpy's X.mean(0, dtype=float64), X.std(...), X.min(0), X.max(0))."""
        if kind == "standard":
            mean = rows.mean(X)
            return cls(kind, mean, rows.std(X, mean))
        if kind == "minmax":
            return cls(kind, *rows.extrema(X))
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

