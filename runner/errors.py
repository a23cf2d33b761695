"""The two kinds of failure a user can see.

`UserError` is a mistake in a config, a data file, a weights file or a flag: the CLI
prints its message and exits 2. `RunFailed` is a run that started and went wrong
(a loss that diverged): exit 1. Library code raises these and never prints or exits.
"""


class UserError(Exception):
    """A mistake the user can fix; the message names where it is and what is valid."""


class DataError(UserError):
    """A problem in a data file, located as `path:row: message` (row counts from 1,
    the header being row 1 in a CSV)."""

    def __init__(self, path, message, row=None):
        self.path, self.row = str(path), row
        where = self.path if row is None else f"{self.path}:{row}"
        super().__init__(f"{where}: {message}")


class RunFailed(Exception):
    """A run that started and failed (a loss that is not finite, for example)."""
