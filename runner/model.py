"""A fitted network as a Python object: fit on arrays, load a run folder, predict with
the run's own preprocessing, save as a run folder.

    model = fit({"model": {...}, "train": {...}}, X, y)  # X (n, d) or a DataFrame, y (n,)
    model.predict(X_new)        # labels of a classifier, (n, outputs) values otherwise
    model.predict_proba(X_new)  # (n, K) outputs of a classifier
    model.save("runs/mine")     # a run folder that `yamlnet predict` and `verify` accept
    Model.from_run("runs/iris/6b612491a03a")

`fit` writes X and y to a CSV in a temporary folder and runs the config through the one
path of `yamlnet run` (runner.runs.experiment): the weights are those of the same config
run on a file of the same rows. `predict` replays what the run learned (the plan of typed
columns, the scaling, the target scaling, the class labels) as `yamlnet predict` does, and
returns new arrays. Inputs are checked here, at the boundary: a ValueError names the shape
expected.
"""

import copy
import csv
import json
import os
import tempfile

import numpy as np

from runner.errors import UserError
from runner.io import atomic, data, preprocess, table, weights
from runner.runs import build, experiment, folders, prepare
from schemas import Config, load_config, load_config_dict
from schemas.compose import compose
from schemas.yamlread import YamlError, dump

DATA = "data.csv"  # the rows of a fit on arrays, kept beside the run when it is saved
START = "start.npz"  # the weights a fit starts from (model.weights), when given as arrays
KEPT = folders.FINISHED  # the files of a finished run that a Model keeps and saves


def config_tree(config):
    """(dict, base folder) of a config given as a file, a mapping or a Config."""
    if isinstance(config, Config):
        return experiment.resolved(config), "."
    if isinstance(config, (str, os.PathLike)):
        file = os.fspath(config)
        try:
            tree = compose(file).data
        except YamlError as e:
            raise UserError(f"{file}: {e.message}") from None
        if not isinstance(tree, dict):
            raise UserError(f"{file}: a config is a mapping, the file holds {type(tree).__name__}")
        return tree, os.path.dirname(os.path.abspath(file))
    if isinstance(config, dict):
        return copy.deepcopy(config), "."
    raise TypeError(f"config must be a file name, a mapping or a Config, got "
                    f"{type(config).__name__}")


def _frame(X):
    """Whether X is a table with named columns (a pandas DataFrame, or alike)."""
    return hasattr(X, "columns") and hasattr(X, "__getitem__") and hasattr(X, "shape")


def _texts(values):
    """(n,) str cells of a column: numbers in round-trip precision, missing ones empty."""
    values = np.asarray(values)
    if values.dtype.kind in "biu":
        return values.astype(str)
    if values.dtype.kind == "f":
        text = np.char.mod("%.17g", values.astype(np.float64))
        return np.where(np.isnan(values), "", text)
    out = []
    for v in values.tolist():
        if v is None or (isinstance(v, float) and v != v):
            out.append("")
        else:
            out.append(f"{v:.17g}" if isinstance(v, float) else str(v))
    return np.array(out, dtype=str)


def _series_texts(column):
    """_texts of a pandas column, whose missing values (NaN, None, pd.NA, NaT) are empty
    cells too (pd.NA would otherwise become the text '<NA>', a category of its own)."""
    return _texts(column.to_numpy(dtype=object, na_value=None) if column.isna().any()
                  else column.to_numpy())


def _array_names(d):
    """x0..x{d-1}: the names of the columns of a fit on an array (no names of its own)."""
    return [f"x{j}" for j in range(d)]


def _columns(X, width=None):
    """{name: (n,) str} of the features X: a DataFrame's columns, or _array_names."""
    if _frame(X):
        return {str(c): _series_texts(X[c]) for c in X.columns}
    A = matrix(X, width)
    return {name: _texts(A[:, j]) for j, name in enumerate(_array_names(A.shape[1]))}


def matrix(X, width=None, name="X"):
    """X as a 2-D array of numbers (n, width), refused with a ValueError naming the shape
    expected: a 1-D array or list, another width, text that is not a number, NaN or inf."""
    want = f"a 2-D array of shape (n_samples, {'n_features' if width is None else width})"
    A = np.asarray(X)
    if A.ndim != 2:
        what = f"a scalar ({A!r})" if A.ndim == 0 else f"a {A.ndim}-D array of shape {A.shape}"
        hint = ("; for one sample use X.reshape(1, -1), for one feature X.reshape(-1, 1)"
                if A.ndim == 1 else "")
        raise ValueError(f"{name}: expected {want}, got {what}{hint}")
    if width is not None and A.shape[1] != width:
        raise ValueError(f"{name}: expected {want}, got {A.shape[1]} columns (shape {A.shape})")
    if A.dtype.kind not in "biuf":
        try:
            A = A.astype(np.float64)
        except (TypeError, ValueError):
            for (i, j), v in np.ndenumerate(A):
                try:
                    float(v)
                except (TypeError, ValueError):
                    v = v.item() if isinstance(v, np.generic) else v
                    raise ValueError(f"{name}[{i}, {j}] is {v!r}, not a number; expected {want} "
                                     "of numbers") from None
            raise
    if A.dtype.kind == "f" and not np.isfinite(A).all():
        i, j = np.argwhere(~np.isfinite(A))[0]
        raise ValueError(f"{name}[{i}, {j}] is {A[i, j]}: expected {want} of finite numbers "
                         "(no NaN or inf)")
    return A


def _write_csv(path, columns):
    names = list(columns)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names)))


def fit(config, X, y, start=None, on_epoch=None, base_dir=None):
    """Fit `config` (a file, a mapping or a Config; its data section, if any, gives only
    settings such as typed `features`, `scale` or `validation_split`) on the rows X
    (n, d) array or DataFrame and targets y (n,) labels or numbers, or (n, t): a Model.
    start: {"layers.0.W": ..., ...} weights to start from instead of drawing them;
    on_epoch(row) follows the fit; base_dir: where a mapping's relative paths start."""
    tree, base = config_tree(config)
    base = base_dir or base
    columns = _columns(X)
    if not columns:
        raise ValueError("X: no feature columns; give at least one")
    n = len(next(iter(columns.values())))
    Y = np.asarray(y)
    if Y.ndim not in (1, 2) or len(Y) != n:
        raise ValueError(f"y: expected {n} targets of shape ({n},) or ({n}, n_targets), got "
                         f"shape {Y.shape}")
    name = str(getattr(y, "name", None) or "target")
    while name in columns:
        name = "_" + name
    targets = [name] if Y.ndim == 1 else [f"{name}{k}" for k in range(Y.shape[1])]
    for k, t in enumerate(targets):
        columns[t] = _texts(Y if Y.ndim == 1 else Y[:, k])
    with tempfile.TemporaryDirectory(prefix="yamlnet-fit-") as tmp:
        inputs = {"data.path": os.path.join(tmp, DATA)}
        _write_csv(inputs["data.path"], columns)
        tree["data"] = {**(tree.get("data") or {}), "path": inputs["data.path"],
                        "targets": targets}
        if start is not None:
            inputs["model.weights"] = os.path.join(tmp, START)
            weights.save(inputs["model.weights"], start)
            tree.setdefault("model", {})["weights"] = inputs["model.weights"]
        cfg = load_config_dict(tree, source="config", base_dir=base)
        history = []
        p = experiment.plan(cfg, out=os.path.join(tmp, "runs"))
        experiment.execute(p, force=True, on_epoch=lambda row: (
            history.append(row), on_epoch and on_epoch(row)))
        model = Model.from_run(p.folder, history=history)
        model._inputs = {key: (os.path.basename(path), open(path, "rb").read())
                         for key, path in inputs.items()}
        model._files = {name: open(os.path.join(p.folder, name), "rb").read()
                        for name in KEPT if os.path.exists(os.path.join(p.folder, name))}
        model._source = None
    return model


class Model:
    """A finished run in memory: its config, the arrays of weights.npz, preprocess.json
    and run.json, and the history (one dict per epoch)."""

    def __init__(self, config, arrays, preprocess_state, info, history):
        self.config, self.arrays, self.info = config, arrays, info
        self.preprocess, self.history = preprocess_state, history
        self.classes = arrays.get("classes")  # (K,) str, or None
        self.n_features = int(arrays["layers.0.W"].shape[0])
        self._net = None
        self._source, self._files, self._inputs = None, {}, {}

    @classmethod
    def from_run(cls, folder, history=None):
        """The Model of a complete run folder (made by `yamlnet run`, or by save)."""
        folder = os.fspath(folder)
        info = folders.read_info(folder)
        if not info or info.get("status") != "complete":
            raise UserError(f"{folder}: not a complete run folder (its run.json is missing or "
                            "not complete); expected <out>/<name>/<id>/ made by yamlnet run")
        config = load_config(os.path.join(folder, "config.yaml"))
        arrays = weights.load(os.path.join(folder, "weights.npz"))
        saved = None
        if os.path.exists(os.path.join(folder, experiment.PREPROCESS)):
            with open(os.path.join(folder, experiment.PREPROCESS)) as f:
                saved = json.load(f)
        if history is None and os.path.exists(os.path.join(folder, "history.csv")):
            with open(os.path.join(folder, "history.csv")) as f:
                history = [{k: float(v) if v else None for k, v in row.items()}
                           for row in csv.DictReader(f)]
        model = cls(config, arrays, saved, info, history or [])
        model._source = folder
        return model

    # -- what it learned ------------------------------------------------------------
    @property
    def history_columns(self):
        """The history as columns: {"epoch": [...], "loss": [...], ...}."""
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        return {k: [row.get(k) for row in self.history] for k in keys}

    @property
    def classifier(self):
        """Whether the outputs are class probabilities (a cross-entropy fit, or labels)."""
        train = self.config.train
        return self.classes is not None or (
            train is not None and prepare.classifier(train.loss) is not None)

    def network(self):
        if self._net is None:
            self._net = build.network(self.config, self.n_features)
            self._net.load_state(self.arrays)
        return self._net

    def __getstate__(self):  # the network is rebuilt from the arrays when needed; the
        # config's models are made at import (not picklable by name): kept as plain data
        return {**self.__dict__, "_net": None, "config": self.config.model_dump(mode="json")}

    def __setstate__(self, state):
        self.__dict__.update(state, config=Config.model_validate(state["config"]))

    # -- predictions ----------------------------------------------------------------
    def _encode(self, X):
        """(X (m, inputs) of the network's dtype, kept (n,) bool or None)."""
        dtype = self.config.dtype
        state = (self.preprocess or {}).get("features")
        if state is None:
            names = self.info.get("features")
            if _frame(X) and isinstance(names, list):  # by name, never by position
                missing = [n for n in names if n not in X.columns]
                if not missing:
                    X = X[names]
                elif names != _array_names(len(names)):  # fitted on named columns
                    raise ValueError(f"X: missing the column(s) {missing}; this model reads "
                                     f"{names}")
            A = np.array(matrix(X, self.n_features), dtype=dtype)  # a copy: scaled in place
            data.Scaler.from_arrays(self.arrays).apply(A)
            return A, None
        wanted = [c["name"] for c in state["columns"]]
        if not (_frame(X) or isinstance(X, dict)):
            raise ValueError(f"X: this model reads the named columns {wanted}: give a pandas "
                             "DataFrame (or a dict of columns)")
        missing = [c for c in wanted if c not in X]
        if missing:
            raise ValueError(f"X: missing the column(s) {missing}; this model reads {wanted}")
        cells = {c: _series_texts(X[c]) if _frame(X) else _texts(X[c]) for c in wanted}
        try:
            encoded = preprocess.transform(state, table.from_columns("X", cells, 1, [""]), dtype)
        except UserError as e:
            raise ValueError(str(e)) from None
        return encoded.X, encoded.kept

    def outputs(self, X):
        """The network's outputs (n, K) for the rows of X, as `yamlnet predict` writes them
        (targets in their own units; NaN for rows a drop_row column leaves out)."""
        A, kept = self._encode(X)
        net = self.network()
        out = np.empty((len(A), net.sizes[-1]), net.dtype)  # (n, K), the caller's own
        step = self.config.prediction()[0].batch_size
        with np.errstate(all="ignore"):
            for start in range(0, len(A), step):
                out[start:start + step] = net.forward(A[start:start + step])
            targets = (self.preprocess or {}).get("targets")
            if targets is not None:
                out = np.asarray(preprocess.decode_targets(targets, out), net.dtype)
        if kept is not None and not kept.all():
            full = np.full((len(kept), out.shape[1]), np.nan, net.dtype)
            full[kept] = out
            out = full
        return out

    def predict_proba(self, X):
        """(n, K) class probabilities, in the order of `classes`."""
        if not self.classifier:
            raise ValueError("predict_proba needs a classifier (a cross-entropy loss); this "
                             "model predicts values: use predict")
        return self.outputs(X)

    def predict(self, X):
        """Labels (n,) of a classifier (indices when it has no class labels; (n, K) 0/1 for
        several sigmoid outputs); the outputs (n, K) of a regression."""
        A = self.outputs(X)
        if not self.classifier:
            return A
        K = A.shape[1]
        if K > 1 and self.config.model.layers[-1].activation.name == "softmax":
            index = np.argmax(A, axis=1)
        else:
            index = (A > 0.5).astype(np.intp)
            index = index[:, 0] if K == 1 else index
        return index if self.classes is None else self.classes[index]

    # -- files ----------------------------------------------------------------------
    def save(self, folder):
        """Write the run into `folder` (created): config.yaml, run.json, weights.npz and
        the other outputs, plus the input files of a fit on arrays, so that `yamlnet
        predict --run folder` and `yamlnet verify folder` accept it. Returns folder."""
        folder = os.fspath(folder)
        files = self._files
        if self._source is not None:
            files = {}
            for name in KEPT:
                path = os.path.join(self._source, name)
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        files[name] = f.read()
        os.makedirs(folder, exist_ok=True)
        for name in KEPT:  # a run saved here before must not lend this one its files
            if name not in files and os.path.exists(os.path.join(folder, name)):
                os.remove(os.path.join(folder, name))
        for name, content in files.items():
            atomic.write_bytes(os.path.join(folder, name), content)
        if self._inputs:  # the inputs move beside the run; the id keeps (it hashes contents)
            tree = experiment.resolved(self.config)
            for key, (name, content) in self._inputs.items():
                path = os.path.abspath(os.path.join(folder, name))
                atomic.write_bytes(path, content)
                section, field = key.split(".")
                tree[section][field] = path
            atomic.write_text(os.path.join(folder, "config.yaml"), dump(tree))
        return folder
