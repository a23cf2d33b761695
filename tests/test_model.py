"""The model object (runner/model.py): api.fit on arrays gives the weights of `yamlnet run`
on a file of the same rows; Model.from_run replays a run's preprocessing exactly as
predictions.csv holds it; predictions are new arrays; inputs are checked at the boundary;
save writes a folder that the CLI's predict and verify accept."""

import csv
import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import CONFIGS, ROOT, yamlnet

from runner import api
from runner.io import weights


def run_folder(parent):
    """The one run folder under <out>/<name>/ (lock files and the like left aside)."""
    (folder,) = [p for p in parent.iterdir() if (p / "run.json").is_file()]
    return folder


IRIS = {
    "seed": 0,
    "model": {"layers": [{"units": 16, "activation": "relu", "init": "he_uniform"},
                         {"units": 3, "activation": "softmax"}]},
    "train": {"loss": "categorical_crossentropy", "optimizer": {"name": "adam", "lr": 0.01},
              "epochs": 40, "batch_size": 16, "metrics": ["accuracy"],
              "early_stopping": {"monitor": "val_loss", "patience": 5, "restore_best": True}},
}


def iris_rows():
    """(X (150, 4) float64, species (150,) str, feature names) read from configs/iris.csv."""
    with open(CONFIGS / "iris.csv") as f:
        rows = list(csv.reader(f))
    X = np.array([[float(v) for v in r[:4]] for r in rows[1:]])
    return X, np.array([r[4] for r in rows[1:]]), rows[0][:4]


def run_cli(tmp_path, tree, name):
    """`yamlnet run` of a config written to tmp_path: the run folder."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, **tree}))
    code, out, err = yamlnet("run", "--config", path, "--out", tmp_path / "runs")
    assert code == 0, err
    return run_folder(tmp_path / "runs" / name)


def predictions_csv(folder):
    with open(folder / "predictions.csv") as f:
        rows = list(csv.reader(f))
    k = sum(1 for c in rows[0] if c.startswith("y"))
    return np.array([[float(v) for v in r[:k]] for r in rows[1:]]), [r[k] for r in rows[1:]]


@pytest.fixture(scope="module")
def iris_model():
    X, y, _ = iris_rows()
    return api.fit({**IRIS, "data": {"scale": "standard", "validation_split": 0.2}}, X, y)


@pytest.mark.slow
def test_fit_on_arrays_gives_the_weights_of_yamlnet_run(tmp_path, iris_model):
    data = {"path": str(CONFIGS / "iris.csv"), "targets": ["species"], "scale": "standard",
            "validation_split": 0.2}
    folder = run_cli(tmp_path, {**IRIS, "data": data}, "iris")
    theirs = weights.load(folder / "weights.npz")
    for key in ("layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b", "scale.mean",
                "scale.std", "classes"):
        assert iris_model.arrays[key].tobytes() == theirs[key].tobytes(), key
    A, labels = predictions_csv(folder)
    X, _, _ = iris_rows()
    assert np.array_equal(iris_model.predict_proba(X), A.astype(np.float32))
    assert list(iris_model.predict(X)) == labels


@pytest.mark.slow
@pytest.mark.torch  # pandas (extra 'bench'): run in CI's second pass
def test_from_run_replays_typed_columns_scaling_and_labels(tmp_path):
    """penguins: typed numeric columns with median fills, categorical island and sex with
    a missing category, standard scaling and species labels, read back from a DataFrame."""
    pd = pytest.importorskip("pandas")
    code, _, err = yamlnet("run", "--config", CONFIGS / "penguins.yaml", "--out", tmp_path)
    assert code == 0, err
    folder = run_folder(tmp_path / "penguins")
    model = api.Model.from_run(folder)
    frame = pd.read_csv(CONFIGS / "penguins.csv")
    A, labels = predictions_csv(folder)
    assert np.array_equal(model.predict_proba(frame), A.astype(np.float32))
    assert list(model.predict(frame)) == labels
    shuffled = frame[frame.columns[::-1]]  # columns are found by name
    assert np.array_equal(model.predict_proba(shuffled), A.astype(np.float32))
    with pytest.raises(ValueError, match="island"):
        model.predict(frame.drop(columns="island"))
    with pytest.raises(ValueError, match="DataFrame"):
        model.predict(np.zeros((2, 6)))


@pytest.mark.slow
def test_from_run_of_listed_features_applies_the_scaling(tmp_path):
    """iris.yaml scales its features: the model applies the saved scaling to raw rows,
    while the bare network on raw rows is far from the run's predictions."""
    code, _, err = yamlnet("run", "--config", CONFIGS / "iris.yaml", "--out", tmp_path)
    assert code == 0, err
    folder = run_folder(tmp_path / "iris")
    X, _, _ = iris_rows()
    A, labels = predictions_csv(folder)
    model = api.Model.from_run(folder)
    assert np.array_equal(model.predict_proba(X), A.astype(np.float32))
    assert list(model.predict(X)) == labels
    raw = model.network().forward(X.astype(np.float32))
    assert np.abs(raw - A).max() > 0.1


def test_predictions_are_new_arrays(iris_model):
    X, _, _ = iris_rows()
    first = iris_model.predict_proba(X[:10])
    kept = first.copy()
    second = iris_model.predict_proba(X[10:20])
    assert np.array_equal(first, kept)  # not overwritten by the next call
    assert not np.shares_memory(first, second)
    iris_model.network().forward(X[100:110].astype(np.float32))  # reuses its own buffer
    assert np.array_equal(first, kept)


@pytest.mark.parametrize("bad, words", [
    (np.zeros(4), "1-D array of shape (4,)"),
    ([5.1, 3.5, 1.4, 0.2], "1-D array of shape (4,)"),
    (np.zeros((3, 5)), "got 5 columns"),
    (np.array([[5.1, np.nan, 1.4, 0.2]]), "[0, 1] is nan"),
    ([[5.1, "wide", 1.4, 0.2]], "'wide', not a number"),
    (np.float64(3.0), "a scalar"),
])
def test_bad_inputs_are_value_errors_naming_the_shape(iris_model, bad, words):
    with pytest.raises(ValueError) as e:
        iris_model.predict(bad)
    assert "shape (n_samples, 4)" in str(e.value) and words in str(e.value)


def test_a_list_of_rows_is_read_as_an_array(iris_model):
    X, _, _ = iris_rows()
    assert np.array_equal(iris_model.predict_proba(X[:5].tolist()), iris_model.predict_proba(X[:5]))
    assert iris_model.predict_proba(np.empty((0, 4))).shape == (0, 3)


def test_history_as_rows_and_columns(iris_model):
    rows, columns = iris_model.history, iris_model.history_columns
    assert len(rows) == iris_model.info["metrics"]["epochs"] >= 1
    assert columns["epoch"] == list(range(1, len(rows) + 1))
    assert columns["val_loss"] == [r["val_loss"] for r in rows]


def test_pickle_keeps_the_predictions(iris_model):
    X, _, _ = iris_rows()
    again = pickle.loads(pickle.dumps(iris_model))
    assert np.array_equal(again.predict_proba(X), iris_model.predict_proba(X))


@pytest.mark.slow
def test_saved_model_is_a_run_folder_for_predict_and_verify(tmp_path, iris_model):
    folder = iris_model.save(tmp_path / "saved")
    code, out, err = yamlnet("verify", folder)
    assert code == 0, out + err
    X, _, _ = iris_rows()
    np.savetxt(tmp_path / "new.csv", X, fmt="%g", delimiter=",", header="x0,x1,x2,x3",
               comments="")  # an array's columns are named x0, x1, ...
    code, out, err = yamlnet("predict", "--run", folder, "--data", tmp_path / "new.csv",
                             "--out", tmp_path / "p.csv")
    assert code == 0, err
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.reader(f))[1:]
    A = np.array([[float(v) for v in r[:3]] for r in rows], np.float32)
    assert np.array_equal(A, iris_model.predict_proba(X))
    assert np.array_equal(api.Model.from_run(folder).predict_proba(X), A)


def test_regression_with_target_scaling_predicts_in_the_targets_units():
    X, _, _ = iris_rows()
    tree = {"model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1}]},
            "train": {"loss": "mse", "epochs": 60, "optimizer": {"name": "adam", "lr": 0.01}},
            "data": {"scale": "standard", "target_scale": "standard"}}
    model = api.fit(tree, X[:, :3], X[:, 3])
    pred = model.predict(X[:, :3])
    assert pred.shape == (150, 1)
    assert np.abs(pred[:, 0] - X[:, 3]).mean() < 0.3  # petal width, in cm (range 0.1-2.5)
    with pytest.raises(ValueError, match="predict_proba needs a classifier"):
        model.predict_proba(X[:, :3])


def test_config_values_are_checked_where_they_are_set():
    config = api.load_config(CONFIGS / "iris.yaml")
    with pytest.raises(ValueError, match="epochs"):
        config.train.epochs = "lots"
    with pytest.raises(ValueError, match="units"):
        config.model.layers[0].units = 0
    assert config.train.epochs == 200 and config.model.layers[0].units == 16
    config.train.epochs = 5
    assert config.train.epochs == 5


def test_api_imports_without_scikit_learn():
    code = ("import sys; sys.modules['sklearn'] = None\n"
            "from runner import api\n"
            "assert callable(api.fit) and api.Model\n"
            "try:\n    api.Classifier\nexcept ImportError:\n    print('refused')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "refused"


@pytest.mark.torch  # pandas (extra 'bench'): run in CI's second pass
def test_dataframe_columns_are_found_by_name_or_refused():
    """A fit on named columns reads a DataFrame by name, in any order; a misspelled name
    is refused, never read by position (it predicted virginica for setosa rows). A
    model fitted on an unnamed array reads a DataFrame by position."""
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    X, y, names = iris_rows()
    frame = pd.DataFrame(X, columns=names)
    short = {**IRIS, "train": {**IRIS["train"], "epochs": 3, "early_stopping": None}}
    named = api.fit({**short, "data": {"scale": "standard"}}, frame, y)
    np.testing.assert_array_equal(named.predict_proba(frame[names[::-1]]),
                                  named.predict_proba(frame))
    renamed = frame[names[::-1]].rename(columns={names[-1]: "petal_w"})
    with pytest.raises(ValueError, match=f"missing the column.*{names[-1]}"):
        named.predict(renamed)
    unnamed = api.fit({**short, "data": {"scale": "standard"}}, X, y)
    np.testing.assert_array_equal(unnamed.predict_proba(frame), unnamed.predict_proba(X))


@pytest.mark.torch  # pandas (extra 'bench'): run in CI's second pass
def test_no_feature_columns_is_a_value_error():
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    X, y, names = iris_rows()
    with pytest.raises(ValueError, match="no feature columns"):  # was a bare StopIteration
        api.fit(IRIS, pd.DataFrame(X, columns=names)[[]], y)


@pytest.mark.torch  # pandas (extra 'bench'): run in CI's second pass
def test_save_over_another_run_leaves_none_of_its_files(tmp_path, iris_model):
    """Saving into a folder that held another model's run: the other's preprocess.json
    (typed columns) must not be read back with these weights."""
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    X, y, names = iris_rows()
    typed = api.fit({**IRIS, "train": {**IRIS["train"], "epochs": 2, "early_stopping": None},
                     "data": {"features": {n: "numeric" for n in names}}},
                    pd.DataFrame(X, columns=names), y)
    typed.save(tmp_path / "m")
    assert (tmp_path / "m" / "preprocess.json").exists()
    iris_model.save(tmp_path / "m")
    back = api.Model.from_run(tmp_path / "m")
    assert not (tmp_path / "m" / "preprocess.json").exists()
    np.testing.assert_array_equal(back.predict_proba(X), iris_model.predict_proba(X))


@pytest.mark.torch  # pandas (extra 'bench'): run in CI's second pass
def test_pandas_missing_values_are_missing_cells_whatever_the_dtype():
    """pd.NA in a string (or nullable) column is a missing cell, as NaN is: the same
    categories, weights and predictions (it was the text '<NA>', a category of its own)."""
    pd = pytest.importorskip("pandas", reason="pandas is not installed")
    frame = pd.read_csv(CONFIGS / "penguins.csv")
    tree = yaml.safe_load((CONFIGS / "penguins.yaml").read_text())
    tree["data"] = {k: v for k, v in tree["data"].items() if k in ("features", "scale")}
    tree["train"].update(epochs=3, early_stopping=None)
    X, y = frame.drop(columns=["species", "year"]), frame["species"]
    assert X["sex"].isna().any()
    nan = api.fit(tree, X, y)
    na = X.assign(sex=X["sex"].astype("string"), body_mass_g=X["body_mass_g"].astype("Float64"))
    assert na["sex"].isna().any() and na["sex"].dtype == "string"
    other = api.fit(tree, na, y)
    for key, value in nan.arrays.items():
        np.testing.assert_array_equal(value, other.arrays[key], err_msg=key)
    np.testing.assert_array_equal(nan.predict_proba(X), other.predict_proba(na))
