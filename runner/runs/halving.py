"""Successive halving (`sweep.halving: {min_epochs, factor}`): every trial runs
min_epochs epochs; the best ceil(n / factor) by sweep.metric go on to min_epochs *
factor, and so on, the last rung running the survivors to train.epochs.

Rungs are synchronous: each is one batch of trials through parallel.run, halted fits
keep their checkpoint (run.json status `halted`, `halted_at`: the epoch) and promoted
ones go on from it. A trial's score at a rung is sweep.metric in its history.csv row of
that epoch (its last row when it stopped early; the best epoch's row when early stopping
restores the best weights); failed trials and missing values rank last, and ties go to
the smaller trial id. Decisions read only the trials' files, so they and the bytes do
not depend on --workers, Dask or timing, and a rerun recomputes nothing already done.
"""

import csv
import math
import os

from runner.runs import folders, parallel
from runner.vocabulary import monitor_mode


def rungs(n, min_epochs, factor, epochs):
    """[(epochs, trials)] of each rung for n trials: min_epochs, min_epochs * factor,
    ... below `epochs`, then `epochs`; each rung keeps ceil(previous / factor) trials."""
    plan, at, keep = [], min_epochs, n
    while at < epochs:
        plan.append((at, keep))
        at, keep = at * factor, math.ceil(keep / factor)
    return plan + [(epochs, keep)]


def plan(config, n):
    """The rungs of a halving sweep of n trials: [(epochs, trials)]."""
    spec = config.sweep.halving
    return rungs(n, spec.min_epochs, spec.factor, config.train.epochs)


def score(folder, epoch, metric, stop_rule=None):
    """`metric` of the weights the run at `folder` keeps after `epoch` epochs, read from
    its history.csv: the row of that epoch (the last one when the fit stopped before),
    or under early_stopping `stop_rule` with restore_best the row of the best epoch so
    far by its monitor, as the fit decides it. None for a failed or unreadable run."""
    if folders.read_status(folder) not in ("complete", "halted"):
        return None
    try:
        with open(os.path.join(folder, "history.csv"), newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= epoch]
        kept = _kept(rows, stop_rule) if stop_rule and stop_rule.restore_best else rows[-1]
        value = float(kept[metric])
    except (OSError, KeyError, IndexError, ValueError):
        return None
    return None if math.isnan(value) else value


def _kept(rows, rule):
    """The history row whose weights early stopping keeps (train.fit's rule)."""
    mode, best, kept = monitor_mode(rule.monitor), None, None
    for row in rows:
        value = float(row[rule.monitor])
        if best is None or (value < best - rule.min_delta if mode == "min"
                            else value > best + rule.min_delta):
            best, kept = value, row
    return kept


def best(found, chosen, epoch, metric, mode, keep):
    """The `keep` best of the trials at indices `chosen` after `epoch` epochs, in trial
    order: by score (mode min or max), trials without one last, ties by trial id."""
    def key(i):
        p = found[i].plan
        value = score(p.folder, epoch, metric, p.config.train.early_stopping)
        if value is None:
            return (1, 0.0, found[i].plan.id)
        return (0, value if mode == "min" else -value, found[i].plan.id)

    return sorted(sorted(chosen, key=key)[:keep])


def run(config, found, force=False, workers=1, scheduler=None, on_trial=None, restart=False,
        threads=None):
    """Run the trials `found` rung by rung (parallel.run for each rung). [Outcome] in
    trial order: each trial's last outcome that computed something (else its last);
    on_trial(outcome) is called once per trial, when it leaves the sweep (halted for
    good, or at the end). `force` and `restart` apply to the first rung; the later ones
    go on from it."""
    outcomes, chosen, last = [None] * len(found), list(range(len(found))), None
    for number, (epochs, keep) in enumerate(plan(config, len(found))):
        if last is not None:
            going = best(found, chosen, last, config.sweep.metric, config.sweep.mode, keep)
            _report(outcomes, sorted(set(chosen) - set(going)), on_trial)
            chosen = going
        batch = [found[i] for i in chosen]
        for trial in batch:
            trial.plan.until = epochs if epochs < config.train.epochs else None
        first = number == 0
        got = parallel.run(batch, force and first, workers, scheduler, None, restart and first,
                           threads)
        for i, outcome in zip(chosen, got):
            if outcomes[i] is None or outcome.status != "skipped":
                outcomes[i] = outcome
        last = epochs
    _report(outcomes, chosen, on_trial)
    for trial in found:
        trial.plan.until = None
    return outcomes


def _report(outcomes, indices, on_trial):
    for i in indices if on_trial else ():
        on_trial(outcomes[i])
