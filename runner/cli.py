"""The `yamlnet` command line: a thin layer over the library; the only module that
talks to the terminal.

Exit codes (docs/cli.md): 0 success; 2 a bad config, data file or flag (one message, no
traceback); 1 a run that failed; 130 interrupted.
"""

import contextlib
import io
import json
import os
import sys
import warnings

import click

from runner import progress
from runner.errors import RunFailed, UserError
from runner.vocabulary import PREDICT_BATCH

KERNELS_ENV = "YAMLNET_KERNELS"  # runner.engine.kernels.ENV, without importing numpy here


class BadInput(click.ClickException):
    """A user mistake: printed without a traceback, exit 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(self.format_message(), err=True)


class Failed(click.ClickException):
    """A run that started and failed: exit 1."""

    exit_code = 1


def load(path, overrides=()):
    """Load and validate a config, turning every user mistake into BadInput."""
    from schemas import ConfigError, load_config

    try:
        return load_config(path, overrides=overrides)
    except ConfigError as e:
        raise BadInput(str(e)) from None


def located(error, config_path, overrides=()):
    """The text of a UserError, pointing at the config line (or the --set override) of
    its key when it has one."""
    if error.key and config_path:
        from schemas import ConfigError, locate

        return str(ConfigError([locate(config_path, error.key, error.detail, overrides)]))
    return f"error: {error}"


def _address(ctx, param, value):
    """--scheduler's value (a click callback): None, or a non-empty address."""
    if value is not None and not value.strip():
        raise click.BadParameter("an empty address; give the scheduler's, e.g. "
                                 "tcp://127.0.0.1:8786")
    return value


def guarded(fn):
    """Map library errors to exit codes: UserError -> 2, RunFailed -> 1, Ctrl-C -> 130."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            import numpy as np

            with np.errstate(all="ignore"):  # non-finite values are reported by checks
                return fn(*args, **kwargs)
        except UserError as e:
            raise BadInput(located(e, kwargs.get("config_path"),
                                   kwargs.get("overrides") or ())) from None
        except RunFailed as e:
            raise Failed(str(e)) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            click.get_current_context().exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="yamlnet")
def cli():
    """Run neural networks described in YAML."""


set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE",
    help="Override one config value by dotted path (model.layers.0.units=16); repeatable.",
)


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The YAML config to run.")
@set_option
@click.option("--out", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives <name>/<id>/ run folders.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local processes for the trials of a sweep.")
@click.option("--scheduler", metavar="ADDRESS", default=None, callback=_address,
              help="Run sweep trials on this Dask distributed scheduler (extra 'dask').")
@click.option("--force", is_flag=True, help="Redo runs whose folder is already complete.")
@click.option("--dry-run", is_flag=True, help="Print the plan (ids and statuses); run nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--restart", is_flag=True,
              help="Start unfinished fits afresh instead of going on from their checkpoint.")
@click.option("--track", type=click.Choice(["mlflow"]), default=None,
              help="Log the run (each sweep trial) to MLflow (extra 'mlflow'), at "
                   "track.mlflow.uri or MLFLOW_TRACKING_URI.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="BLAS threads per run (default: 1 for a fit too small for two, else "
                   "the cores, shared among --workers).")
@click.option("--kernels", "kernel_mode", type=click.Choice(["numpy", "compiled"]),
              default=None, help="Run on numpy's kernels or on compiled ones (extra 'fast'); "
                                 "the results are the same bits. Default: compiled for fits "
                                 "big enough to pay, when numba is installed.")
@guarded
def run(config_path, overrides, out, workers, scheduler, force, dry_run, quiet, restart,
        track, threads, kernel_mode):
    """Fit (with a `train` section) or run a forward pass, into a run folder."""
    from runner.io import digests

    if kernel_mode is not None:  # before workers start: they inherit the environment
        os.environ[KERNELS_ENV] = kernel_mode
    if workers > 1 and not scheduler and not dry_run:
        from runner.runs import processes

        processes.warm()  # the fork server imports yamlnet while this process does
    digests.prefetch(config_path, overrides, out)  # hashes the inputs while we import
    _check_kernels(kernel_mode)
    from runner import api

    if scheduler and workers > 1:
        raise click.UsageError("give --workers N (local processes) or --scheduler ADDRESS "
                               "(a Dask cluster), not both")
    config = load(config_path, overrides)
    if dry_run:
        found = api.plan(config, out)
        for t in found if isinstance(found, list) else []:
            fold = t.plan.config.data.fold
            values = "".join(f"  {k}={v}" for k, v in t.values.items())
            click.echo(f"{t.plan.id}  {t.plan.status:<9}  seed={t.seed}"
                       + ("" if fold is None else f"  fold={fold}") + values)
        if not isinstance(found, list):
            click.echo(f"{found.id}  {found.status:<9}  {found.folder}")
        steps = api.rungs(config)
        if steps:
            _report_rungs(config, steps, len(found))
        return
    if config.sweep is not None or (config.data.folds and config.data.fold is None):
        with progress.trials(config, out, quiet) as on_trial, _tracking_warnings():
            result = api.run(config, out, force, workers, scheduler, on_trial=on_trial,
                             track=track, restart=restart, threads=threads)
        return _report_sweep(result)
    if scheduler:  # not silently local: the user asked for the cluster
        raise click.BadParameter(f"{config_path} is a single run; the scheduler runs the "
                                 "trials of a sweep (or the folds of data.folds)",
                                 param_hint="'--scheduler'")
    with progress.epochs(config, quiet) as on_epoch, _tracking_warnings():
        outcome = api.run(config, out, force, on_epoch=on_epoch, track=track, restart=restart,
                          threads=threads)
    if outcome.elsewhere:
        click.echo(f"skipped (computed by another process while this one waited): "
                   f"{outcome.folder}")
    elif outcome.status == "skipped":
        click.echo(f"skipped (already complete): {outcome.folder}  (--force redoes it)")
    elif outcome.resumed is not None:
        click.echo(f"{outcome.status} (resumed at epoch {outcome.resumed}): {outcome.folder}")
    else:
        click.echo(f"{outcome.status}: {outcome.folder}")
    if outcome.metrics and not quiet:
        click.echo("  " + "  ".join(f"{k}={_fmt(v)}" for k, v in outcome.metrics.items()))


def _check_kernels(mode):
    """Refuse, before anything runs, a bad YAMLNET_KERNELS or the compiled kernels of
    --kernels without numba (--kernels has set YAMLNET_KERNELS, which workers inherit)."""
    from runner.engine import kernels

    if mode == "compiled" and not kernels.available():
        raise click.BadParameter(kernels.missing_message(), param_hint="'--kernels'")
    kernels.wanted()
    kernels.notice = lambda message: click.echo(message, err=True)


def _report_rungs(config, steps, n):
    """The rung plan of a successive-halving sweep, as `run --dry-run` shows it."""
    from runner import text

    spec = config.sweep
    click.echo(f"successive halving (factor {spec.halving.factor}, by {spec.metric}, "
               f"{spec.mode}):")
    click.echo("\n".join(text.table(["rung", "epochs", "trials"],
                                    [[i, e, k] for i, (e, k, _) in enumerate(steps, 1)],
                                    right=(1, 2))))
    click.echo(f"at most {sum(new for _, _, new in steps)} epochs in all (every trial to "
               f"the end: {n * config.train.epochs})")


@contextlib.contextmanager
def _tracking_warnings():
    """Show a tracking store's failure as one "warning:" line on stderr (the run goes on);
    other warnings pass through as they would."""
    from runner.api import TrackingWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackingWarning)
        try:
            yield
        finally:
            for w in caught:
                if issubclass(w.category, TrackingWarning):
                    click.echo(f"warning: {w.message}", err=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _report_sweep(result):
    """The sweep's counts and ranking; exit 1 when a trial failed."""
    from runner import text

    n = len(result.trials)
    elsewhere = sum(o.elsewhere for o in result.outcomes)  # while this process waited
    ran = sum(o.status != "skipped" and not o.elsewhere for o in result.outcomes)
    others = f", {elsewhere} computed by another process" if elsewhere else ""
    halted = sum(row.get("status") == "halted" for row in result.rows)
    done, stopped = ("done", f"; {halted} halted by successive halving") if halted else ("complete", "")
    click.echo(f"{n} trials ({ran} run, {n - ran - elsewhere} already {done}{others}; "
               f"{result.failed} failed{stopped}): {result.folder}/sweep.csv")
    if result.keys:
        folds = any("fold" in row for row in result.rows)
        click.echo(text.ranking(result.ranked, result.metric, result.mode,
                                "runs" if folds else "seeds"))
    else:  # folds (and seeds) of one experiment: each metric's mean and spread
        n = max((k for _, _, k in result.spread().values()), default=0)
        click.echo(f"mean ± std over {n} runs:")
        click.echo("  " + "  ".join(f"{name}={m:.6g}±{sd:.2g}"
                                    for name, (m, sd, _) in result.spread().items()))
    if result.failed:
        failed = [o for o in result.outcomes if o.status == "failed"]
        raise Failed(f"{result.failed} of {n} trials failed:" + "".join(
            f"\n  {o.folder}: {o.error}" for o in failed[:5])
            + (f"\n  ... and {len(failed) - 5} more (sweep.csv lists them)"
               if len(failed) > 5 else ""))


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else str(value)


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--sort", "sort_by", metavar="COLUMN", default=None,
              help="Sort the rows by this column; -COLUMN for descending (--sort=-val_loss).")
@click.option("--filter", "filters", multiple=True, metavar="KEY=VALUE",
              help="Keep the runs whose config key, metric, status, epochs or seconds has "
                   "this value (status=complete); repeatable.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "markdown"]),
              default="table", show_default=True, help="How to print the rows.")
@click.option("--group", is_flag=True,
              help="One row per experiment: mean ± std over its seeds and folds.")
@guarded
def compare(paths, sort_by, filters, fmt, group):
    """Compare runs (run folders, sweep folders or an --out folder): one row per run
    with the config keys that differ, final metrics, status, epochs and seconds."""
    from runner import api, text

    wanted = {}
    for item in filters:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--filter")
        wanted[key] = value
    click.echo(text.comparison(api.compare(paths, wanted, sort_by, group), fmt))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@set_option
@click.option("--data", "check_data", is_flag=True,
              help="Also open the data files and check widths, classes and the loss.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report as text or as a JSON list of problems.")
@click.option("--resolved", is_flag=True,
              help="Print each valid config flat, as YAML: its bases (extends) merged, "
                   "--set applied, defaults filled, paths absolute.")
@guarded
def validate(files, overrides, check_data, fmt, resolved):
    """Check configs; report every problem with its file, line and column."""
    from runner import api

    if resolved and fmt == "json":
        raise click.UsageError("--resolved prints YAML; it does not combine with --format json")
    problems, shown = [], 0
    for path in files:
        text, found = api.validate(path, overrides, check_data)
        problems += found
        if fmt == "text" and resolved and not found:  # stdout holds only YAML documents
            click.echo(("---\n" if shown else "") + api.resolved_yaml(path, overrides), nl=False)
            shown += 1
            if text:  # with --data: the input plan
                click.echo(text, err=True)
        elif fmt == "text":
            click.echo(text if found else f"{path}: ok", err=bool(found))
            if text and not found:  # with --data: the input plan
                click.echo(text)
    if fmt == "json":
        click.echo(json.dumps(problems, indent=2))
    if problems:
        sys.exit(2)


@cli.command()
def schema():
    """Print the JSON Schema of the config (for editors): schemas/config.schema.json,
    byte for byte."""
    from schemas.__main__ import schema_text

    click.echo(schema_text(), nl=False)


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The YAML config to describe.")
@set_option
@guarded
def summary(config_path, overrides):
    """Print the layer table: output shapes, parameters and FLOPs per row."""
    from runner import api

    click.echo(api.summary(load(config_path, overrides)))


@cli.command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False),
              help="A finished run folder.")
@click.option("--data", "data_path", required=True, type=click.Path(),
              help="The data to predict (.csv, .npy, .npz, ...), or shards: a folder of "
                   "data files or a quoted glob pattern ('shards/*.npy').")
@click.option("--out", "out_path", default=None, type=click.Path(),
              help="Output file (.csv or .npy); default RUN/predictions-<data name>.csv. "
                   "For shards: the folder that receives <shard name>.csv (required).")
@click.option("--format", "fmt", type=click.Choice(["csv", "npy"]), default=None,
              help="Predictions as .csv or .npy (default: by --out's extension; csv for "
                   "shards).")
@click.option("--batch-size", type=click.IntRange(min=1), default=PREDICT_BATCH, show_default=True,
              help="Rows per forward minibatch.")
@click.option("--keep", multiple=True, metavar="COLUMN",
              help="Copy this input column (an id) in front of the predictions; repeatable.")
@click.option("--scheduler", metavar="ADDRESS", default=None, callback=_address,
              help="Predict the shards as tasks on this Dask distributed scheduler "
                   "(extra 'dask').")
@guarded
def predict(run_dir, data_path, out_path, fmt, batch_size, keep, scheduler):
    """Apply a finished run to new data, replaying its preprocessing and class labels."""
    from runner import api

    if not api.is_sharded(data_path):
        if scheduler:
            raise click.UsageError("--scheduler predicts shards: give --data a folder or a "
                                   "glob pattern such as 'shards/*.npy'")
        out = api.predict_run(run_dir, data_path, out=out_path, batch_size=batch_size,
                              keep=keep, fmt=fmt)
        click.echo(f"wrote {out}")
        return
    if out_path is None:
        raise click.UsageError(f"--data {data_path} names shards: give --out DIR, the "
                               "folder that receives one predictions file per shard")
    try:
        written = api.predict_shards(run_dir, data_path, out_path, scheduler, fmt or "csv",
                                     batch_size, keep)
    except (UserError, RunFailed) as e:
        for out in getattr(e, "written", ()):
            click.echo(f"wrote {out}")
        raise
    for out in written:
        click.echo(f"wrote {out}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="The model format (extra 'onnx').")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False),
              help="The model file to write; default RUN_DIR/model.onnx.")
@guarded
def export(run_dir, fmt, out_path):
    """Write a finished run as an ONNX model: preprocessing, network, outputs, classes."""
    from runner import api

    click.echo(f"wrote {api.export(run_dir, fmt, out=out_path)}")


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@guarded
def verify(run_dir):
    """Re-execute a finished run in a temporary folder and compare every output."""
    from runner import api

    report = api.verify(run_dir)
    for name, ok in report.items():
        click.echo(f"{'match   ' if ok else 'MISMATCH'}  {name}")
    if not all(report.values()):
        raise Failed(f"{run_dir}: the re-executed run differs")
    click.echo(f"{run_dir}: bit-identical")


class _Unwritable(OSError):
    """Standard output (or error) refused a write for a reason other than a closed pipe:
    a full disk (`> /dev/full`), a lost terminal."""


class _Output(io.RawIOBase):
    """File descriptor `fd` as the raw stream under sys.stdout / sys.stderr. Once its
    reader has gone (a closed pipe: `yamlnet run ... | head -1`), further output is
    dropped and the command goes on, so it ends quietly with its own exit status; any
    other failed write is an _Unwritable, which main() reports in one line."""

    def __init__(self, fd):
        super().__init__()
        self.fd = fd

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def isatty(self):
        return os.isatty(self.fd)

    def write(self, b):
        try:
            return os.write(self.fd, b)
        except BrokenPipeError:
            _discard(self.fd)
            return len(b)
        except OSError as e:
            raise _Unwritable(e.errno, e.strerror) from None


def _discard(fd):
    """Send whatever is still written to `fd` to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _guard_output():
    """Put _Output under sys.stdout and sys.stderr (same encoding and buffering)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            continue  # not a file (embedded, captured): left as it is
        stream.flush()
        setattr(sys, name, io.TextIOWrapper(
            io.BufferedWriter(_Output(fd)), encoding=stream.encoding, errors=stream.errors,
            line_buffering=stream.line_buffering, write_through=name == "stderr"))


def main():
    """The console script. Click's standalone mode would turn a Ctrl-C that lands
    outside a command (while the command line is parsed) into "Aborted!" and exit 1;
    here every Ctrl-C exits 130. A closed standard output ends nothing (the command
    exits with its own status); one that cannot be written is a one-line error, exit 1."""
    _guard_output()
    try:
        code = cli.main(prog_name="yamlnet", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except _Unwritable as e:
        _discard(sys.stdout.fileno())  # the unwritten rest is dropped, not retried at exit
        with contextlib.suppress(OSError):
            click.echo(f"Error: cannot write the output: {e.strerror}", err=True)
        sys.exit(1)
    sys.exit(code if type(code) is int else 0)


if __name__ == "__main__":
    main()
