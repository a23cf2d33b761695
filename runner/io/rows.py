"""The rows of a fit, held once (docs/data.md, "Streaming and memory").

A fit's features X (N, d) are read into one array (or memory-mapped from a .npy); its
training and validation rows are parts of that array, never copies:

- `partition` moves the training rows to the front and the validation rows behind them,
  in place, so that both are contiguous views of the one array;
- `Rows` reads the rows of an index set of a memory-mapped array on demand, cast to the
  fit's dtype and scaled, into reused buffers: the fit loop gathers its minibatches from
  it as it would from an array (np.take and slices);
- `mean`, `std` and `extrema` compute the scaling statistics block by block, bit for bit
  as numpy's X.mean(0, dtype=float64), X.std(0, dtype=float64), X.min(0), X.max(0) over
  the whole array (whose X.std alone would make a float64 temporary twice the size of a
  float32 X): numpy sums a column (d >= 2) row after row, so a block's sum starts from the
  sum so far; a single column it sums pairwise (_pairwise), or per cast buffer (_sum).
"""

import numpy as np

BLOCK_BYTES = 1 << 23  # about 8 MiB of float64 per block of statistics


class Rows:
    """The rows `index` (sorted (n,) intp; None: all) of A (N, d), a memory-mapped array
    in the file's dtype, as an (n, d) array of `dtype` scaled by `scaler` (a data.Scaler,
    set once the statistics are known), read as they are asked for:

        take(idx, axis=0, out=None, mode=...)  rows idx (m,) -> (m, d): what np.take calls
        X[start:stop]                          rows start..stop -> (stop - start, d)
        raw(start, stop)                       the same, not scaled (for the statistics)

    What a call returns (but `out`) is a reused buffer, overwritten by the next call."""

    ndim = 2

    def __init__(self, A, index=None, dtype="float32", scaler=None):
        self.A, self.index, self.dtype, self.scaler = A, index, np.dtype(dtype), scaler
        self.shape = (A.shape[0] if index is None else len(index), A.shape[1])
        self._buf = self._raw = self._at = None

    def __len__(self):
        return self.shape[0]

    def subset(self, index):
        """The rows `index` (sorted positions in these rows) as Rows of A."""
        return Rows(self.A, index if self.index is None else self.index[index], self.dtype,
                    self.scaler)

    def take(self, indices, axis=0, out=None, mode="raise"):
        m = len(indices)
        out = self._buffer(m) if out is None else out
        at = indices if self.index is None else np.take(self.index, indices,
                                                        out=self._positions(m), mode="clip")
        self._gather(at, out)
        if self.scaler is not None:
            self.scaler.apply(out)
        return out

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("Rows take a slice start:stop of rows")
        start, stop, _ = key.indices(self.shape[0])
        out = self.raw(start, stop)
        if self.scaler is not None:
            self.scaler.apply(out)
        return out

    def raw(self, start, stop):
        """Rows start..stop (m, d) of dtype, not scaled, in a reused buffer."""
        out = self._buffer(max(0, stop - start))
        if self.index is None:
            np.copyto(out, self.A[start:stop], casting="unsafe")  # as a whole-file read casts
        else:
            self._gather(self.index[start:stop], out)
        return out

    def _gather(self, at, out):
        """Rows `at` of A into out (m, d) of dtype, cast as a whole-file read casts."""
        if self.A.dtype == self.dtype:
            np.take(self.A, at, axis=0, out=out, mode="clip")
            return
        if self._raw is None or len(self._raw) < len(at):
            self._raw = np.empty((len(at), self.shape[1]), self.A.dtype)
        raw = np.take(self.A, at, axis=0, out=self._raw[:len(at)], mode="clip")
        np.copyto(out, raw, casting="unsafe")

    def _buffer(self, m):
        if self._buf is None or len(self._buf) < m:
            self._buf = np.empty((m, self.shape[1]), self.dtype)
        return self._buf[:m]

    def _positions(self, m):
        if self._at is None or len(self._at) < m:
            self._at = np.empty(m, np.intp)
        return self._at[:m]


def partition(A, first, rest):
    """Reorder the rows of A (n, ...) in place: rows `first`, then rows `rest` (sorted
    index sets that together cover every row once), each part in file order. The smaller
    part is copied aside meanwhile; the other moves block by block toward its end of A."""
    k, block = len(first), max(1, BLOCK_BYTES // max(1, A[:1].nbytes))
    if len(rest) <= k:
        aside = A[rest]
        for s in range(0, k, block):  # first[i] >= i: a row moves down onto rows already read
            e = min(s + block, k)
            A[s:e] = A[first[s:e]]
        A[k:] = aside
    else:
        aside = A[first]
        for e in range(len(rest), 0, -block):  # rest[j] <= k + j: rows move up, last first
            s = max(0, e - block)
            A[k + s:k + e] = A[rest[s:e]]
        A[:k] = aside


# ---- scaling statistics, block by block --------------------------------------------------


def _blocks(X, rows):
    """(start, rows start..start+rows of X, not scaled) over X (an array or Rows)."""
    raw = X.raw if isinstance(X, Rows) else (lambda s, e: X[s:e])
    for start in range(0, X.shape[0], rows):
        yield start, raw(start, min(start + rows, X.shape[0]))


def _sequential(X, fill, block_bytes):
    """(d,) float64 column sums of fill(V, out) over blocks V of X, each row added after the
    ones before it, as numpy's add.reduce(axis=0) sums a C-contiguous (n, d >= 2) array."""
    n, d = X.shape
    rows = max(1, block_bytes // (8 * d))
    buf = np.empty((min(rows, n) + 1, d), np.float64)
    total = None
    for _, V in _blocks(X, rows):
        b = buf[:len(V) + 1]
        fill(V, b[1:])
        if total is None:  # the first block as numpy starts its reduction
            total = np.add.reduce(b[1:], axis=0)
        else:  # the sum so far, then this block's rows
            b[0] = total
            total = np.add.reduce(b, axis=0)
    return total


def _pairwise(value, lo, hi, leaf):
    """The sum of a float64 column over rows lo..hi as numpy's add.reduce makes it over
    the whole column (pairwise): halves cut at a multiple of 8 rows, down to parts of at
    most `leaf` rows, which add.reduce sums itself. value(lo, hi) -> (hi - lo,) float64."""
    n = hi - lo
    if n <= leaf:
        return np.add.reduce(value(lo, hi))
    half = n // 2
    half -= half % 8
    return _pairwise(value, lo, lo + half, leaf) + _pairwise(value, lo + half, hi, leaf)


def _column(X, lo, hi, fill):
    V = X.raw(lo, hi) if isinstance(X, Rows) else X[lo:hi]
    out = np.empty(len(V), np.float64)
    fill(V, out[:, None])
    return out


def _sum(X, fill, block_bytes):
    """(d,) float64: the column sums of fill(X) as numpy's add.reduce(axis=0) makes them."""
    n, d = X.shape
    if d > 1:
        return _sequential(X, fill, block_bytes)
    leaf = max(128, block_bytes // 8)  # numpy sums up to 128 values without halving
    if X.dtype == np.float64 or fill is not _copy:  # unbuffered: pairwise over all n
        return np.array([_pairwise(lambda lo, hi: _column(X, lo, hi, fill), 0, n, leaf)])
    step = np.getbufsize()  # a cast to float64: pairwise over each buffer, added in turn
    total = None
    for start in range(0, n, step):
        part = np.add.reduce(_column(X, start, min(start + step, n), fill))
        total = part if total is None else total + part
    return np.array([total])


def _copy(V, out):
    np.copyto(out, V)  # exact: float32 and float64 values are float64 values


def _small(X, block_bytes):
    return isinstance(X, np.ndarray) and X.shape[0] * X.shape[1] * 8 <= block_bytes


def mean(X, block_bytes=BLOCK_BYTES):
    """(d,) float64, X.mean(0, dtype=float64) of X (n, d), an array or Rows."""
    if _small(X, block_bytes):
        return X.mean(0, dtype=np.float64)
    return np.true_divide(_sum(X, _copy, block_bytes), X.shape[0])


def std(X, mu, block_bytes=BLOCK_BYTES):
    """(d,) float64, X.std(0, dtype=float64) of X (n, d), given mu = mean(X)."""
    if _small(X, block_bytes):
        return X.std(0, dtype=np.float64)

    def squares(V, out):
        np.subtract(V, mu, out=out)
        np.square(out, out=out)

    return np.sqrt(np.true_divide(_sum(X, squares, block_bytes), X.shape[0]))


def extrema(X, block_bytes=BLOCK_BYTES):
    """((d,), (d,)) float64: X.min(0) and X.max(0) of X (n, d), an array or Rows."""
    if _small(X, block_bytes):
        return X.min(0).astype(np.float64), X.max(0).astype(np.float64)
    n, d = X.shape
    rows = max(1, block_bytes // (8 * d))
    lo = hi = None
    for _, V in _blocks(X, rows):
        if lo is None:
            lo, hi = V.min(0), V.max(0)
        else:  # the extremes so far, then this block's (a tie of 0.0 and -0.0 keeps numpy's)
            lo = np.minimum.reduce(np.vstack([lo[None], V]), axis=0)
            hi = np.maximum.reduce(np.vstack([hi[None], V]), axis=0)
    return lo.astype(np.float64), hi.astype(np.float64)
