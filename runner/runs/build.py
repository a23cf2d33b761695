"""The one bridge from a validated config to engine objects: random generators, the
network, its initial weights, the optimizer and the prepared data arrays."""

import math
import os
from dataclasses import dataclass

import numpy as np

from runner.engine.network import Network
from runner.engine.optimizers import OPTIMIZERS
from runner.errors import DataError, UserError, located
from runner.io import data, weights
from schemas.config import MAX_PARAMETER_BYTES


def _params(spec):
    """(name, {param: value}) of a validated `{name: ...}` spec."""
    return spec.name, spec.model_dump(exclude={"name"})


def generators(seed):
    """Independent generators for initialization, the validation split and the shuffle,
    all derived from the run's one seed: (init_rng, split_rng, shuffle_rng)."""
    return tuple(np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))


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


def is_csv(path):
    return os.path.splitext(path)[1].lower() == ".csv"


def n_inputs(config):
    """model.inputs, or the width of the data's features (read from its header)."""
    if config.model.inputs is not None:
        return config.model.inputs
    d = config.data
    with located("data.path"):
        return data.inspect(d.path, features=d.features, targets=d.targets,
                            targets_path=d.targets_path).n_features


def check_inputs(config, n_features, source):
    if config.model.inputs is not None and config.model.inputs != n_features:
        raise UserError(
            f"{config.model.inputs} does not match the {n_features} feature columns of "
            f"{source}; set model.inputs: {n_features} or remove it", "model.inputs")


@dataclass
class Prepared:
    """The arrays of a fit. X (n, inputs), Y (n, outputs), val: (X_val, Y_val) or None."""

    X: np.ndarray
    Y: np.ndarray
    val: tuple | None
    scaler: data.Scaler
    classes: np.ndarray | None
    feature_names: list
    target_names: list


def _read(config, key, labels, targets_path=None):
    d = config.data
    with located(key):
        return data.load(getattr(d, key.split(".")[1]), features=d.features, targets=d.targets,
                         targets_path=targets_path, dtype=config.dtype, labels=labels)


def _targets(config, ds, classes, path):
    """Y (n, outputs) of a dataset: one-hot labels or numeric targets."""
    if ds.labels is not None:
        return data.encode_labels(ds.labels, classes=classes, dtype=config.dtype, path=path,
                                  first_row=2 if is_csv(path) else 1)
    if ds.Y is None:
        raise DataError(path, "a fit needs targets: set data.targets (or data.targets_path)")
    return None, ds.Y


def training_data(config, split_rng):
    """Read, split, encode and scale the data of a fit (docs/data.md)."""
    d, units = config.data, config.model.layers[-1].units
    with located("data.path"):
        info = data.inspect(d.path, features=d.features, targets=d.targets,
                            targets_path=d.targets_path)
    labels = config.train.loss == "categorical_crossentropy" and info.n_targets == 1
    ds = _read(config, "data.path", labels, d.targets_path)
    check_inputs(config, ds.X.shape[1], d.path)
    with located("data.path"):
        classes, Y = _targets(config, ds, None, d.path)
    if Y.shape[1] != units:
        what = f"{len(classes)} classes ({', '.join(map(str, classes[:10]))})" if labels else (
            f"{Y.shape[1]} target columns")
        raise DataError(d.path, f"the targets have {what} but the output layer has {units} "
                        f"units: set model.layers.{len(config.model.layers) - 1}.units: {Y.shape[1]}",
                        key="data.targets")
    X, val = ds.X, None
    if d.validation_path is not None:
        vs = _read(config, "data.validation_path", labels)
        with located("data.validation_path"):
            if vs.X.shape[1] != X.shape[1]:
                raise DataError(d.validation_path, f"has {vs.X.shape[1]} feature columns, "
                                f"the training data {X.shape[1]}")
            val = (vs.X, _targets(config, vs, classes, d.validation_path)[1])
    elif d.validation_split > 0:
        n = X.shape[0]
        n_val = math.ceil(d.validation_split * n)
        if n_val >= n:
            raise DataError(d.path, f"validation_split {d.validation_split} of {n} rows leaves "
                            "no training rows", key="data.validation_split")
        order = split_rng.permutation(n)
        val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
        val = (X[val_rows], Y[val_rows])
        X, Y = X[train_rows], Y[train_rows]
    with np.errstate(all="ignore"):
        scaler = data.Scaler.fit(d.scale, X)
    if not all(np.isfinite(a).all() for a in scaler.arrays().values()):
        raise DataError(d.path, f"the features are too large to scale: their {d.scale} "
                        "statistics overflow float64; rescale the values in the file",
                        key="data.scale")
    scaler.apply(X)
    if val is not None:
        scaler.apply(val[0])
    return Prepared(np.ascontiguousarray(X), np.ascontiguousarray(Y), val, scaler, classes,
                    ds.feature_names, ds.target_names)
