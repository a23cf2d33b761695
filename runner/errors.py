"""The two kinds of failure a user can see.

`UserError` is a mistake in a config, a data file, a weights file or a flag: the CLI
prints its message and exits 2. `RunFailed` is a run that started and went wrong
(a loss that diverged): exit 1. Library code raises these and never prints or exits.
"""

import difflib
from contextlib import contextmanager


class UserError(Exception):
    """A mistake the user can fix; the message names where it is and what is valid.

    `key` is the dotted config entry at fault (`data.path`), when there is one: the CLI
    then points at its line in the config file; `detail` is the message without it."""

    def __init__(self, detail, key=None):
        self.detail, self.key = detail, key
        super().__init__(f"{key}: {detail}" if key else detail)


class DataError(UserError):
    """A problem in a data file, located as `[key: ]path:row: message` (rows count from
    1, the header being row 1 in a CSV; key is the config entry naming the file)."""

    def __init__(self, path, message, row=None, key=None, column=None):
        self.path, self.message, self.row = str(path), message, row
        self.column = column  # the column a file lacks, when that is the problem
        where = self.path if row is None else f"{self.path}:{row}"
        super().__init__(f"{where}: {message}", key)


@contextmanager
def located(key):
    """Name the config entry (`data.path`, ...) in any UserError raised inside that
    does not name one yet."""
    try:
        yield
    except UserError as e:
        if e.key is not None:
            raise
        if isinstance(e, DataError):
            raise DataError(e.path, e.message, e.row, key, e.column) from None
        raise UserError(e.detail, key) from None


class RunFailed(Exception):
    """A run that started and failed (a loss that is not finite, for example)."""


def count(n, noun) -> str:
    """"1 feature column", "2 feature columns": n and the noun, plural unless n is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def did_you_mean(word, options) -> str:
    """"; did you mean 'relu'?" when `word` is close to one of `options` (ignoring case),
    else "". The one near-miss hint of every message: config keys, names, columns."""
    options = [str(o) for o in options]
    lowered = [o.lower() for o in options]
    close = difflib.get_close_matches(str(word).lower(), lowered, n=1)
    return f"; did you mean '{options[lowered.index(close[0])]}'?" if close else ""
