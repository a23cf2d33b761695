"""Sweeps: a grid and/or seeded random samples, crossed with seeds; every trial is an
ordinary run in its own content-addressed folder, so a rerun resumes where it stopped.

Randomness comes only from each trial's own resolved config, never from the order or
the process a trial runs in, so results do not depend on --workers or the scheduler.
"""

import copy
import itertools
import math
import os
from dataclasses import dataclass, field

import numpy as np

from runner.errors import UserError
from runner.io import atomic
from runner.io.digests import DigestCache
from runner.runs import experiment, folders, halving, parallel


@dataclass
class Trial:
    values: dict  # {dotted path: value} of the swept keys
    seed: int
    plan: experiment.Plan
    fold: int | None = None  # the fold held out, under data.folds


def expands(config):
    """Whether `config` runs as several trials: a sweep, or cross-validation folds."""
    return config.sweep is not None or (config.data.folds is not None
                                        and config.data.fold is None)


def _folds(config):
    return list(range(config.data.folds)) if config.data.folds and config.data.fold is None \
        else [config.data.fold]


def _goal(config):
    """(metric, mode) that ranks the trials: the sweep's, or val_loss for folds alone."""
    return (config.sweep.metric, config.sweep.mode) if config.sweep else ("val_loss", "min")


def points(sweep, seed):
    """The swept points: the grid's combinations, each crossed with the random samples
    drawn from a generator seeded by the config's seed. [{dotted path: value}]."""
    grid = sweep.grid or {}
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    if sweep.random is None:
        return combos
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    samples = []
    for _ in range(sweep.random.samples):
        sample = {}
        for path, space in sweep.random.space.items():
            sample[path] = draw(rng, space)
        samples.append(sample)
    return [{**c, **s} for c in combos for s in samples]


def draw(rng, space):
    """One value from a space: {uniform: [lo, hi]}, {loguniform: [lo, hi]} or {choice: [...]}."""
    space = space if isinstance(space, dict) else space.model_dump(exclude_none=True)
    (kind, arg), = space.items()
    if kind == "uniform":
        return float(rng.uniform(arg[0], arg[1]))
    if kind == "loguniform":
        return float(math.exp(rng.uniform(math.log(arg[0]), math.log(arg[1]))))
    return arg[int(rng.integers(len(arg)))]


def count(config):
    """How many trials a swept config has (points x seeds), without planning them."""
    spec = config.sweep
    if spec is None:
        return len(_folds(config))
    n = math.prod(len(values) for values in (spec.grid or {}).values())
    n *= spec.random.samples if spec.random else 1
    return n * len(spec.seeds or [config.seed]) * len(_folds(config))


def trials(config, out):
    """Every trial of a swept config, validated before any runs: [Trial]. A trial whose
    resolved config does not validate is a UserError naming its values."""
    from schemas import ConfigError, load_config_dict, set_path

    base = config.model_dump(mode="json")
    base.pop("sweep", None)
    spec = config.sweep
    seeds = (spec.seeds if spec else None) or [config.seed]
    cache = DigestCache(out)
    found = []
    for values in points(spec, config.seed) if spec else [{}]:
        for seed in seeds:
            for fold in _folds(config):
                tree = copy.deepcopy(base)
                for path, value in values.items():
                    set_path(tree, path, value)
                tree["seed"] = seed
                tree["data"]["fold"] = fold
                where = f"sweep trial {values} seed {seed}" + (f" fold {fold}" if fold is not None
                                                               else "")
                try:
                    trial = load_config_dict(tree, source=where)
                except ConfigError as e:
                    raise UserError(str(e)) from None
                found.append(Trial(values, seed, experiment.plan(trial, out, cache), fold))
    cache.save()
    return found


def table(found, outcomes):
    """The rows of sweep.csv: id, seed, one column per swept key, final metrics,
    status, seconds."""
    rows = []
    for trial, outcome in zip(found, outcomes):
        info = folders.read_info(trial.plan.folder)
        status = info.get("status", outcome.status)
        row = {"id": trial.plan.id, "seed": trial.seed, **trial.values}
        if trial.fold is not None:
            row["fold"] = trial.fold
        row.update(info.get("metrics") or {})
        row.update(status=status, seconds=info.get("seconds"))
        rows.append(row)
    return rows


def ranking(rows, keys, metric, mode):
    """Rows grouped by swept values (over seeds), ranked by the mean of `metric`:
    [(values, mean, std, n)]."""
    groups = {}
    for row in rows:
        value = row.get(metric)
        if row["status"] == "complete" and isinstance(value, (int, float)):
            groups.setdefault(tuple(row.get(k) for k in keys), []).append(value)
    ranked = [(dict(zip(keys, point)), float(np.mean(v)), float(np.std(v)), len(v))
              for point, v in groups.items()]
    ranked.sort(key=lambda r: r[1], reverse=(mode == "max"))
    return ranked


def write_csv(path, rows, keys):
    """sweep.csv: id, seed, swept keys, metrics (the union over trials), status, seconds."""
    fixed = ["id", "seed", *(["fold"] if any("fold" in r for r in rows) else []), *keys]
    metrics = sorted({k for r in rows for k in r} - set(fixed) - {"status", "seconds"})
    columns = fixed + metrics + ["status", "seconds"]
    atomic.write_csv(path, columns, rows)


@dataclass
class SweepResult:
    """What a sweep did: its folder (<out>/<name>), the trials and their outcomes (in
    trial order), the rows of sweep.csv, and the ranking of the swept points."""

    folder: str
    trials: list
    outcomes: list
    rows: list
    keys: list  # the swept dotted paths
    metric: str
    mode: str
    ranked: list = field(default_factory=list)  # [(values, mean, std, n)], best first

    @property
    def ran(self):
        return sum(o.status != "skipped" for o in self.outcomes)

    @property
    def failed(self):
        return sum(r["status"] == "failed" for r in self.rows)

    def spread(self):
        """{metric: (mean, std, n)} of every metric over the complete trials (over folds
        and seeds), in sweep.csv's column order."""
        done = [r for r in self.rows if r["status"] == "complete"]
        names = [k for k in dict.fromkeys(k for r in done for k in r)
                 if k not in ("id", "seed", "fold", "status", "seconds", "epochs", "best_epoch")
                 and k not in self.keys]
        out = {}
        for name in names:
            values = [r[name] for r in done if isinstance(r.get(name), (int, float))]
            if values:
                out[name] = (float(np.mean(values)), float(np.std(values)), len(values))
        return out


def execute(config, out="runs", force=False, workers=1, scheduler=None, on_trial=None,
            restart=False, threads=None):
    """Run every trial of a swept config (skipping complete ones unless force; rung by
    rung under sweep.halving, runner/runs/halving.py), then write <out>/<name>/sweep.csv
    (and sweep.png with matplotlib). Returns a SweepResult.
    `threads`: BLAS threads per trial (default: parallel.run's choice)."""
    found = trials(config, out)
    if config.sweep is not None and config.sweep.halving is not None:
        outcomes = halving.run(config, found, force, workers, scheduler, on_trial, restart,
                               threads)
    else:
        outcomes = parallel.run(found, force, workers, scheduler, on_trial, restart, threads)
    return summarize(config, out, found, outcomes)


def summarize(config, out, found, outcomes):
    """The SweepResult of finished trials, with sweep.csv (and sweep.png) written."""
    keys = list(found[0].values) if found else []
    rows = table(found, outcomes)
    folder = os.path.join(out, config.name)
    write_csv(os.path.join(folder, "sweep.csv"), rows, keys)
    metric, mode = _goal(config)
    plot(os.path.join(folder, "sweep.png"), rows, keys, metric)
    return SweepResult(folder, found, outcomes, rows, keys, metric, mode,
                       ranking(rows, keys, metric, mode))


def plot(path, rows, keys, metric):
    """sweep.png: the metric against each swept value (runner/io/plot.py), one panel per
    swept key, over the complete trials with a finite metric."""
    from runner.io.plot import sweep_png

    done = [r for r in rows if r["status"] == "complete" and isinstance(r.get(metric), float)
            and math.isfinite(r[metric])]
    if not done or not keys:
        return
    panels = [(key, [r[key] for r in done], [r[metric] for r in done]) for key in keys]
    atomic.write_bytes(path, sweep_png(panels, metric))
