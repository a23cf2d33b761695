"""scikit-learn estimators over yamlnet (extra 'sklearn'): `Classifier` and `Regressor`.

    from runner.api import Classifier
    clf = Classifier({"train": {"optimizer": {"name": "sgd", "lr": 0.1}}}, hidden=(32,))
    clf.fit(X, y).predict(X_new)        # also in Pipeline, GridSearchCV, cross_val_score

The network and the fit are a yamlnet config without its `data` section (a file or a
mapping), plus shortcuts that override it, so that a grid search can tune them. `fit`
runs that config on the rows (runner.model.fit: the one path of `yamlnet run`), with one
softmax unit per class (targets one-hot, in the order of `classes_`) or one identity unit
per target, and keeps the Model in `model_`. Only this module imports scikit-learn.
"""

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from runner import model as models
from runner import vocabulary
from runner.errors import UserError
from runner.io import data, preprocess
from schemas import ConfigError

DEFAULT_HIDDEN = (100,)  # hidden units when neither `hidden` nor the config gives layers


class _Estimator(BaseEstimator):
    """The parameters and the fit shared by Classifier and Regressor.

    config: a config file or mapping without `data` (None: yamlnet's defaults); hidden:
    units of the hidden layers (replacing the config's hidden layers); activation: of the
    hidden layers ("relu" for layers made from `hidden`); epochs, batch_size (an int or
    "full"), optimizer (a name) and lr override train; scale: "standard", "minmax" or
    "none", learned from the training rows; validation_split: rows held out (for early
    stopping); random_state: an int seed (None: the config's seed, default 0) or a
    RandomState, which draws one."""

    _output, _loss = None, None

    def __init__(self, config=None, *, hidden=None, activation=None, epochs=None,
                 batch_size=None, optimizer=None, lr=None, scale="standard",
                 validation_split=None, random_state=None):
        self.config = config
        self.hidden = hidden
        self.activation = activation
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.scale = scale
        self.validation_split = validation_split
        self.random_state = random_state

    def _tree(self, units):
        """The yamlnet config (a dict, and its base folder) for `units` outputs."""
        tree, base = models.config_tree({} if self.config is None else self.config)
        if "data" in tree:
            raise ValueError("config: leave out the data section; the estimator makes it "
                             "from X and y (use scale= and validation_split=)")
        layers = [dict(layer) for layer in (tree.get("model") or {}).get("layers") or []]
        out = layers[-1] if layers else {}
        if self.hidden is not None or not layers:
            hidden = DEFAULT_HIDDEN if self.hidden is None else self.hidden
            layers = [{"units": int(u), "activation": self.activation or "relu"}
                      for u in np.atleast_1d(hidden)] + [out]
        elif self.activation is not None:
            for layer in layers[:-1]:
                layer["activation"] = self.activation
        out.setdefault("activation", self._output)
        name = out["activation"]["name"] if isinstance(out["activation"], dict) else out["activation"]
        name = vocabulary.aliases(vocabulary.ACTIVATIONS).get(name, name)
        if name != self._output:
            raise ValueError(f"config: the output layer's activation is {name!r}; "
                             f"{type(self).__name__} makes a {self._output} output of one "
                             "unit per class or target: leave the activation out")
        out["units"] = units
        tree["model"] = {**(tree.get("model") or {}), "layers": layers}
        train = dict(tree.get("train") or {})
        train.setdefault("loss", self._loss)
        for key in ("epochs", "batch_size"):
            value = getattr(self, key)
            if value is not None:  # a numpy integer (a grid from np.arange) is an int
                train[key] = int(value) if isinstance(value, np.integer) else value
        opt = train.get("optimizer", "adam")
        opt = dict(opt) if isinstance(opt, dict) else {"name": opt}
        if self.optimizer is not None and self.optimizer != opt["name"]:
            opt = {"name": self.optimizer}
        if self.lr is not None:
            opt["lr"] = float(self.lr)
        train["optimizer"] = opt
        tree["train"] = train
        if self.random_state is not None:
            rs = self.random_state
            tree["seed"] = int(rs) if isinstance(rs, (int, np.integer)) else int(
                check_random_state(rs).randint(np.iinfo(np.int32).max))
        tree.setdefault("name", type(self).__name__.lower())
        tree["data"] = {"scale": self.scale}
        if self.validation_split is not None:
            tree["data"]["validation_split"] = float(self.validation_split)
        return tree, base

    def _run(self, X, Y, units, start=None, **changes):
        tree, base = self._tree(units)
        for key, value in changes.items():
            section, field = key.split(".")
            tree[section][field] = value
        try:
            return models.fit(tree, X, Y, start=start, base_dir=base)
        except (ConfigError, UserError) as e:
            raise ValueError(str(e)) from None

    def _go_on_from(self, X, Y):
        """(weights, X, Y) of a partial_fit: weights None on the first call. The runs of
        partial_fit learn no scaling, so after a fit that learned one (features, or a
        regressor's targets) that scaling is kept in `_outer` and applied here, to the rows
        and targets of every later partial_fit and to the inputs and outputs of model_
        (_outputs): the weights keep meeting rows scaled as those they were learned on."""
        if not hasattr(self, "model_"):
            self._outer = None
            return None, X, Y
        if self._outer is None:
            features = data.Scaler.from_arrays(self.model_.arrays)
            targets = (self.model_.preprocess or {}).get("targets")
            if features.kind != "none" or targets is not None:
                self._outer = (features, targets)
        if self._outer is not None:
            X = self._scaled(X)
            if self._outer[1] is not None:
                Y = preprocess.encode_targets(self._outer[1], Y.reshape(len(Y), -1),
                                              "float64").reshape(Y.shape)
        return {k: v for k, v in self.model_.arrays.items() if k.startswith("layers.")}, X, Y

    def _scaled(self, X):
        """X (n, d) scaled as by the fit that _outer comes from (a new float64 array)."""
        A = np.array(X, dtype=np.float64)
        self._outer[0].apply(A)
        return A

    def _outputs(self, X):
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False)
        outer = getattr(self, "_outer", None)
        if outer is None:
            return self.model_.outputs(X).astype(np.float64)
        out = self.model_.outputs(self._scaled(X))
        return (out.astype(np.float64) if outer[1] is None
                else preprocess.decode_targets(outer[1], out))


class Classifier(ClassifierMixin, _Estimator):
    """A yamlnet network with a softmax output: one unit per class of y."""

    _output, _loss = "softmax", "categorical_crossentropy"

    def _targets(self, y):
        check_classification_targets(y)
        index = np.searchsorted(self.classes_, y)
        if (index >= len(self.classes_)).any() or (self.classes_[
                np.minimum(index, len(self.classes_) - 1)] != y).any():
            bad = y[np.isin(y, self.classes_, invert=True)][0]
            raise ValueError(f"y holds {bad!r}, not one of classes_ {list(self.classes_)}")
        return np.eye(len(self.classes_), dtype=np.int8)[index]  # (n, K) one-hot

    def fit(self, X, y):
        """Fit on X (n, d) and labels y (n,); returns self."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes in y, got 1 "
                             f"class ({classes[0]!r})")
        self.classes_ = classes
        self.model_ = self._run(X, self._targets(y), len(classes))
        self._outer = None  # this fit's model applies its own scaling
        self.history_ = self.model_.history
        return self

    def partial_fit(self, X, y, classes=None):
        """One epoch over X, y, from the current weights (the optimizer starts afresh, and
        no feature scaling is learned: scale the features first; after a fit, the
        scaling it learned is kept, see _go_on_from). The first call needs `classes`,
        every class y will ever hold (default: those of this y)."""
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, reset=first)
        if first:
            classes = np.unique(y if classes is None else classes)
            if len(classes) < 2:
                raise ValueError(f"{type(self).__name__} needs at least 2 classes, got 1 "
                                 f"class ({classes[0]!r}); give classes=")
            self.classes_ = classes
        Y = self._targets(y)
        start, X, Y = self._go_on_from(X, Y)
        self.model_ = self._run(X, Y, len(self.classes_), start,
                                **{"train.epochs": 1, "data.scale": "none"})
        self.history_ = self.model_.history
        return self

    def predict_proba(self, X):
        """(n, K) probabilities, in the order of classes_."""
        return self._outputs(X)

    def predict(self, X):
        """(n,) labels from classes_."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class Regressor(RegressorMixin, _Estimator):
    """A yamlnet network with an identity output: one unit per target (mse loss).
    target_scale: "none", "standard", "minmax" or "log" (the targets scaled for the fit;
    predictions are in their own units)."""

    _output, _loss = "identity", "mse"

    def __init__(self, config=None, *, hidden=None, activation=None, epochs=None,
                 batch_size=None, optimizer=None, lr=None, scale="standard",
                 target_scale="none", validation_split=None, random_state=None):
        super().__init__(config, hidden=hidden, activation=activation, epochs=epochs,
                         batch_size=batch_size, optimizer=optimizer, lr=lr, scale=scale,
                         validation_split=validation_split, random_state=random_state)
        self.target_scale = target_scale

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _tree(self, units):
        tree, base = super()._tree(units)
        tree["data"]["target_scale"] = self.target_scale
        return tree, base

    def fit(self, X, y):
        """Fit on X (n, d) and y (n,) or (n, t) numbers; returns self."""
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True)
        self._ndim = y.ndim
        self.model_ = self._run(X, y, 1 if y.ndim == 1 else y.shape[1])
        self._outer = None
        self.history_ = self.model_.history
        return self

    def partial_fit(self, X, y):
        """One epoch over X, y from the current weights (see Classifier.partial_fit)."""
        first = not hasattr(self, "model_")
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, reset=first)
        units = 1 if y.ndim == 1 else y.shape[1]
        if first:
            self._ndim = y.ndim
        elif units != self.model_.arrays[f"layers.{len(self.model_.config.model.layers) - 1}.W"
                                         ].shape[1]:
            raise ValueError(f"y has {units} targets, the model was fitted on a different number")
        start, X, y = self._go_on_from(X, y)
        self.model_ = self._run(X, y, units, start, **{
            "train.epochs": 1, "data.scale": "none", "data.target_scale": "none"})
        self.history_ = self.model_.history
        return self

    def predict(self, X):
        """(n,) predictions, or (n, t) for several targets."""
        A = self._outputs(X)
        return A[:, 0] if self._ndim == 1 else A
