"""Atomic file writes: a file either appears whole under its name or not at all."""

import csv
import io
import os
import tempfile
from contextlib import contextmanager

PREFIX = ".tmp-"  # the temporary files' names start so: a kill mid-write can leave one


@contextmanager
def atomic_path(path):
    """Yield a temporary path in the folder of `path`; when the block ends without an
    exception the temporary file is renamed over `path`, otherwise it is removed."""
    path = os.fspath(path)
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=PREFIX, suffix="-" + os.path.basename(path), dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_bytes(path, data: bytes):
    """Write `data` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def write_text(path, text: str):
    """Write `text` (UTF-8) to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def write_csv(path, columns, rows):
    """A CSV file, atomically: the header `columns`, then a line per row (a mapping; a
    missing key or None is an empty cell); floats in round-trip precision (repr)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    write_text(path, buffer.getvalue())


def _cell(value):
    return repr(value) if isinstance(value, float) else "" if value is None else value
