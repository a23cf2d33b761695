"""Delimited text tables as raw columns: the text of each cell and whether it is missing.

A file is read in blocks of whole lines (about 8 MiB each), so `iter_table` passes a
file of any size through in constant memory and `read_table` is the same blocks joined.
Rows are file lines, counted from 1 (the header is row 1); blank lines are skipped;
cells are stripped of surrounding whitespace. The delimiter is found in the header line
(the most frequent of `,` `;` tab `|`; `,` is not a candidate under decimal ","). Without
a header, columns are named by position: "0", "1", ... A block without a quote char is
split by numpy in bulk; one with '"' goes through the csv module (a quoted field may
hold the delimiter, but not span lines). `numbers` turns columns into float64 and
reports every bad cell at once.
"""

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from runner.errors import DataError, did_you_mean
from runner.io.readers import header_hint, open_file

DEFAULT_NA = ("", "NA", "N/A", "NaN", "null")
DELIMITERS = (",", ";", "\t", "|")
BLOCK_CHARS = 1 << 23  # characters of file per block
SHOWN = 5  # bad cells quoted in a message
POW10 = 10.0 ** np.arange(23)  # exact in float64
SPACES = (9, 11, 12, 13, 32)  # ASCII whitespace code points, besides the newline
PLAIN = {"delimiter": None, "header": True, "na_values": DEFAULT_NA, "decimal": "."}  # options


@dataclass
class Table:
    """Raw columns of a delimited file: values[name] (n,) str and missing[name] (n,) bool
    for each requested column; rows (n,) int64 the file line of each row; names: every
    column of the file, in file order."""

    path: str
    names: list[str]
    values: dict[str, np.ndarray]
    missing: dict[str, np.ndarray]
    rows: np.ndarray
    decimal: str = "."

    def __len__(self):
        return len(self.rows)

    def take(self, keep) -> "Table":
        """The rows selected by `keep` (a boolean mask or indices)."""
        return Table(self.path, self.names, {k: v[keep] for k, v in self.values.items()},
                     {k: m[keep] for k, m in self.missing.items()}, self.rows[keep], self.decimal)


def from_columns(path, columns, first_row=1, na_values=()) -> Table:
    """A Table of in-memory columns {name: (n,) values} (as text) read from `path`,
    rows numbered from first_row; a cell is missing when its text is one of na_values."""
    values = {k: np.ascontiguousarray(np.asarray(v).astype(str)) for k, v in columns.items()}
    n = len(next(iter(values.values()), ()))
    return Table(str(path), list(values), values,
                 {k: _missing(v, list(na_values)) for k, v in values.items()},
                 first_row + np.arange(n, dtype=np.int64))


def cell_error(path, problem, cells, count=None, advice="") -> DataError:
    """One DataError for many bad cells: `cells` [(row, column, value)] in file order,
    `count` of them in all. The message gives the problem, the count and the first
    SHOWN cells: "not a number in 7 cells (first 5): row 3 column 'x': 'abc'; ..."."""
    count = len(cells) if count is None else count
    shown = "; ".join(f"row {r} column {c!r}: {v!r}" for r, c, v in cells[:SHOWN])
    first = f" (first {SHOWN})" if count > SHOWN else ""
    noun = "cell" if count == 1 else "cells"
    advice = f"; {advice}" if advice else ""
    return DataError(path, f"{problem} in {count} {noun}{first}: {shown}{advice}", cells[0][0])


def refuse_missing(table, names, advice="") -> None:
    """A DataError over the missing cells of columns `names`, if there are any: their
    count and the first few (row, column, value), then `advice`."""
    count = sum(int(table.missing[n].sum()) for n in names)
    if count:
        cells = sorted((int(table.rows[i]), n, str(table.values[n][i]))
                       for n in names for i in np.flatnonzero(table.missing[n])[:SHOWN])
        raise cell_error(table.path, "missing value", cells, count, advice)


def needed(path, dialect=None) -> bool:
    """Whether a .csv needs this reader rather than the plain comma reader: an option of
    `dialect` away from PLAIN (a delimiter other than ","), or a header line whose
    delimiter is not ","."""
    d = {**PLAIN, **(dialect or {})}
    if (d["header"] is not True or d["decimal"] != "." or tuple(d["na_values"]) != DEFAULT_NA
            or d["delimiter"] not in (None, ",")):
        return True
    if d["delimiter"] is not None:
        return False
    try:
        return read_header(path)[1] != ","
    except DataError:  # a missing or unreadable file: the plain reader says what is wrong
        return False


def _fields(line, delimiter):
    if '"' in line:
        return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])
    return line.split(delimiter)


def _detect(line, decimal):
    candidates = [d for d in DELIMITERS if not (d == "," and decimal == ",")]
    counts = [line.count(d) for d in candidates]
    return candidates[counts.index(max(counts))] if max(counts) else candidates[0]


def _start(f, path, delimiter, header, decimal):
    """Read the header (or peek at the first data line): (names, delimiter, first data
    line number, text of already-read data lines)."""
    line, number = f.readline(), 1
    while not header and line and not line.strip():
        line, number = f.readline(), number + 1
    line = line.rstrip("\n")
    if not line.strip():
        raise DataError(path, "the first line must be a header of column names" if header
                        else "no data rows (the file is blank)", number)
    delimiter = delimiter or _detect(line, decimal)
    fields = [x.strip() for x in _fields(line, delimiter)]
    if not header:
        return [str(j) for j in range(len(fields))], delimiter, number, line + "\n"
    for j, name in enumerate(fields):
        if not name:
            raise DataError(path, f"column {j + 1} of the header has no name", 1)
        if fields.index(name) != j:
            raise DataError(path, f"duplicate column name {name!r} "
                            f"(columns {fields.index(name) + 1} and {j + 1})", 1)
    return fields, delimiter, 2, ""


def read_header(path, *, delimiter=None, header=True, decimal=".") -> tuple[list[str], str]:
    """(column names, delimiter) from the first line, reading nothing else."""
    if _is_parquet(path):
        from runner.io import parquet

        return parquet.read_header(path)
    with open_file(os.fspath(path), "r") as f:
        names, delimiter, _, _ = _start(f, os.fspath(path), delimiter, header, decimal)
    return names, delimiter


def _chunks(f, text, size):
    """Blocks of whole lines, each ending in a newline."""
    while part := f.read(size):
        text += part
        cut = text.rfind("\n") + 1
        if cut:
            yield text[:cut]
            text = text[cut:]
    if text:
        yield text if text.endswith("\n") else text + "\n"


def iter_table(path, columns=None, *, delimiter=None, header=True, na_values=DEFAULT_NA,
               decimal=".", block_chars=BLOCK_CHARS) -> Iterator[Table]:
    """Yield the rows of a delimited file as Tables of consecutive rows (one per block of
    about `block_chars` characters), holding the columns `columns` (names; positions
    "0", "1", ... or ints without a header), all by default. A cell is missing when its
    stripped text is one of `na_values`."""
    path = os.fspath(path)
    if _is_parquet(path):  # the same Tables, one per row group
        from runner.io import parquet

        for names, values, missing, rows in parquet.iter_columns(path, columns, na_values):
            yield Table(path, names, values, missing, rows)
        return
    na_values = list(na_values)
    with open_file(path, "r") as f:
        names, delimiter, first, text = _start(f, path, delimiter, header, decimal)
        wanted = _index(path, names, columns, header)
        total = 0
        for block in _chunks(f, text, block_chars):
            cells, rows = (_split_quoted if '"' in block else _split)(
                block, first, path, len(names), delimiter, wanted)
            first += block.count("\n")
            if not len(rows):
                continue
            values = {names[j]: v for j, v in zip(wanted, cells)}
            missing = {name: _missing(v, na_values) for name, v in values.items()}
            total += len(rows)
            yield Table(path, names, values, missing, rows, decimal)
    if not total:
        raise DataError(path, "no data rows" + (" (the file has only a header)" if header else ""))


def _missing(values, na_values):
    """(n,) bool: the cells of values (n,) str equal to one of na_values, compared only
    where the first character could start one."""
    w = values.dtype.itemsize // 4
    heads = [ord(na[0]) if na else 0 for na in na_values]
    maybe = np.flatnonzero(np.isin(values.view(np.uint32)[::w], heads))  # first characters
    out = np.zeros(len(values), bool)
    out[maybe] = np.isin(values[maybe], na_values)
    return out


def _is_parquet(path):
    return os.fspath(path).lower().endswith(".parquet")


def read_table(path, columns=None, **options) -> Table:
    """The whole file as one Table; the options are those of `iter_table`."""
    parts = list(iter_table(path, columns, **options))
    if len(parts) == 1:
        return parts[0]
    t = parts[0]
    return Table(t.path, t.names, {k: np.concatenate([p.values[k] for p in parts]) for k in t.values},
                 {k: np.concatenate([p.missing[k] for p in parts]) for k in t.missing},
                 np.concatenate([p.rows for p in parts]), t.decimal)


def _index(path, names, columns, header):
    if columns is None:
        return list(range(len(names)))
    out = []
    for name in map(str, columns):
        if name not in names:
            listing = ", ".join(names) if header else f"positions 0 to {len(names) - 1}"
            hint = header_hint(names) if header else ""
            raise DataError(path, f"no column {name!r}{did_you_mean(name, names)} "
                            f"(columns: {listing}){hint}", 1 if header else None, column=name)
        if names.index(name) in out:
            raise DataError(path, f"column {name!r} is listed twice")
        out.append(names.index(name))
    return out


def _ragged(path, bad, n):
    """bad: [(row, fields found)] of the lines with a wrong number of fields."""
    more = f" ({len(bad)} rows have the wrong number of columns)" if len(bad) > 1 else ""
    return DataError(path, f"expected {n} columns, found {bad[0][1]}{more}", bad[0][0])


def _split(text, first, path, n, delimiter, wanted):
    """Fast path over a block without quotes: the positions of delimiters and newlines
    (in bytes when the text is ASCII, else in UTF-32 code points), then one gather per
    column. Returns ([cells (m,) str per wanted column], rows (m,) int64)."""
    ascii = text.isascii()
    raw = np.frombuffer(text.encode("ascii"), np.uint8) if ascii else _code_points(text)
    newline = raw == 10
    seps = np.flatnonzero(newline | (raw == ord(delimiter)))  # cell ends, in order
    is_end = newline[seps]
    ends = np.flatnonzero(is_end)  # index in seps of each line's newline
    count = np.diff(ends, prepend=-1) - 1  # delimiters per line
    line_start = np.concatenate([[0], seps[ends[:-1]] + 1])
    keep = np.ones(len(ends), bool)
    odd = np.flatnonzero((count != n - 1) | (seps[ends] == line_start))
    if len(odd):
        bad = []
        for i in odd.tolist():
            if text[line_start[i]:seps[ends[i]]].strip():
                bad.append((first + i, count[i] + 1))
            keep[i] = False
        if bad:
            raise _ragged(path, bad, n)
        seps = seps[keep[np.cumsum(is_end) - is_end]]  # drop the blank lines' newlines
    E = np.ascontiguousarray(seps.reshape(-1, n).T)  # (n, m) end of each cell, per column
    S = {j: E[j - 1] + 1 if j else line_start[keep] for j in wanted}  # start of each cell
    L = {j: E[j] - S[j] for j in wanted}  # lengths
    w = {j: max(int(L[j].max(initial=0)), 1) for j in wanted}
    long = {j for j in wanted if w[j] > 64 and w[j] > 4 * L[j].mean()}  # slice, not pad all
    cells = []
    for j in wanted:
        if j in long:
            out = np.array([text[a:b] for a, b in zip(S[j].tolist(), E[j].tolist())], str)
        else:
            out = _gather(raw, S[j], L[j], w[j])
        edges = np.concatenate([raw[S[j]], raw[np.maximum(E[j] - 1, 0)]])
        if np.isin(edges, SPACES).any() or (edges > 127).any():  # some cell may need a strip
            out = np.ascontiguousarray(np.strings.strip(out))
        cells.append(out)
    return cells, first + np.flatnonzero(keep)


def _code_points(text):
    return np.frombuffer(text.encode("utf-32-le"), "<u4")


def _gather(raw, s, L, w):
    """Cells of the text raw (ASCII bytes or code points): starts s (m,) and lengths L
    (m,) -> (m,) str of width w. Each cell is copied as the w characters from its start
    (an overlapping view of raw, one string per position), then zeroed past its length."""
    kind, size = ("S", 1) if raw.itemsize == 1 else ("<U", 4)
    n = len(raw) - w + 1
    every = np.ndarray((n,), f"{kind}{w}", raw, 0, (size,))  # every[i] = raw[i:i + w]
    G = every[np.minimum(s, n - 1)].view(raw.dtype).reshape(len(s), w)  # (m, w) characters
    for i in np.flatnonzero(s >= n).tolist():  # the last cells, too close to the end
        G[i] = 0
        G[i, :L[i]] = raw[s[i]:s[i] + L[i]]
    G *= np.arange(w) < L[:, None]
    return (G if size == 4 else G.astype(np.uint32)).view(f"<U{w}").reshape(len(s))


def _split_quoted(text, first, path, n, delimiter, wanted):
    """Slow path over a block with quotes: the csv module, row by row."""
    reader = csv.reader(text.split("\n")[:-1], delimiter=delimiter, skipinitialspace=True,
                        strict=True)
    kept, rows, bad, line = [], [], [], 0
    try:
        for fields in reader:
            row = first + line
            if reader.line_num - line > 1:
                raise DataError(path, "a quoted field spans lines (not supported)", row)
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != n:
                bad.append((row, len(fields)))
            kept.append(fields)
            rows.append(row)
    except csv.Error as e:
        raise DataError(path, f"malformed quoted field ({e})", first + line) from None
    if bad:
        raise _ragged(path, bad, n)
    cells = [np.array([r[j].strip() for r in kept], dtype=str) for j in wanted]
    return cells, np.array(rows, np.int64)


# ----------------------------------------------------------------------------- numbers


def parse_numbers(values, decimal=".", skip=None) -> tuple[np.ndarray, np.ndarray]:
    """values (n,) str -> (x (n,) float64, bad (n,) bool: not a finite number). x is NaN
    where bad or where `skip` (n,) bool is set (the missing cells, which are not bad).

    Cells of at most 15 digits, an optional sign and one decimal point (the common case)
    are parsed in bulk: the digits as an exact integer m (< 2**53) and k digits after the
    point give x = m / 10**k, one correctly rounded division, so x == float(text) exactly.
    Others (exponents, longer numbers, bad cells) are parsed one by one."""
    values = np.ascontiguousarray(values, dtype=str)
    n, w = len(values), values.dtype.itemsize // 4
    x, bad = np.full(n, np.nan), np.zeros(n, bool)
    skip = np.zeros(n, bool) if skip is None else np.asarray(skip, bool)
    if not n:
        return x, bad
    U = values.view(np.uint32).reshape(n, w)  # (n, w) code points, 0-padded
    if U.max() > 127:  # beyond ASCII: never part of a number, kept so in one byte
        U = np.minimum(U, 255)
    C = np.ascontiguousarray(U.T, dtype=np.uint8)  # (w, n): one row per character place
    m, k = np.zeros(n), np.zeros(n, np.int8)  # digits as an integer; digits after the point
    nd, npoint = np.zeros(n, np.int8), np.zeros(n, np.int8)
    after, d, digit, point = np.zeros(n, bool), np.empty(n, np.uint8), np.empty(n, bool), np.empty(n, bool)
    with np.errstate(over="ignore"):
        for c in C:  # Horner's rule over the character places, all cells at once
            np.less(np.subtract(c, 48, out=d), 10, out=digit)  # uint8: below "0" wraps
            np.multiply(m, 10.0, out=m, where=digit)
            m += d * digit
            np.equal(c, ord(decimal), out=point)
            after |= point
            nd += digit
            npoint += point
            k += digit & after
    signed = (C[0] == 45) | (C[0] == 43)
    simple = (nd >= 1) & (nd <= 15) & (npoint <= 1) & ~skip
    simple &= nd + npoint + signed == np.strings.str_len(values)
    x[simple] = (np.where(C[0] == 45, -m, m) / POW10[np.clip(k, 0, 22)])[simple]
    other = "." if decimal == "," else ","
    for i in np.flatnonzero(~simple & ~skip).tolist():
        text = str(values[i])
        try:
            if other in text or "_" in text:
                raise ValueError
            x[i] = float(text.replace(decimal, "."))
        except ValueError:
            bad[i] = True
    bad |= ~np.isfinite(x) & ~skip
    x[bad] = np.nan
    return x, bad


def numbers(table, names) -> np.ndarray:
    """Columns `names` of `table` as X (n, len(names)) float64, NaN where missing. Cells
    that are neither missing nor finite numbers raise one DataError: their count and the
    first few (row, column, value)."""
    X = np.empty((len(table), len(names)))
    cells, count = [], 0
    for j, name in enumerate(names):
        x, bad = parse_numbers(table.values[name], table.decimal, table.missing[name])
        X[:, j] = x
        count += int(bad.sum())
        cells += [(int(table.rows[i]), name, str(table.values[name][i]))
                  for i in np.flatnonzero(bad)[:SHOWN]]
    if count:
        cells.sort(key=lambda c: (c[0], names.index(c[1])))
        raise cell_error(table.path, "not a number", cells, count)
    return X
