"""The arrays of a fit, from the config's data section (docs/data.md): read, split into
training and validation rows, encode the features and the targets, scale.

The features are held once: the validation rows are split off in place (rows.partition)
or, for a memory-mapped .npy (data.memory), read on demand through index sets (rows.Rows).

Everything learned is learned from the training rows and kept in `Prepared.preprocess`
(the run's preprocess.json) so that predictions replay it: the column plan of typed
features (runner/io/preprocess.py), the label pair of a binary target, the scaling of
regression targets. Numeric features listed by name keep their scaling in weights.npz.
"""

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from runner import vocabulary
from runner.errors import DataError, count, did_you_mean, located
from runner.io import data, preprocess, rows, table
from runner.runs.build import check_inputs, generators

NAMED = (".csv", ".tsv", ".txt", ".parquet")  # formats whose columns have names


@dataclass
class Prepared:
    """The arrays of a fit. X (n, inputs), Y (n, outputs), val: (X_val, Y_val) or None
    (X and X_val: views of one array, or rows.Rows of a memory-mapped .npy);
    scaler: the scaling of listed numeric features (none for typed ones, which the plan
    scales); classes (K,) str or None; preprocess: the content of preprocess.json, or
    None when the run learned nothing beyond weights.npz."""

    X: np.ndarray
    Y: np.ndarray
    val: tuple | None
    scaler: data.Scaler
    classes: np.ndarray | None
    feature_names: list
    target_names: list
    preprocess: dict | None = None
    plan: list = field(default_factory=list)  # the input plan: one row per feature column
    weights: np.ndarray | None = None  # (n,) row weights of the training rows, or None


def n_inputs(config):
    """model.inputs, or the width of the data's features: read from the header, or for
    typed columns the width of the plan learned from the training rows."""
    if config.model.inputs is not None:
        return config.model.inputs
    d = config.data
    if d.column_types() is not None and config.train is not None:
        return training_data(config, generators(config.seed)[1]).X.shape[1]
    with _located(config, "data.path"):
        return data.inspect(d.path, features=d.features, targets=d.targets,
                            targets_path=d.targets_path, dialect=dialect(config)).n_features


def classifier(loss):
    """The output activation a loss wants (sigmoid, softmax), None for a regression loss."""
    return vocabulary.find(vocabulary.LOSSES, loss).output


def training_data(config, split_rng):
    """Read, split, encode and scale the data of a fit: a Prepared."""
    d = config.data
    typed = d.column_types()
    state = val = None
    if typed is not None:
        raw, Y, classes, pair = _typed(config, typed)
        names, tnames = _column_names(config, typed)
    else:
        placed = _split_first(config, split_rng)
        X, Y, classes, names, tnames, pair = _listed(config, placed)
    _check_units(config, Y, classes)
    sample = _sample_weights(config, raw if typed is not None else None, len(Y))
    train_rows = None
    if d.validation_split > 0 or d.folds is not None:
        val_rows, train_rows = (placed if typed is None and placed is not None
                                else _split(config, len(Y), split_rng))
        if typed is not None:  # the plan is learned from the training rows only
            state, X = _fit_plan(typed, raw.take(train_rows), config)
            with located("data.path"):
                X_val = preprocess.transform(state, raw.take(val_rows), config.dtype).X
            val = (X_val, Y[val_rows])
        else:
            X, X_val = _divide(X, train_rows, val_rows, placed is not None)
            val = (X_val, Y[val_rows])
        Y = Y[train_rows]
    elif typed is not None:
        state, X = _fit_plan(typed, raw, config)
    if d.validation_path is not None:
        val = _validation(config, X.shape[1], classes, state, pair)
    scaler = _scale(config, X, val) if typed is None else data.Scaler("none")
    saved = {"format": preprocess.FORMAT}
    if typed is not None or dialect_used(config):
        saved["dialect"] = dialect(config)
    if state is not None:
        saved["features"] = state
    if pair is not None:
        saved["labels"] = pair
    if classifier(config.train.loss) is None and d.target_scale != "none":
        saved["targets"], Y, val = _scale_targets(config, Y, val, tnames)
    check_inputs(config, X.shape[1], d.path)
    plan = preprocess.plan(state) if state is not None else [
        {"column": n, "type": "numeric", "width": 1, "encoded": [n]} for n in names]
    if sample is not None and train_rows is not None:
        sample = sample[train_rows]
    weights = _row_weights(config, Y, classes, sample)
    X = X if isinstance(X, rows.Rows) else np.ascontiguousarray(X)
    return Prepared(X, np.ascontiguousarray(Y), val, scaler, classes,
                    names, tnames, saved if len(saved) > 1 else None, plan, weights)


def _split_first(config, split_rng):
    """(validation rows, training rows) drawn before an array file (.npy, .npz) is read
    into memory, so that its rows are read into place, the training rows first; None
    for other files, without a split, or for a split to refuse (refused where it was)."""
    d = config.data
    if (d.validation_split == 0 and d.folds is None) or mapped(config, d.path) \
            or not d.path.lower().endswith((".npy", ".npz")):
        return None
    with _located(config, "data.path"):
        n = data.inspect(d.path, features=d.features, targets=d.targets,
                         targets_path=d.targets_path).n_rows
    state = split_rng.bit_generator.state
    try:
        return _split(config, n, split_rng)
    except DataError:
        split_rng.bit_generator.state = state
        return None


def _divide(X, train_rows, val_rows, placed=False):
    """(training rows, validation rows) of X, without a copy: Rows of the index sets for a
    memory-mapped file, else views of X once the training rows are at its front (placed
    there as the file was read, or moved there: rows.partition)."""
    if isinstance(X, rows.Rows):
        return X.subset(train_rows), X.subset(val_rows)
    if not placed:
        rows.partition(X, train_rows, val_rows)
    return X[:len(train_rows)], X[len(train_rows):]


def mapped(config, path):
    """Whether a fit reads the features of `path` through a memory map: a .npy under
    data.memory map, or auto when the file is large (data.large)."""
    memory = config.data.memory
    if memory == "load" or not path.lower().endswith(".npy"):
        return False
    return memory == "map" or data.large(path)


def _split(config, n, split_rng):
    """(validation rows, training rows), sorted: ceil(validation_split * n) rows drawn by
    the seed, or fold `fold` of `folds` (a seeded permutation cut in `folds` parts)."""
    d = config.data
    order = split_rng.permutation(n)
    if d.folds is not None:
        if d.folds > n:
            raise DataError(d.path, f"folds: {d.folds} needs at least as many rows, got {n}",
                            key="data.folds")
        parts = np.array_split(order, d.folds)
        fold = d.fold or 0
        rest = np.concatenate([p for i, p in enumerate(parts) if i != fold])
        return np.sort(parts[fold]), np.sort(rest)
    n_val = math.ceil(d.validation_split * n)
    if n_val >= n:
        raise DataError(d.path, f"validation_split {d.validation_split} of {n} rows leaves "
                        "no training rows", key="data.validation_split")
    return np.sort(order[:n_val]), np.sort(order[n_val:])


def _sample_weights(config, raw, n):
    """(n,) float64 of data.sample_weight (a column of the table), or None."""
    d = config.data
    if d.sample_weight is None:
        return None
    name = str(d.sample_weight)
    with located("data.sample_weight"):
        if raw is None:
            if not d.path.lower().endswith(NAMED):
                raise DataError(d.path, "sample_weight names a column: it needs a table "
                                f"({', '.join(NAMED)})")
            raw = table.read_table(d.path, [name], **dialect(config))
        table.refuse_missing(raw, [name], "every row needs its weight")
        w = table.numbers(raw, [name])[:, 0]
        if len(w) != n:
            raise DataError(d.path, f"{len(w)} weights for {n} rows")
        if (w < 0).any() or not w.any():
            i = int(np.flatnonzero(w < 0)[0]) if (w < 0).any() else 0
            raise DataError(d.path, f"sample weights must be >= 0 and not all 0 (column "
                            f"{name!r}: {w[i]:g})", int(raw.rows[i]))
    return w


def _row_weights(config, Y, classes, sample):
    """(n,) row weights of the training rows (Y (n, outputs)): train.class_weight times
    data.sample_weight; None when neither is set."""
    spec = config.train.class_weight
    if spec is None:
        return sample
    if Y.shape[1] > 1 and classifier(config.train.loss) == "sigmoid":
        raise DataError(config.data.path, "class_weight needs one target column under "
                        "binary_crossentropy", key="train.class_weight")
    index = np.argmax(Y, axis=1) if Y.shape[1] > 1 else (Y[:, 0] > 0.5).astype(np.intp)
    names = [str(c) for c in classes] if classes is not None else ["0", "1"]
    counts = np.bincount(index, minlength=len(names))
    if spec == "balanced":  # scikit-learn's compute_class_weight
        per_class = np.where(counts > 0, len(Y) / (len(names) * np.maximum(counts, 1)), 0.0)
    else:
        given = {str(k): float(v) for k, v in spec.items()}
        unknown = [k for k in given if k not in names]
        if unknown:
            raise DataError(config.data.path, f"class_weight names {unknown[0]!r}, which is not "
                            f"a class of the target (classes: {', '.join(names)})",
                            key="train.class_weight")
        per_class = np.array([given.get(c, 1.0) for c in names])
    w = per_class[index]
    return w if sample is None else w * sample


@contextmanager
def _located(config, key):
    """located(key), except that an error in the file of data.targets_path names that
    key (the file is read along with data.path's), and a column data.path lacks names
    the list that asked for it: data.targets or data.features."""
    try:
        with located(key):
            yield
    except DataError as e:
        d = config.data
        if d.targets_path is not None and e.path == d.targets_path:
            at = "data.targets_path"
        elif key == "data.path" and e.column is not None and e.path == d.path:
            at = ("data.targets" if e.column in _names(d.targets) else
                  "data.features" if e.column in _names(d.features) else key)
        else:
            raise
        raise DataError(e.path, e.message, e.row, at, e.column) from None


def check_prediction_source(config):
    """Before a fit: the file its predictions will be read from (predict.path, else
    data.path) holds the columns predict.keep copies and the features the fit reads (by
    name in a table, as experiment._batches finds them; by count in an array), so that a
    mistake there is found before the fit, not after it."""
    spec, source, key = config.prediction()
    keep = [str(c) for c in spec.keep or ()]
    if source == config.data.path and not keep:
        return  # the fit reads that file itself
    d, kind = config.data, dialect(config)
    typed = d.column_types()
    exclude = () if d.sample_weight is None else (str(d.sample_weight),)
    with _located(config, "data.path"):
        fitted = (_names(typed) if typed is not None else data.open_source(
            d.path, d.features, d.targets, d.targets_path, exclude=exclude,
            dialect=kind).info().feature_names)
    named = source.lower().endswith(NAMED)
    if keep and not named:
        raise DataError(source, "predict.keep copies named columns, and this file has none; "
                        f"give a table with a header ({', '.join(NAMED)})", key="predict.keep")
    by_name = d.path.lower().endswith(NAMED) or typed is not None
    with located(key):
        if not named:  # an array read as the fit's arrays were (same data.features)
            if spec.path and by_name:
                raise DataError(source, "the fit reads its features by column name, and "
                                "this file has none; give a table with a header "
                                f"({', '.join(NAMED)})")
            if spec.path:
                found = data.inspect(source, features=d.features, dialect=kind).n_features
                if found != len(fitted):
                    raise DataError(source, f"{count(found, 'feature column')}, the fit "
                                    f"reads {len(fitted)}; give the same columns in the same "
                                    "order")
            return
        names = table.read_header(source, delimiter=None if kind["header"] else kind["delimiter"],
                                  header=kind["header"], decimal=kind["decimal"])[0]
    for wanted, at in ((keep, "predict.keep"), (fitted if spec.path and by_name else [], key)):
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DataError(source, f"no column {missing[0]!r}"
                            f"{did_you_mean(missing[0], names)} (columns: {', '.join(names)})",
                            key=at)


def dialect(config):
    """The delimited-text settings of data: {delimiter, header, na_values, decimal}."""
    d = config.data
    return {"delimiter": d.delimiter, "header": d.header, "na_values": list(d.na_values),
            "decimal": d.decimal}


def dialect_used(config):
    """Whether data names other delimited-text settings than a plain CSV's."""
    return dialect(config) != {**table.PLAIN, "na_values": list(table.PLAIN["na_values"])}


# ---- features listed by name (numbers), any format --------------------------------------


def _read(config, key, labels, placed=None):
    d = config.data
    path = getattr(d, key.split(".")[1])
    with _located(config, key):
        return path, data.load(path, features=d.features, targets=d.targets,
                               targets_path=d.targets_path if key == "data.path" else None,
                               dtype=config.dtype, labels=labels, dialect=dialect(config),
                               exclude=() if d.sample_weight is None else (str(d.sample_weight),),
                               mapped=mapped(config, path), coded=True,
                               order=None if placed is None else np.concatenate(placed[::-1]))


def _wants_labels(config, key="data.path"):
    d = config.data
    with _located(config, key):
        info = data.inspect(d.path, features=d.features, targets=d.targets,
                            targets_path=d.targets_path, dialect=dialect(config))
    return classifier(config.train.loss) is not None and info.n_targets == 1


def _listed(config, placed=None):
    """X, Y, classes, feature names, target names and the label pair of listed columns;
    placed: (validation rows, training rows) for X to hold the training rows first."""
    labels = _wants_labels(config)
    path, ds = _read(config, "data.path", labels, placed)
    with located("data.path"):
        classes, Y, pair = _code_targets(config, ds, path)
    return ds.X, Y, classes, ds.feature_names, ds.target_names, pair


def _code_targets(config, ds, path, classes=None, pair=None):
    """(classes, Y, label pair) of a dataset: labels one-hot (softmax) or coded 0/1
    (sigmoid), or numeric targets. Labels are coded once per distinct value, then Y is
    gathered row by row; a mistake is reported from the rows themselves (its row)."""
    if ds.labels is None:
        if ds.Y is None:
            raise DataError(path, "a fit needs targets: set data.targets (or data.targets_path)")
        if classifier(config.train.loss) == "sigmoid":
            _check_binary_columns(ds.Y, ds.target_names, path)
        return None, ds.Y, None
    labels = data.Labels.of(ds.labels)
    try:
        classes, Y, pair = _code_labels(config, ds, labels.values, path, classes, pair)
    except DataError:
        _code_labels(config, ds, labels.rows(), path, classes, pair)  # names the row
        raise
    return classes, np.take(Y, labels.codes, axis=0), pair  # (n, K) or (n, 1)


def _code_labels(config, ds, labels, path, classes, pair):
    """(classes, Y (len(labels), K or 1), label pair) of the labels (m,) str."""
    name = ds.target_names[0] if ds.target_names else "y0"
    first = 2 if config.data.header and path.lower().endswith(NAMED) else 1
    _refuse_odd_labels(labels, name, path, first)
    if classifier(config.train.loss) == "sigmoid":
        labels = table.from_columns(path, {name: labels}, first)
        pair = pair or preprocess.fit_labels(labels, name)
        Y = preprocess.encode_labels(pair, labels, config.dtype)
        plain = pair["kind"] == "number" and pair["values"] == [0, 1]
        return (None if plain else np.array([str(v) for v in pair["values"]])), Y, pair
    _refuse_continuous(labels, name, path, config)
    classes, Y = data.encode_labels(labels, classes=classes, dtype=config.dtype, path=path,
                                    first_row=first)
    return classes, Y, None


def _refuse_odd_labels(labels, name, path, first):
    """An empty class label, or one that reads as a non-finite number, is a mistake."""
    lowered = np.char.lower(np.char.strip(labels))
    bad = np.flatnonzero((lowered == "") | np.isin(lowered, ("nan", "inf", "+inf", "-inf",
                                                             "infinity", "-infinity")))
    if len(bad):
        i = int(bad[0])
        what = "empty value" if not lowered[i] else f"non-finite value {str(labels[i])!r}"
        raise DataError(path, f"{what} in column {name}", first + i)


def _check_binary_columns(Y, names, path):
    """binary_crossentropy over several target columns: each must hold 0 and 1 only."""
    bad = ~np.isin(Y, (0.0, 1.0))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(path, f"target column {names[j]!r} holds {Y[i, j]:g}: with several "
                        "target columns, binary_crossentropy needs each to be 0 or 1")


def _refuse_continuous(labels, name, path, config):
    """A categorical_crossentropy target of non-integer numbers is a regression target."""
    x, bad = table.parse_numbers(np.unique(labels))
    if not bad.any() and (x != np.round(x)).any():
        raise DataError(path, f"target {name!r} holds non-integer numbers ({len(x)} distinct "
                        "values): categorical_crossentropy needs class labels; for a continuous "
                        "target use loss mse with an identity output layer of one unit")


def _check_units(config, Y, classes):
    units, last = config.model.layers[-1].units, len(config.model.layers) - 1
    if Y.shape[1] == units:
        return
    what = (f"{len(classes)} classes ({', '.join(map(str, classes[:10]))})"
            if classes is not None and classifier(config.train.loss) == "softmax"
            else f"{Y.shape[1]} target columns")
    raise DataError(config.data.path, f"the targets have {what} but the output layer has "
                    f"{units} units: set model.layers.{last}.units: {Y.shape[1]}",
                    key="data.targets")


def _validation(config, width, classes, state, pair):
    """(X_val, Y_val) from data.validation_path, encoded as the training rows are."""
    d = config.data
    if state is not None:
        raw = _read_table(config, d.validation_path)
        with located("data.validation_path"):
            X = preprocess.transform(state, raw, config.dtype).X
            ds = _table_dataset(config, raw, X)
            Y = _code_targets(config, ds, d.validation_path, classes, pair)[1]
        return X, Y
    path, vs = _read(config, "data.validation_path", _wants_labels(config))
    with located("data.validation_path"):
        if vs.X.shape[1] != width:
            raise DataError(path, f"has {count(vs.X.shape[1], 'feature column')}, the training data "
                            f"{width}")
        return vs.X, _code_targets(config, vs, path, classes, pair)[1]


def _scale(config, X, val):
    """Scale listed numeric features in place by data.scale, from the training rows (Rows:
    as they are read)."""
    d = config.data
    with np.errstate(all="ignore"):
        scaler = data.Scaler.fit(d.scale, X)
    if not all(np.isfinite(a).all() for a in scaler.arrays().values()):
        raise DataError(d.path, f"the features are too large to scale: their {d.scale} "
                        "statistics overflow float64; rescale the values in the file",
                        key="data.scale")
    for part in (X,) if val is None else (X, val[0]):
        if isinstance(part, rows.Rows):  # scaled as its rows are read
            part.scaler = scaler
        else:
            scaler.apply(part)
    return scaler


def _scale_targets(config, Y, val, names):
    """Regression targets on data.target_scale, learned from the training rows."""
    with located("data.target_scale"):
        state = preprocess.fit_target_scale(config.data.target_scale, Y, names,
                                            config.data.path)
    Y = preprocess.encode_targets(state, Y, config.dtype)
    if val is not None:
        val = (val[0], preprocess.encode_targets(state, val[1], config.dtype))
    return state, Y, val


# ---- typed columns: a delimited table encoded by a learned plan -----------------------


def _names(value) -> list[str]:
    """The column names of data.features or data.targets: one name, a list, a mapping's
    keys (typed columns) or None (none)."""
    return [str(value)] if isinstance(value, (str, int)) else [str(v) for v in value or ()]


def _column_names(config, typed):
    """(feature names, target names) of typed columns."""
    return _names(typed), _names(config.data.targets)


def _read_table(config, path):
    ext = os.path.splitext(path)[1].lower()
    if ext not in NAMED:
        raise DataError(path, f"typed columns (data.features as a mapping) need a table with "
                        f"named columns ({', '.join(NAMED)}), not {ext or 'a file without extension'}")
    features, targets = _column_names(config, config.data.column_types())
    extra = [] if config.data.sample_weight is None else [str(config.data.sample_weight)]
    return table.read_table(path, list(dict.fromkeys(features + targets + extra)),
                            **dialect(config))


def _table_dataset(config, raw, X):
    """A data.Dataset over the target columns of a raw table (features already encoded)."""
    features, targets = _column_names(config, config.data.column_types())
    if not targets:
        raise DataError(raw.path, "a fit needs targets: set data.targets")
    table.refuse_missing(raw, targets, "every row needs its target")
    if classifier(config.train.loss) is not None and len(targets) == 1:
        return data.Dataset(X, None, raw.values[targets[0]], features, targets)
    return data.Dataset(X, np.ascontiguousarray(table.numbers(raw, targets), config.dtype),
                        None, features, targets)


def _specs(typed, config):
    """{column: spec dict} for runner/io/preprocess.py; a numeric column's scale defaults
    to data.scale."""
    specs = {}
    for name, spec in typed.items():
        s = spec.model_dump()
        if s["type"] == "numeric" and s["scale"] is None:
            s["scale"] = config.data.scale
        specs[str(name)] = s
    return specs


def _fit_plan(typed, raw, config):
    """(state, X) of the plan learned from the rows of `raw` (rows dropped by drop_row are
    dropped before: see _typed)."""
    with located("data.features"):
        state, encoded = preprocess.fit_transform(_specs(typed, config), raw, config.dtype)
    return state, encoded.X


def _typed(config, typed):
    """(raw table, Y, classes, label pair): the whole table read, the rows that drop_row
    columns leave out dropped (before any split), the targets coded. The plan itself is
    fitted on the training rows later."""
    path = config.data.path
    raw = _read_table(config, path)
    drop = [str(n) for n, s in typed.items() if s.missing == "drop_row"]
    if drop:
        kept = ~np.any([raw.missing[n] for n in drop], axis=0)
        if not kept.any():
            raise DataError(path, f"every row has a missing cell in a drop_row column "
                            f"({', '.join(drop)})")
        raw = raw.take(np.flatnonzero(kept))
    ds = _table_dataset(config, raw, None)
    with located("data.path"):
        classes, Y, pair = _code_targets(config, ds, path)
    return raw, Y, classes, pair
