"""Learning-rate schedules, stepped once per epoch, as torch.optim.lr_scheduler's are.

A schedule is a small object: `lr` is the rate of the coming epoch; `step(metrics)`
moves to the next epoch (metrics: the epoch's history row, read by `plateau` only);
`state()` / `load(state)` save and restore it as plain data (for resumable fits). The
formulas are PyTorch's recursive ("chainable") forms, so that the rates agree with
PyTorch's to the last bit:

    step         lr = base * gamma ** (epoch // step_size)
    multistep    lr = base * gamma ** (number of milestones <= epoch)
    exponential  lr = lr * gamma
    cosine       CosineAnnealingLR(t_max, eta_min)
    plateau      ReduceLROnPlateau(mode, factor, patience, threshold (rel), cooldown, min_lr)
    warmup       LinearLR(start_factor, 1, epochs), then the schedule from its epoch 0
"""

import math


class _Schedule:
    def __init__(self, base):
        self.base, self.lr, self.epoch = base, base, 0

    def state(self):
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def load(self, state):
        vars(self).update(state)


class Constant(_Schedule):
    def step(self, metrics=None):
        self.epoch += 1


class Step(_Schedule):
    def __init__(self, base, step_size, gamma=0.1):
        super().__init__(base)
        self.step_size, self.gamma = step_size, gamma

    def step(self, metrics=None):  # StepLR.get_lr
        self.epoch += 1
        if self.epoch % self.step_size == 0:
            self.lr = self.lr * self.gamma


class MultiStep(_Schedule):
    def __init__(self, base, milestones, gamma=0.1):
        super().__init__(base)
        self.milestones, self.gamma = sorted(milestones), gamma

    def step(self, metrics=None):  # MultiStepLR.get_lr: gamma ** (times listed)
        self.epoch += 1
        self.lr = self.lr * self.gamma ** self.milestones.count(self.epoch)


class Exponential(_Schedule):
    def __init__(self, base, gamma):
        super().__init__(base)
        self.gamma = gamma

    def step(self, metrics=None):
        self.epoch += 1
        self.lr = self.lr * self.gamma


class Cosine(_Schedule):
    def __init__(self, base, t_max, eta_min=0.0):
        super().__init__(base)
        self.t_max, self.eta_min = t_max, eta_min

    def step(self, metrics=None):  # CosineAnnealingLR.get_lr
        self.epoch += 1
        t, T, lo = self.epoch, self.t_max, self.eta_min
        if (t - 1 - T) % (2 * T) == 0:
            self.lr = self.lr + (self.base - lo) * (1 - math.cos(math.pi / T)) / 2
        else:
            self.lr = ((1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                       * (self.lr - lo) + lo)


class Plateau(_Schedule):
    """ReduceLROnPlateau: `monitor` (a history column), its mode from the vocabulary."""

    def __init__(self, base, monitor, mode, factor=0.1, patience=10, threshold=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__(base)
        self.monitor, self.mode, self.factor, self.patience = monitor, mode, factor, patience
        self.threshold, self.cooldown, self.min_lr = threshold, cooldown, min_lr
        self.best, self.bad, self.cooling = None, 0, 0

    def _better(self, value):
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best * (1 - self.threshold)
        return value > self.best * (1 + self.threshold)

    def step(self, metrics=None):
        self.epoch += 1
        value = float(metrics[self.monitor])
        if self._better(value):
            self.best, self.bad = value, 0
        else:
            self.bad += 1
        if self.cooling > 0:
            self.cooling -= 1
            self.bad = 0
        if self.bad > self.patience:
            new = max(self.lr * self.factor, self.min_lr)
            if self.lr - new > 1e-8:
                self.lr = new
            self.cooling, self.bad = self.cooldown, 0


class Warmup(_Schedule):
    """LinearLR(start_factor, 1.0, epochs) for the first `epochs` epochs, then `after`
    (a schedule of the same base rate) from its own epoch 0."""

    def __init__(self, base, epochs, start_factor, after):
        super().__init__(base)
        self.epochs, self.start_factor, self._after = epochs, start_factor, after
        self.lr = base * start_factor

    def state(self):
        return {**super().state(), "after": self._after.state()}

    def load(self, state):
        state = dict(state)
        self._after.load(state.pop("after"))
        super().load(state)

    def step(self, metrics=None):
        self.epoch += 1
        if self.epoch <= self.epochs:  # LinearLR.get_lr
            s, n, t = self.start_factor, self.epochs, self.epoch
            self.lr = self.lr * (1.0 + (1.0 - s) / (n * s + (t - 1) * (1.0 - s)))
            if self.epoch == self.epochs:
                self.lr = self._after.lr
        else:
            self._after.step(metrics)
            self.lr = self._after.lr


SCHEDULES = {"step": Step, "multistep": MultiStep, "exponential": Exponential, "cosine": Cosine,
             "plateau": Plateau}


def make(base, spec=None, warmup=None, mode=None):
    """The schedule of a base rate: spec (name, {param: value}) or None (constant); warmup
    (epochs, start_factor) or None; mode ("min" | "max") of a plateau's monitor."""
    if spec is None:
        schedule = Constant(base)
    else:
        name, params = spec
        if name == "plateau":
            params = {**params, "mode": mode}
        schedule = SCHEDULES[name](base, **params)
    if warmup is not None:
        schedule = Warmup(base, warmup[0], warmup[1], schedule)
    return schedule
