"""Low-level readers for the data files: CSV in blocks of lines, .npy / .npz in blocks of rows.

Both read a bounded amount at a time, so a file of any size passes through in constant
memory. Every problem becomes a `DataError` naming the file, the row and the column:
CSV rows are file lines (the header is row 1); array rows are counted from 1.
"""

import csv
import math
import os
import warnings
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from runner.errors import DataError, did_you_mean

BLOCK_BYTES = 1 << 23  # about 8 MiB of file read per block


@contextmanager
def open_file(path, mode="rb"):
    """Open `path`, turning a missing, unreadable or empty file into a DataError."""
    try:
        f = open(path, mode, **({} if "b" in mode else {"encoding": "utf-8-sig"}))
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except IsADirectoryError:
        raise DataError(path, "is a directory, not a data file") from None
    except OSError as e:
        raise DataError(path, f"cannot open: {e.strerror}") from None
    with f:
        if os.fstat(f.fileno()).st_size == 0:
            raise DataError(path, "empty file")
        try:
            yield f
        except UnicodeDecodeError as e:
            raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None



# ----------------------------------------------------------------------------- CSV


def header_hint(names) -> str:
    """"; the header line looks like data ..." when most column names read as numbers:
    a file without a header line, read as if it had one."""
    def number(text):
        try:
            float(text)
        except ValueError:
            return False
        return True

    if 2 * sum(map(number, names)) < len(names):
        return ""
    return ("; the header line looks like data (" + ", ".join(names[:4]) + (", ..." if
            len(names) > 4 else "") + "): for a file without a header line, set data.header: "
            "false and address columns by position (0 is the first)")


class CsvReader:
    """A CSV file with a header row of unique column names; values separated by commas,
    optionally quoted with '"'. Blank lines are skipped; a quoted field may not span lines."""

    def __init__(self, path):
        self.path = os.fspath(path)
        with open_file(self.path, "r") as f:
            line = f.readline()
        names = [n.strip() for n in next(csv.reader([line]), [])]
        if not any(names):
            raise DataError(self.path, "the first line must be a header of column names", 1)
        for j, name in enumerate(names):
            if not name:
                raise DataError(self.path, f"column {j + 1} of the header has no name", 1)
            if names.index(name) != j:
                raise DataError(self.path, f"duplicate column name {name!r} "
                                f"(columns {names.index(name) + 1} and {j + 1})", 1)
        self.names = names

    def index(self, names):
        """Column positions of `names`; unknown names are errors with a did-you-mean."""
        out = []
        for name in names:
            if name not in self.names:
                raise DataError(self.path, f"no column {name!r}{did_you_mean(name, self.names)} "
                                f"(columns: {', '.join(self.names)}){header_hint(self.names)}", 1,
                                column=name)
            if self.names.index(name) in out:
                raise DataError(self.path, f"column {name!r} is listed twice")
            out.append(self.names.index(name))
        return out

    def blocks(self, cols, label_col=None, dtype="float32"):
        """Yield (V (m, len(cols)) of dtype, labels (m,) str or None) per block of lines,
        in file order; V holds the columns `cols`, labels the text of `label_col`."""
        dtype = np.dtype(dtype)
        with open_file(self.path, "r") as f:
            f.readline()
            first = 2
            while lines := f.readlines(BLOCK_BYTES):
                yield self._parse(lines, first, cols, label_col, dtype)
                first += len(lines)

    def _parse(self, lines, first, cols, label_col, dtype):
        """Fast path: numpy's C parser. On any doubt, re-read the block with the csv module,
        which finds the exact line and column of a problem or parses what numpy could not."""
        n = len(self.names)
        every = cols == list(range(n))  # numpy itself then checks that rows are not ragged
        opts = dict(delimiter=",", quotechar='"', comments=None)
        try:
            if not every and any(line.count(",") != n - 1 for line in lines):
                raise ValueError("ragged, quoted or blank lines")
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # "input contained no data" is a slow-path case
                V = np.loadtxt(lines, dtype=dtype, usecols=None if every else cols, ndmin=2, **opts)
                labels = None
                if label_col is not None:
                    labels = np.char.strip(np.loadtxt(lines, dtype=str, usecols=[label_col],
                                                      ndmin=1, **opts))
            if len(V) != len(lines) or not np.isfinite(V).all():
                raise ValueError("blank lines or non-finite values")
            return V, labels
        except (ValueError, UserWarning):
            return self._parse_slowly(lines, first, cols, label_col, dtype)

    def _parse_slowly(self, lines, first, cols, label_col, dtype):
        n, rows, texts, where = len(self.names), [], [], []
        reader = csv.reader(lines)
        for fields in reader:
            row = first + reader.line_num - 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # a blank line
            if len(fields) != n:
                raise DataError(self.path, f"expected {n} columns, found {len(fields)}", row)
            values = []
            for j in cols:
                text, name = fields[j].strip(), self.names[j]
                if not text:
                    raise DataError(self.path, f"empty value in column {name}", row)
                try:
                    values.append(float(text))
                except ValueError:
                    raise DataError(self.path, f"non-numeric value {text!r} in column {name}",
                                    row) from None
                if not math.isfinite(values[-1]):
                    raise DataError(self.path, f"non-finite value {text!r} in column {name}", row)
            rows.append(values)
            where.append((row, fields))
            if label_col is not None:
                texts.append(fields[label_col].strip())
        with np.errstate(over="ignore"):
            V = np.array(rows, dtype=dtype).reshape(len(rows), len(cols))
        bad = np.argwhere(~np.isfinite(V))
        if len(bad):
            (row, fields), j = where[bad[0][0]], cols[bad[0][1]]
            raise DataError(self.path, f"value {fields[j].strip()!r} in column {self.names[j]} "
                            f"is out of range for {dtype}", row)
        return V, (np.array(texts, dtype=str) if label_col is not None else None)


# ----------------------------------------------------------------------------- npy / npz


@dataclass
class ArrayHeader:
    """What a .npy header says: shape (rows, cols) (a 1-D array is one column), dtype, order."""

    path: str
    key: str | None  # the array's name inside a .npz, None for a .npy
    shape: tuple
    dtype: np.dtype
    fortran: bool
    ndim: int

    def error(self, message, row=None):
        """A DataError naming the file, the array of a .npz and the row (from 1)."""
        where = [f"array {self.key!r}"] if self.key else []
        where += [f"row {row}"] if row is not None else []
        return DataError(self.path, ": ".join(where + [message]))


@contextmanager
def open_array(path, key=None):
    """Open a .npy (key None) or the array `key` of a .npz; yield (f, ArrayHeader) with f at
    the first data byte. Object (pickled) arrays are refused; nothing is unpickled."""
    path = os.fspath(path)
    if key is None:
        with open_file(path) as f:
            size = os.fstat(f.fileno()).st_size
            yield f, _read_header(f, path, None, size)
        return
    with open_file(path) as raw:
        try:
            z = zipfile.ZipFile(raw)
        except zipfile.BadZipFile:
            raise DataError(path, "not a valid .npz file (not a zip archive)") from None
        with z:
            keys = [m[:-4] for m in z.namelist() if m.endswith(".npy")]
            if key not in keys:
                raise DataError(path, f"no array {key!r}{did_you_mean(key, keys)} "
                                f"(arrays: {', '.join(keys) or 'none'})")
            with z.open(key + ".npy") as f:
                yield f, _read_header(f, path, key, z.getinfo(key + ".npy").file_size)


def _read_header(f, path, key, size):
    what = f"array {key!r} of the .npz" if key else "file"
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        reader = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}[version]
        shape, fortran, dtype = reader(f)
    except (ValueError, EOFError, SyntaxError) as e:
        raise DataError(path, f"{what} is not a valid .npy array ({e})") from None
    h = ArrayHeader(path, key, tuple(shape), dtype, fortran, len(shape))
    if dtype.hasobject:
        raise h.error("holds Python objects; pickled/object arrays are refused "
                      "(allow_pickle=False)")
    if dtype.names is not None or dtype.subdtype is not None:
        raise h.error(f"structured arrays are not supported (dtype {dtype})")
    if h.ndim not in (1, 2):
        raise h.error(f"expected a 1-D or 2-D array (rows, columns), got a {h.ndim}-D array "
                      f"of shape {h.shape}")
    h.shape = (shape[0], shape[1] if h.ndim == 2 else 1)
    if h.shape[0] == 0:
        raise h.error("no data rows (the array has 0 rows)")
    if h.shape[1] == 0:
        raise h.error("the array has 0 columns")
    need, have = h.shape[0] * h.shape[1] * dtype.itemsize, size - f.tell()
    if have < need:
        raise h.error(f"truncated: shape {shape} of {dtype} needs {need} bytes, found {have}")
    return h


def _fill(f, a, h):
    """Read exactly a.nbytes bytes from f into the C-contiguous array a."""
    view, got = memoryview(a).cast("B"), 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise h.error("truncated: the file ends before the data does")
        got += n


def array_blocks(f, h, names=None, check_finite=True, multiple=1):
    """Yield (start, V (m, cols)) in the file's own dtype, block after block of rows (a
    multiple of `multiple` rows, but for the last). When check_finite, NaN or infinite
    values are errors naming the row and the column."""
    n, d = h.shape
    step = max(1, BLOCK_BYTES // (d * h.dtype.itemsize))
    step = step // multiple * multiple or step  # whole multiples when one fits in a block
    if h.fortran:  # columns are contiguous in the file: read the array whole
        whole = np.empty(n * d, h.dtype)
        _fill(f, whole, h)
        whole = whole.reshape((n, d), order="F")
    else:
        buf = np.empty((min(step, n), d), h.dtype)
    for start in range(0, n, step):
        if h.fortran:
            V = whole[start:start + step]
        else:
            V = buf[:min(step, n - start)]
            _fill(f, V, h)
        # a finite sum means finite values; only a NaN, an inf or an overflow of the sum
        # (then checked value by value) makes it non-finite
        if (check_finite and V.dtype.kind in "fc" and not np.isfinite(np.add.reduce(V, axis=None))
                and not np.isfinite(V).all()):
            i, j = np.argwhere(~np.isfinite(V))[0]
            name = names[j] if names else f"{j + 1}"
            raise h.error(f"non-finite value {V[i, j]} in column {name}", start + i + 1)
        yield start, V


def read_array(f, h):
    """The whole array (rows, cols), in its own dtype (no finite check: labels use this)."""
    a = np.empty(h.shape[0] * h.shape[1], h.dtype)
    _fill(f, a, h)
    return a.reshape(h.shape, order="F" if h.fortran else "C")
