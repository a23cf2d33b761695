"""Predictions streamed to disk as they are computed (docs/run-folders.md, docs/data.md).

csv: header `y0,...,yK-1` (`,label` for classification), values in round-trip precision
('%.9g' for float32, '%.17g' for float64). npy: the float array (rows, K) in a standard
.npy whose header is rewritten with the final row count on close, and for
classification the labels (rows,) as fixed-width unicode in `<stem>_labels.npy`.
"""

import io
import os

import numpy as np

from runner.io.atomic import atomic_path

ROUND_TRIP = {"float32": "%.9g", "float64": "%.17g"}


def labels_path(path):
    """Where the labels of a .npy prediction file go: predictions.npy -> predictions_labels.npy."""
    path = os.fspath(path)
    return (path[:-4] if path.endswith(".npy") else path) + "_labels.npy"


def _csv_field(text):
    """A label as a CSV field, quoted when it holds a comma, a quote or a line break."""
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\r\n') else text


class _Npy:
    """An .npy file written row block by row block; close() rewrites the header's row count
    (numpy pads headers so that the row count can grow in place)."""

    def __init__(self, path, dtype, tail):
        self.dtype, self.tail, self.rows = np.dtype(dtype), tuple(tail), 0
        self.atomic = atomic_path(path)
        self.f = open(self.atomic.__enter__(), "wb")
        self.size = self._header(0)

    def _header(self, rows):
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {
            "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
            "shape": (rows, *self.tail)})
        self.f.write(buf.getvalue())
        return len(buf.getvalue())

    def write(self, A):
        A = np.ascontiguousarray(A, dtype=self.dtype)
        self.f.write(A.data if A.size else b"")
        self.rows += len(A)

    def close(self):
        try:
            self.f.seek(0)
            if self._header(self.rows) != self.size:  # cannot happen below 10**21 rows
                raise RuntimeError("the .npy header changed size")
            self.f.close()
        except BaseException:
            self.abort()
            raise
        self.atomic.__exit__(None, None, None)  # renames over the final path

    def abort(self):
        self.f.close()
        self.atomic.__exit__(_Aborted, _Aborted(), None)  # removes the temporary file


class _Aborted(Exception):
    pass


class PredictionWriter:
    """Stream predictions to `path` through atomic_path: rows go to a temporary file beside
    it, which close() renames and abort() removes. A context manager too: close on success,
    abort on an exception.

    fmt "csv" or "npy" (PredictionWriter(...) makes the writer of that format, from
    WRITERS); n_outputs K; dtype "float32" | "float64"; classes (K,) str for
    classification (K == 1: a sigmoid output, two classes); keep: names of input columns
    copied in front of the predictions (csv only), whose texts write() receives.

    A format subclasses this and implements open() (create the file(s) and write the
    header), write_rows(A (b, K) of dtype), finish() (complete and rename into place) and
    discard() (remove what was written); this class checks the arguments, the shape of
    each chunk and that close/abort happen once.
    """

    def __new__(cls, path, *, fmt, **kwargs):
        if cls is PredictionWriter:
            if fmt not in WRITERS:
                raise ValueError(f"fmt must be {' or '.join(map(repr, WRITERS))}, got {fmt!r}")
            cls = WRITERS[fmt]
        return super().__new__(cls)

    def __init__(self, path, *, fmt, n_outputs, dtype, classes=None, keep=()):
        self.path, self.fmt, self.K = os.fspath(path), fmt, int(n_outputs)
        self.keep = list(keep)
        if self.keep and fmt != "csv":
            raise ValueError(f"keep needs the csv format, not {fmt!r}")
        self.dtype = np.dtype(dtype)
        self.classes = None if classes is None else np.asarray(classes).astype(str)
        if self.classes is not None and len(self.classes) != (2 if self.K == 1 else self.K):
            raise ValueError(f"{len(self.classes)} classes for {self.K} outputs")
        self.done = False
        self.open()

    def predicted(self, A):
        """Class index per row of A (b, K): argmax, or A[:, 0] > 0.5 for one sigmoid unit."""
        return (A[:, 0] > 0.5).astype(np.intp) if self.K == 1 else np.argmax(A, axis=1)

    def write(self, A, kept=None) -> None:
        """Append the rows of A (b, K) (and their predicted labels, for classification);
        kept: {name: (b,) str} of the `keep` columns."""
        if A.ndim != 2 or A.shape[1] != self.K:
            raise ValueError(f"expected predictions of shape (rows, {self.K}), got {A.shape}")
        if self.keep:
            self.write_rows(np.asarray(A, dtype=self.dtype), kept)
        else:
            self.write_rows(np.asarray(A, dtype=self.dtype))

    def close(self) -> None:
        """Finish the file(s) and rename them into place."""
        if self.done:
            return
        self.done = True
        self.finish()

    def abort(self) -> None:
        """Drop what was written: no file appears, no temporary file is left."""
        if self.done:
            return
        self.done = True
        self.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


class CsvWriter(PredictionWriter):
    """Header y0,...,yK-1 (,label); one line per row, values in round-trip precision."""

    def open(self):
        self.atomic = atomic_path(self.path)
        self.f = open(self.atomic.__enter__(), "w", encoding="utf-8", newline="")
        header = [f"y{k}" for k in range(self.K)] + (["label"] if self.classes is not None else [])
        self.f.write(",".join(map(_csv_field, self.keep + header)) + "\n")
        self.row = ",".join(["%s"] * len(self.keep) + [ROUND_TRIP[self.dtype.name]] * self.K)
        if self.classes is not None:
            self.row += ",%s"
            self.fields = np.array([_csv_field(c) for c in self.classes.tolist()], dtype=object)
        self.row += "\n"

    def write_rows(self, A, kept=None):
        c = len(self.keep)
        if self.classes is None and not c:
            values = A.astype(np.float64).ravel().tolist()
        else:  # interleave kept texts, values and labels: (b, c + K + 1) Python objects
            table = np.empty((len(A), c + self.K + (self.classes is not None)), dtype=object)
            for j, name in enumerate(self.keep):
                table[:, j] = [_csv_field(t) for t in np.asarray(kept[name]).tolist()]
            table[:, c:c + self.K] = A.astype(np.float64)
            if self.classes is not None:
                table[:, -1] = self.fields[self.predicted(A)]
                table[np.isnan(A).any(axis=1), -1] = ""  # a row without a prediction
            values = table.ravel().tolist()
        self.f.write((self.row * len(A)) % tuple(values))  # one format call per chunk

    def finish(self):
        try:
            self.f.close()
        except BaseException:
            self.done = False
            self.abort()
            raise
        self.atomic.__exit__(None, None, None)

    def discard(self):
        self.f.close()
        self.atomic.__exit__(_Aborted, _Aborted(), None)


class NpyWriter(PredictionWriter):
    """The values (rows, K) in `path`; for classification the labels (rows,) as fixed-width
    unicode in labels_path(path)."""

    def open(self):
        self.lab = None
        if self.classes is not None:
            width = max(1, max(len(c) for c in self.classes))
            self.classes = self.classes.astype(f"<U{width}")
            self.lab = _Npy(labels_path(self.path), self.classes.dtype, ())
        try:
            self.out = _Npy(self.path, self.dtype, (self.K,))
        except BaseException:
            if self.lab is not None:
                self.lab.abort()
            raise

    def write_rows(self, A):
        self.out.write(A)
        if self.lab is not None:
            labels = self.classes[self.predicted(A)]
            labels[np.isnan(A).any(axis=1)] = ""  # a row without a prediction
            self.lab.write(labels)

    def finish(self):
        if self.lab is not None:
            self.lab.close()
        self.out.close()

    def discard(self):
        for part in (self.out, self.lab):
            if part is not None:
                part.abort()


WRITERS = {"csv": CsvWriter, "npy": NpyWriter}
