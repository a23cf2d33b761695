"""The scikit-learn estimators (runner/estimators.py): scikit-learn's own estimator checks,
Pipeline + GridSearchCV + cross_val_score on iris and digits (reproducible, also with
n_jobs=2), and the same weights as `yamlnet run` on a file of the same rows."""

import csv

import numpy as np
import pytest
import yaml
from conftest import CONFIGS, yamlnet

pytest.importorskip("sklearn", reason="the estimators need scikit-learn (extra 'bench')")

from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from runner import api, estimators  # noqa: E402
from runner.io import weights  # noqa: E402

pytestmark = pytest.mark.torch  # cross-checks with scikit-learn (extra 'bench')

# Checks of sklearn.utils.estimator_checks that cannot pass, with the reason: none. (Two
# are skipped by scikit-learn itself: its array-API checks need SCIPY_ARRAY_API=1.)
EXPECTED_FAILED_CHECKS = {}


@pytest.mark.slow
@parametrize_with_checks([estimators.Classifier(), estimators.Regressor()],
                         expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_api_names_the_estimators():
    assert api.Classifier is estimators.Classifier and api.Regressor is estimators.Regressor


def run_folder(parent):
    """The one run folder under <out>/<name>/ (lock files and the like left aside)."""
    (folder,) = [p for p in parent.iterdir() if (p / "run.json").is_file()]
    return folder


def read(name, target):
    """(X (n, d) float64, y (n,)) of a bundled CSV."""
    with open(CONFIGS / name) as f:
        rows = list(csv.reader(f))
    j = rows[0].index(target)
    X = np.array([[float(v) for k, v in enumerate(r) if k != j] for r in rows[1:]])
    return X, np.array([r[j] for r in rows[1:]])


IRIS_TREE = {
    "model": {"layers": [{"units": 16, "activation": "relu", "init": "he_uniform"},
                         {"units": 3, "activation": "softmax"}]},
    "train": {"loss": "categorical_crossentropy", "optimizer": {"name": "adam", "lr": 0.01},
              "epochs": 60, "batch_size": 16, "metrics": ["accuracy"],
              "early_stopping": {"monitor": "val_loss", "patience": 10, "restore_best": True}},
}


@pytest.mark.slow
def test_classifier_gives_the_weights_of_yamlnet_run(tmp_path):
    """The same rows, settings and seed: weights byte for byte, and the run's predictions."""
    X, y = read("iris.csv", "species")
    clf = estimators.Classifier(IRIS_TREE, validation_split=0.2, random_state=7).fit(X, y)
    data = {"path": str(CONFIGS / "iris.csv"), "targets": ["species"], "scale": "standard",
            "validation_split": 0.2}
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump({**IRIS_TREE, "seed": 7, "data": data}))
    code, _, err = yamlnet("run", "--config", tmp_path / "iris.yaml", "--out", tmp_path / "runs")
    assert code == 0, err
    folder = run_folder(tmp_path / "runs" / "iris")
    theirs = weights.load(folder / "weights.npz")
    mine = clf.model_.arrays
    keys = [k for k in theirs if k.startswith(("layers.", "scale."))]
    assert len(keys) == 6
    for key in keys:
        assert mine[key].tobytes() == theirs[key].tobytes(), key
    with open(folder / "predictions.csv") as f:
        rows = list(csv.reader(f))[1:]
    assert np.array_equal(clf.predict_proba(X), np.array([r[:3] for r in rows], np.float32))
    assert list(clf.predict(X)) == [r[3] for r in rows]
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]


@pytest.mark.slow
def test_regressor_gives_the_weights_of_yamlnet_run(tmp_path):
    X, _ = read("iris.csv", "species")
    tree = {"model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1}]},
            "train": {"loss": "mse", "epochs": 30, "batch_size": 8}}
    reg = estimators.Regressor(tree, lr=0.01, target_scale="standard", random_state=2)
    reg.fit(X[:, :3], X[:, 3])
    np.savetxt(tmp_path / "w.csv", X, fmt="%.17g", delimiter=",", header="a,b,c,w", comments="")
    config = {**tree, "seed": 2, "train": {**tree["train"], "optimizer": {"name": "adam",
                                                                         "lr": 0.01}},
              "data": {"path": "w.csv", "targets": ["w"], "scale": "standard",
                       "target_scale": "standard"}}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(config))
    code, _, err = yamlnet("run", "--config", tmp_path / "w.yaml", "--out", tmp_path / "runs")
    assert code == 0, err
    theirs = weights.load(run_folder(tmp_path / "runs" / "w") / "weights.npz")
    for key in ("layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"):
        assert reg.model_.arrays[key].tobytes() == theirs[key].tobytes(), key
    assert reg.predict(X[:, :3]).shape == (150,)


def search(estimator, grid, X, y, n_jobs):
    """(best params, cross-validation scores of the best pipeline) of a grid search."""
    pipe = make_pipeline(MinMaxScaler(), estimator)
    cv = KFold(3, shuffle=True, random_state=0)
    found = GridSearchCV(pipe, grid, cv=cv, n_jobs=n_jobs).fit(X, y)
    scores = cross_val_score(found.best_estimator_, X, y, cv=cv, n_jobs=n_jobs)
    return found.best_params_, found.cv_results_["mean_test_score"], scores


CASES = {
    "iris-classifier": ("iris.csv", "species", estimators.Classifier(
        epochs=40, lr=0.01, random_state=0), {"classifier__hidden": [(4,), (16,)]}, 0.85),
    "digits-classifier": ("digits.csv", "digit", estimators.Classifier(
        epochs=8, lr=0.01, random_state=0), {"classifier__hidden": [(16,), (32,)]}, 0.85),
    "iris-regressor": ("iris.csv", "species", estimators.Regressor(
        epochs=40, lr=0.01, random_state=0), {"regressor__hidden": [(4,), (16,)]}, 0.8),
    "digits-regressor": ("digits.csv", "digit", estimators.Regressor(
        epochs=8, lr=0.01, random_state=0), {"regressor__hidden": [(16,), (32,)]}, 0.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_pipeline_grid_search_and_cross_validation(case):
    """Reproducible for one random_state: the same scores in two runs, the second with
    n_jobs=2 (worker processes), and above a floor (accuracy, or R^2 of a regressor that
    predicts the last feature of iris or the digit's value)."""
    name, target, estimator, grid, floor = CASES[case]
    X, y = read(name, target)
    if case == "iris-regressor":
        X, y = X[:, :3], X[:, 3]
    elif case == "digits-regressor":
        y = y.astype(float)
    first = search(estimator, grid, X, y, n_jobs=1)
    second = search(estimator, grid, X, y, n_jobs=2)
    assert first[0] == second[0]
    assert np.array_equal(first[1], second[1]) and np.array_equal(first[2], second[2])
    assert first[2].mean() > floor


def read_digits_labels():
    X, y = read("digits.csv", "digit")
    return X, y.astype(int)


@pytest.mark.slow
def test_partial_fit_goes_on_from_the_weights():
    """The first call is one epoch without scaling (as fit with epochs=1, scale none);
    the next ones start from the weights before them and keep improving."""
    X, y = read_digits_labels()
    X = X / 16
    once = estimators.Classifier(hidden=(32,), epochs=1, scale="none", random_state=0).fit(X, y)
    clf = estimators.Classifier(hidden=(32,), random_state=0)
    clf.partial_fit(X, y, classes=np.arange(10))
    for key, value in once.model_.arrays.items():
        assert value.tobytes() == clf.model_.arrays[key].tobytes(), key
    scores = [clf.score(X, y)]
    for _ in range(3):
        clf.partial_fit(X[:900], y[:900])  # no class is missing from this half, or needed
        clf.partial_fit(X[900:], y[900:])
        scores.append(clf.score(X, y))
    assert scores[-1] > scores[0] and scores[-1] > 0.85
    assert len(clf.history_) == 1
    with pytest.raises(ValueError, match="not one of classes_"):
        clf.partial_fit(X[:5], np.full(5, 11))


def test_partial_fit_after_fit_keeps_the_fits_scaling():
    """partial_fit after a fit that learned a scaling (features, or a regressor's targets)
    goes on from the fitted weights on rows scaled as the fit's were: the score stays
    (it fell from 0.9 to 0.35 on iris when the rows went in unscaled), and the model's
    outputs match an independent computation (the fitted scaler applied by hand, the
    network's raw outputs unscaled by hand)."""
    X, y = read_digits_labels()
    X = X.astype(np.float64)
    clf = estimators.Classifier(hidden=(32,), epochs=20, random_state=0).fit(X, y)
    fitted = clf.score(X, y)
    fresh = estimators.Classifier(hidden=(32,), epochs=1, random_state=0).fit(X, y).score(X, y)
    assert fitted - fresh > 0.1
    for _ in range(2):
        clf.partial_fit(X, y)
        assert clf.score(X, y) > fitted - 0.02
    t = X[:, 20] * 50.0 + 300.0
    reg = estimators.Regressor(hidden=(16,), epochs=30, target_scale="standard",
                               random_state=0).fit(X, t)
    mean, std = X.mean(0), X.std(0)
    scaler_arrays = {k: v for k, v in reg.model_.arrays.items() if k.startswith("scale.")}
    fitted = reg.score(X, t)
    reg.partial_fit(X, t)
    assert reg.score(X, t) > fitted - 0.05 and fitted > 0.5
    A = (X - mean) / np.where(std == 0, 1.0, std)
    np.testing.assert_allclose(scaler_arrays["scale.mean"], mean)
    raw = reg.model_.outputs(A)[:, 0]  # the network alone: the targets' standard units
    np.testing.assert_allclose(reg.predict(X), raw * t.std() + t.mean(), rtol=1e-4)


def test_numpy_integers_and_an_output_the_estimator_cannot_make():
    """epochs from np.arange (as a grid gives them) are integers; a config whose output
    layer is not the estimator's (a sigmoid under Classifier: rows of probabilities that
    did not sum to 1) is refused."""
    X, y = read_digits_labels()
    X = X[:200] / 16
    clf = estimators.Classifier(hidden=(8,), epochs=np.int64(2), batch_size=np.int64(32))
    assert len(clf.fit(X, y[:200]).history_) == 2
    sigmoid = {"model": {"layers": [{"units": 8}, {"units": 1, "activation": "sigmoid"}]},
               "train": {"loss": "binary_crossentropy"}}
    with pytest.raises(ValueError, match="activation is 'sigmoid'"):
        estimators.Classifier(sigmoid, epochs=1).fit(X, y[:200] > 4)
    linear = {"model": {"layers": [{"units": 4}, {"units": 1, "activation": "linear"}]}}
    assert estimators.Regressor(linear, epochs=1).fit(X, y[:200] * 1.0).predict(X).shape == (200,)


def test_config_file_and_shortcuts(tmp_path):
    """A config file (without data) gives the network; shortcuts override it."""
    (tmp_path / "net.yaml").write_text(yaml.safe_dump({
        "seed": 4, "model": {"layers": [{"units": 5, "activation": "tanh"}, {"units": 2}]},
        "train": {"loss": "categorical_crossentropy", "epochs": 3}}))
    X, y = read("iris.csv", "species")
    clf = estimators.Classifier(str(tmp_path / "net.yaml")).fit(X, y)
    layers = clf.model_.config.model.layers
    assert [layer.units for layer in layers] == [5, 3] and layers[1].activation.name == "softmax"
    assert clf.model_.config.seed == 4 and len(clf.history_) == 3
    wider = estimators.Classifier(str(tmp_path / "net.yaml"), hidden=(7, 6), epochs=2).fit(X, y)
    assert [layer.units for layer in wider.model_.config.model.layers] == [7, 6, 3]
    with pytest.raises(ValueError, match="data section"):
        estimators.Classifier({"data": {"path": "x.csv"}}).fit(X, y)
    with pytest.raises(ValueError, match="epochs"):
        estimators.Classifier(epochs="lots").fit(X, y)
