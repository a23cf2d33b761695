"""The fit loop: epochs of shuffled minibatches, validation, early stopping.

It returns the history and prints nothing; a caller that wants progress passes
`on_epoch`, which receives each history row as it is made.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from runner.engine import kernels
from runner.engine.losses import LOSSES, METRICS
from runner.errors import RunFailed
from runner.vocabulary import monitor_mode

EVAL_BATCH = 4096


class Diverged(RunFailed):
    """The loss stopped being a finite number."""

    def __init__(self, epoch, history):
        self.epoch, self.history = epoch, history
        super().__init__(
            f"the loss is not finite at epoch {epoch}: the fit diverged; try a lower "
            "learning rate (train.optimizer.lr) or scaling the features (data.scale: standard)"
        )


@dataclass
class FitResult:
    history: list = field(default_factory=list)  # one dict per epoch
    best_epoch: int | None = None  # the epoch whose weights are kept (early stopping)
    stopped_early: bool = False
    halted: bool = False  # stopped at `until`, before spec.epochs, with a checkpoint


def evaluate(net, X, Y, loss, metrics, with_loss=True, unscale=None):
    """Loss (unless with_loss is False) and metrics of the current weights over all rows
    of X (n, inputs) and Y (n, outputs), forward in batches of EVAL_BATCH rows:
    {name: float}; the loss includes the layers' penalties, as Keras's does.
    unscale(Y) -> Y in the target's own units (new array), when the targets are scaled:
    the metrics are computed there, the loss on the scaled values."""
    n, k = Y.shape
    if n <= EVAL_BATCH:  # one batch: the network's own buffers hold everything
        A = net.forward(X[:n])  # X[:n]: the rows themselves when X is a rows.Rows
        Z = net.logits(n)
    else:
        Z = np.empty((n, k), net.dtype)  # logits of every row
        A = np.empty((n, k), net.dtype)  # outputs of every row
        for start in range(0, n, EVAL_BATCH):
            stop = min(start + EVAL_BATCH, n)
            A[start:stop] = net.forward(X[start:stop])
            Z[start:stop] = net.logits(stop - start)
    scores = {"loss": float(LOSSES[loss](Y, Z, A)) + net.penalty()} if with_loss else {}
    if unscale is not None and metrics:
        Y, A = unscale(Y), unscale(A)
    for name in metrics:
        scores[name] = float(METRICS[name](Y, A))
    return scores


def batch_rows(spec, n):
    """Rows per minibatch of a fit over n rows (`batch_size: full` is all of them)."""
    return n if spec.batch_size == "full" else min(spec.batch_size, n)


def clip_gradients(grads, clip):
    """Clip the flat gradient (P,) in place: clip = ("norm", c), as
    torch.nn.utils.clip_grad_norm_ (g *= c / (||g||_2 + 1e-6) when that is below 1), or
    ("value", c), as clip_grad_value_ (g clamped to [-c, c]); None leaves it."""
    if clip is None:
        return
    kind, c = clip
    if kind == "value":
        np.clip(grads, -c, c, out=grads)
        return
    norm = math.sqrt(float(np.dot(grads, grads)))
    coef = c / (norm + 1e-6)
    if coef < 1.0:
        grads *= coef


@dataclass
class Checkpoint:
    """Everything a fit needs to go on after `epoch` epochs (plain data and arrays):
    the parameters, the optimizer's and the schedule's state, both generators' states,
    the early-stopping counters and the history so far."""

    epoch: int
    history: list
    params: np.ndarray
    optimizer: dict
    schedule: dict
    rng: dict
    drop_rng: dict | None
    best: float | None = None
    wait: int = 0
    best_epoch: int | None = None
    best_params: np.ndarray | None = None


def fit(net, optimizer, X, Y, spec, rng, val=None, on_epoch=None, unscale=None, *,
        schedule=None, clip=None, weights=None, drop_rng=None, resume=None,
        on_checkpoint=None, due=None, until=None):
    """Fit `net` in place. X (n, inputs), Y (n, outputs); val: (X_val, Y_val) or None;
    X and X_val are arrays or anything np.take and slices read rows from (runner.io.rows);
    spec: the validated `train` section; rng: the generator that orders the rows;
    unscale: see `evaluate`; schedule: a schedules object whose `lr` each epoch uses
    (None: the optimizer's own); clip: see clip_gradients; weights (n,): row weights or
    None; drop_rng: the generator of dropout masks; resume: a Checkpoint to go on from;
    on_checkpoint(Checkpoint) is called after each epoch e (but the last) for which
    due(e) is true; until: halt after that epoch (below spec.epochs) unless stopped
    early, calling on_checkpoint whatever due says (result.halted: a successive-halving
    rung ends there, and a later fit resumed from that checkpoint goes on as if never
    halted).

    Raises Diverged (a RunFailed) when a minibatch loss is not finite."""
    n = X.shape[0]
    batch = batch_rows(spec, n)
    kernels.engage(net, optimizer, n, batch, spec.epochs)
    Xb = np.empty((batch, X.shape[1]), X.dtype)  # reused minibatch buffers
    Yb = np.empty((batch, Y.shape[1]), Y.dtype)
    Wb = None if weights is None else np.empty(batch, weights.dtype)
    net.rng = drop_rng
    stop_rule = spec.early_stopping
    mode = monitor_mode(stop_rule.monitor) if stop_rule else "min"
    best, wait = None, 0
    best_params = net.params.copy() if stop_rule and stop_rule.restore_best else None
    result, first = FitResult(), 1
    if resume is not None:
        first = _restore(resume, net, optimizer, schedule, rng, drop_rng, result, best_params)
        best, wait = resume.best, resume.wait
    last = spec.epochs
    if until is not None and first > until:  # resumed past this rung: halted where it is
        result.halted, last = True, first - 1
    for epoch in range(first, last + 1):
        started = time.perf_counter()
        if schedule is not None:
            optimizer.lr = schedule.lr
        order = rng.permutation(n) if spec.shuffle else None
        total = 0.0
        for start in range(0, n, batch):
            m = min(batch, n - start)
            wb = None
            if order is None:
                xb, yb = X[start : start + m], Y[start : start + m]
                wb = None if weights is None else weights[start : start + m]
            else:  # mode="clip": the indices are valid, and "raise" would buffer `out`
                idx = order[start : start + m]
                xb = np.take(X, idx, axis=0, out=Xb[:m], mode="clip")  # (m, inputs)
                yb = np.take(Y, idx, axis=0, out=Yb[:m], mode="clip")  # (m, outputs)
                if weights is not None:
                    wb = np.take(weights, idx, out=Wb[:m], mode="clip")  # (m,)
            value = net.train_step(xb, yb, spec.loss, wb)
            if not math.isfinite(value):
                raise Diverged(epoch, result.history)
            clip_gradients(net.grads, clip)
            optimizer.step(net.grads)
            total += value * m
        row = {"epoch": epoch, "lr": optimizer.lr, "loss": total / n}
        if spec.metrics:
            row.update(evaluate(net, X, Y, spec.loss, spec.metrics, with_loss=False,
                                unscale=unscale))
        if val is not None:
            scores = evaluate(net, val[0], val[1], spec.loss, spec.metrics, unscale=unscale)
            row.update({"val_" + key: value for key, value in scores.items()})
        if not np.isfinite(net.params).all():
            raise Diverged(epoch, result.history)
        row["seconds"] = time.perf_counter() - started
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if schedule is not None:
            schedule.step(row)
        stop = False
        if stop_rule is not None:
            value = row[stop_rule.monitor]
            better = best is None or (value < best - stop_rule.min_delta if mode == "min"
                                      else value > best + stop_rule.min_delta)
            if better:
                best, wait, result.best_epoch = value, 0, epoch
                if best_params is not None:
                    np.copyto(best_params, net.params)
            else:
                wait += 1
                stop = wait >= stop_rule.patience
        if stop:
            result.stopped_early = True
            break
        halt = until is not None and epoch == until < spec.epochs
        if on_checkpoint is not None and epoch < spec.epochs and (halt or due(epoch)):
            on_checkpoint(Checkpoint(
                epoch, [dict(r) for r in result.history], net.params.copy(), optimizer.state(),
                schedule.state() if schedule is not None else {}, rng.bit_generator.state,
                drop_rng.bit_generator.state if drop_rng is not None else None, best, wait,
                result.best_epoch, None if best_params is None else best_params.copy()))
        if halt:
            result.halted = True
            break
    if best_params is not None:
        net.params[...] = best_params
    else:
        result.best_epoch = len(result.history)
    return result


def _restore(c, net, optimizer, schedule, rng, drop_rng, result, best_params):
    """Put a fit back where Checkpoint `c` left it; returns the next epoch."""
    net.params[...] = c.params
    optimizer.load(c.optimizer)
    if schedule is not None:
        schedule.load(c.schedule)
    rng.bit_generator.state = c.rng
    if drop_rng is not None and c.drop_rng is not None:
        drop_rng.bit_generator.state = c.drop_rng
    result.history = [dict(r) for r in c.history]
    result.best_epoch = c.best_epoch
    if best_params is not None and c.best_params is not None:
        np.copyto(best_params, c.best_params)
    return c.epoch + 1
