"""The one bridge from a validated config to engine objects: random generators, the
network, its initial weights, the optimizer and the prepared data arrays."""

import os

import numpy as np

# numpy 2 loads these submodules on first use; a Ctrl-C landing in that import is lost
# (numpy.random) or prints an 'Exception ignored' traceback (numpy.char): load them now
import numpy.char  # noqa: F401, E402
import numpy.random  # noqa: F401, E402

from runner.engine import schedules
from runner.engine.network import Network
from runner.engine.optimizers import OPTIMIZERS
from runner.errors import UserError, count, located
from runner.io import weights
from runner.vocabulary import monitor_mode
from schemas.config import MAX_PARAMETER_BYTES


def _params(spec):
    """(name, {param: value}) of a validated `{name: ...}` spec."""
    return spec.name, spec.model_dump(exclude={"name"})


def generators(seed):
    """Independent generators for initialization, the validation split and the shuffle,
    all derived from the run's one seed: (init_rng, split_rng, shuffle_rng)."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


def dropout_generator(seed):
    """The generator of dropout masks: the seed's fourth child (the first three, those of
    `generators`, do not depend on how many are spawned)."""
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(4)[3])


def network(config, n_inputs):
    """The Network of `config.model` for inputs of width n_inputs (weights not set)."""
    layers = config.model.layers
    sizes = [n_inputs] + [layer.units for layer in layers]
    budget_check(sizes, layers, config.dtype)
    return Network(
        sizes,
        [_params(layer.activation) for layer in layers],
        [layer.bias for layer in layers],
        config.dtype,
        dropout=[layer.dropout for layer in layers],
        penalties=[(layer.l1, layer.l2) for layer in layers],
    )


def budget_check(sizes, layers, dtype):
    count = sum((a + int(layer.bias)) * b for a, b, layer in zip(sizes, sizes[1:], layers))
    size = count * np.dtype(dtype).itemsize
    if size > MAX_PARAMETER_BYTES:
        raise UserError(
            f"the network would hold {count:,} parameters ({size / 1024**3:.1f} GiB); "
            f"the limit is {MAX_PARAMETER_BYTES // 1024**3} GiB", "model.layers")


MAX_BUFFER_BYTES = 2 * 1024**3  # the work buffers of one minibatch


def buffer_check(config, batch, knob, fmt=None):
    """Refuse, before anything is allocated, a minibatch of `batch` rows whose work
    buffers would exceed MAX_BUFFER_BYTES: Z, A and dA (batch, units) for every layer,
    plus about 40 bytes per output value when predictions are formatted as CSV. `knob`
    names the setting that sets the batch size, for the message (None: no setting)."""
    units = [layer.units for layer in config.model.layers]
    per_row = 3 * sum(units) * np.dtype(config.dtype).itemsize
    per_row += 40 * units[-1] if fmt == "csv" else 0
    if batch * per_row <= MAX_BUFFER_BYTES:
        return
    most = MAX_BUFFER_BYTES // per_row
    advice = f"set {knob} to at most {most:,} or use fewer units" if most and knob else (
        "use fewer units")
    raise UserError(f"a minibatch of {batch:,} rows through {sum(units):,} units needs "
                    f"{batch * per_row / 1024**3:,.1f} GiB of work buffers, over the "
                    f"{MAX_BUFFER_BYTES // 1024**3} GiB limit; {advice}", "model.layers")


def row_bound(path):
    """At most how many rows the data file at `path` can hold (a row takes two bytes at
    least), so that a large batch size over a small file is not refused."""
    try:
        return max(1, os.path.getsize(path) // 2)
    except OSError:
        return 1  # a missing file is reported when it is read


def initial_weights(net, config, rng):
    """Draw the weights from `rng`, or load them from model.weights. Returns the arrays
    of the weights file (for its scaling statistics and classes), or {}."""
    net.initialize(rng, [(_params(la.init), _params(la.bias_init)) for la in config.model.layers])
    if config.model.weights is None:
        return {}
    with located("model.weights"):
        arrays = weights.load(config.model.weights)
        net.load_state(arrays, source=config.model.weights)
    return arrays


def optimizer(config, net):
    name, params = _params(config.train.optimizer)
    return OPTIMIZERS[name](net.params, **params)


def schedule(config, optimizer):
    """The learning-rate schedule of train.schedule and train.warmup, or None."""
    spec = config.train
    if spec.schedule is None and spec.warmup is None:
        return None
    named = None if spec.schedule is None else _params(spec.schedule)
    warm = None if spec.warmup is None else (spec.warmup.epochs, spec.warmup.start_factor)
    mode = monitor_mode(spec.schedule.monitor) if named and named[0] == "plateau" else None
    return schedules.make(optimizer.lr, named, warm, mode)


def clip(config):
    """("norm", c), ("value", c) or None, from train.clip."""
    c = config.train.clip
    return None if c is None else ("norm", c.norm) if c.norm is not None else ("value", c.value)


def check_inputs(config, n_features, source):
    if config.model.inputs is not None and config.model.inputs != n_features:
        raise UserError(
            f"{config.model.inputs} does not match the {count(n_features, 'feature column')} of "
            f"{source}; set model.inputs: {n_features} or remove it", "model.inputs")
