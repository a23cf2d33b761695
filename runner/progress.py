"""Progress of a fit on the terminal: a tqdm bar on a terminal, a line every few
seconds otherwise, nothing with --quiet."""

import sys
import time
from contextlib import contextmanager

LINE_EVERY = 5.0  # seconds between lines when standard error is not a terminal


def _postfix(row):
    return {k: f"{row[k]:.4g}" for k in ("loss", "val_loss") if k in row}


@contextmanager
def epochs(config, quiet):
    """Yield an on_epoch(row) callback for a fit of `config` (None when there is no fit
    or when quiet)."""
    if config.train is None or quiet:
        yield None
        return
    total = config.train.epochs
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total, unit="epoch", desc=config.name, leave=False, file=sys.stderr)
        try:
            yield lambda row: (bar.set_postfix(_postfix(row), refresh=False), bar.update(1))
        finally:
            bar.close()
        return
    last = [time.monotonic()]

    def line(row):
        now = time.monotonic()
        if now - last[0] >= LINE_EVERY or row["epoch"] == total:
            last[0] = now
            stats = "  ".join(f"{k}={v}" for k, v in _postfix(row).items())
            print(f"{config.name}: epoch {row['epoch']}/{total}  {stats}", file=sys.stderr,
                  flush=True)

    yield line


@contextmanager
def trials(config, out, quiet):
    """Yield an on_trial(outcome) callback that advances a bar over the trials of the
    swept `config` (None when quiet or when standard error is not a terminal)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    from runner.runs.sweep import count

    total = count(config)
    bar = tqdm(total=total, unit="trial", leave=False, file=sys.stderr)
    try:
        yield lambda outcome: bar.update(1)
    finally:
        bar.close()
