"""Sweeps: a grid and/or seeded random samples, crossed with seeds; every trial is an
ordinary run in its own content-addressed folder, so a rerun resumes where it stopped.

Randomness comes only from each trial's own resolved config, never from the order or
the process a trial runs in, so results do not depend on --workers or the scheduler.
"""

import copy
import itertools
import math
from dataclasses import dataclass

import numpy as np

from runner.errors import RunFailed, UserError
from runner.io import atomic
from runner.io.digests import DigestCache
from runner.runs import experiment, folders


@dataclass
class Trial:
    values: dict  # {dotted path: value} of the swept keys
    seed: int
    plan: experiment.Plan


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


def trials(config, out):
    """Every trial of a swept config, validated before any runs: [Trial]. A trial whose
    resolved config does not validate is a UserError naming its values."""
    from schemas import ConfigError, load_config_dict, set_path

    base = config.model_dump(mode="json")
    base.pop("sweep")
    seeds = config.sweep.seeds or [config.seed]
    cache = DigestCache(out)
    found = []
    for values in points(config.sweep, config.seed):
        for seed in seeds:
            tree = copy.deepcopy(base)
            for path, value in values.items():
                set_path(tree, path, value)
            tree["seed"] = seed
            try:
                trial = load_config_dict(tree, source=f"sweep trial {values} seed {seed}")
            except ConfigError as e:
                raise UserError(str(e)) from None
            found.append(Trial(values, seed, experiment.plan(trial, out, cache)))
    cache.save()
    return found


def run_trial(plan, force=False):
    """Run one trial where it stands; a failed fit is an outcome, not an exception."""
    try:
        return experiment.execute(plan, force=force)
    except RunFailed as e:
        return experiment.Outcome(plan.folder, plan.id, "failed", error=str(e))


def run(found, force=False, workers=1, scheduler=None, on_trial=None):
    """Run the trials (skipping complete ones unless force) sequentially, in `workers`
    local processes, or on the Dask scheduler at `scheduler`. [Outcome] in trial order."""
    from runner.runs import parallel

    if scheduler:
        return parallel.on_dask(found, scheduler, force, on_trial)
    if workers > 1:
        return parallel.in_processes(found, workers, force, on_trial)
    outcomes = []
    for trial in found:
        outcomes.append(run_trial(trial.plan, force))
        if on_trial:
            on_trial(outcomes[-1])
    return outcomes


def table(found, outcomes):
    """The rows of sweep.csv: id, seed, one column per swept key, final metrics,
    status, seconds."""
    rows = []
    for trial, outcome in zip(found, outcomes):
        info = folders.read_info(trial.plan.folder)
        status = info.get("status", outcome.status)
        row = {"id": trial.plan.id, "seed": trial.seed, **trial.values}
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
    import csv
    import io

    fixed = ["id", "seed", *keys]
    metrics = sorted({k for r in rows for k in r} - set(fixed) - {"status", "seconds"})
    columns = fixed + metrics + ["status", "seconds"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()})
    atomic.write_text(path, buffer.getvalue())


def format_ranking(ranked, metric, mode):
    """The ranked table as text: rank, swept values, mean ± std of the metric, seeds."""
    if not ranked:
        return f"no complete trial reports {metric}"
    keys = list(ranked[0][0])
    head = ["rank", *keys, f"{metric} ({mode})", "± std", "seeds"]
    body = [[str(i), *(str(v[k]) for k in keys), f"{m:.6g}", f"{s:.2g}", str(n)]
            for i, (v, m, s, n) in enumerate(ranked, start=1)]
    widths = [max(len(r[j]) for r in [head] + body) for j in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in [head] + body)


def plot(path, rows, keys, metric):
    """sweep.png: the metric against each swept value, when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    done = [r for r in rows if r["status"] == "complete" and isinstance(r.get(metric), float)]
    if not done or not keys:
        return
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.5), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = [r[key] for r in done]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        ax.scatter(values if numeric else [str(v) for v in values], [r[metric] for r in done])
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
