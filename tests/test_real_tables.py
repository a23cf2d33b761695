"""Real tables end to end: typed columns with missing values, label coding, CSV dialects,
target scaling, and predictions that replay the run's preprocessing (docs/data.md)."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, write, yamlnet

from runner import api
from runner.io import weights

IRIS = """\
name: iris
seed: 3
data:
  path: {path}
  features: {features}
  targets: {targets}
  scale: standard
  validation_split: 0.2
{extra}model:
  layers:
    - units: 8
      activation: tanh
    - units: 3
      activation: softmax
train:
  loss: categorical_crossentropy
  optimizer: {{name: adam, lr: 0.01}}
  epochs: 20
  batch_size: 16
  metrics: [accuracy]
"""


def iris_rows():
    with open(CONFIGS / "iris.csv") as f:
        return list(csv.reader(f))


def fit(tmp_path, text, name="c.yaml"):
    config = api.load_config(write(tmp_path / name, text))
    outcome = api.run(config, out=tmp_path / "runs")
    assert outcome.status == "complete"
    return Path(outcome.folder)


def weight_arrays(folder):
    return weights.load(folder / "weights.npz")


# ---- the tutorial table ---------------------------------------------------------------

@pytest.mark.slow
def test_penguins_reach_097_validation_accuracy_for_four_seeds_of_five(tmp_path):
    scores = []
    for seed in range(5):
        config = api.load_config(CONFIGS / "penguins.yaml", overrides=[f"seed={seed}"])
        scores.append(api.run(config, out=tmp_path / "runs").metrics["val_accuracy"])
    assert sum(s >= 0.97 for s in scores) >= 4, scores


def test_penguins_plan_is_saved_and_replayed(tmp_path):
    folder = Path(api.run(api.load_config(CONFIGS / "penguins.yaml",
                                          overrides=["train.epochs=5"]),
                          out=tmp_path / "runs").folder)
    saved = json.loads((folder / "preprocess.json").read_text())
    columns = {c["name"]: c for c in saved["features"]["columns"]}
    assert columns["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"]
    assert columns["sex"]["categories"] == ["female", "male"]
    # the fill is the median of the training rows, which are 80% of the complete ones
    with open(CONFIGS / "penguins.csv") as f:
        mass = [float(r["body_mass_g"]) for r in csv.DictReader(f) if r["body_mass_g"] != "NA"]
    assert min(mass) <= columns["body_mass_g"]["fill"] <= max(mass)
    assert saved["features"]["rows"] == 275  # 344 rows, 20% held out
    assert api.verify(folder) == {"id": True, "weights.npz": True, "history.csv": True,
                                  "predictions.csv": True, "preprocess.json": True}
    (folder / "preprocess.json").write_text(json.dumps({**saved, "format": 0}))
    assert api.verify(folder)["preprocess.json"] is False


def test_predict_matches_columns_by_name_in_any_order_and_keeps_ids(tmp_path):
    folder = Path(api.run(api.load_config(CONFIGS / "penguins.yaml",
                                          overrides=["train.epochs=5"]),
                          out=tmp_path / "runs").folder)
    with open(CONFIGS / "penguins.csv") as f:
        rows = list(csv.reader(f))
    order = list(range(len(rows[0])))[::-1]
    with open(tmp_path / "shuffled.csv", "w") as f:
        f.write("id;" + ";".join(rows[0][j] for j in order) + "\n")
        for i, row in enumerate(rows[1:]):
            f.write(f"p{i};" + ";".join(row[j] for j in order) + "\n")
    code, _, err = yamlnet("predict", "--run", folder, "--data", tmp_path / "shuffled.csv",
                           "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert (tmp_path / "p.csv").read_bytes() == (folder / "predictions.csv").read_bytes()
    code, _, err = yamlnet("predict", "--run", folder, "--data", tmp_path / "shuffled.csv",
                           "--out", tmp_path / "k.csv", "--keep", "id")
    assert code == 0, err
    with open(tmp_path / "k.csv") as f:
        kept = list(csv.reader(f))
    with open(folder / "predictions.csv") as f:
        plain = list(csv.reader(f))
    assert kept[0] == ["id"] + plain[0]
    assert [r[0] for r in kept[1:]] == [f"p{i}" for i in range(len(rows) - 1)]
    assert [r[1:] for r in kept[1:]] == plain[1:]


def test_unseen_category_is_refused_or_encoded_as_zeros(tmp_path):
    config = (CONFIGS / "penguins.yaml").read_text().replace("penguins.csv",
                                                             str(CONFIGS / "penguins.csv"))
    folder = fit(tmp_path, config.replace("epochs: 200", "epochs: 3"))
    with open(CONFIGS / "penguins.csv") as f:
        text = f.read()
    write(tmp_path / "new.csv", text.replace("Adelie,Dream,", "Adelie,Atlantis,", 1))
    line = 1 + text.split("\n").index(next(r for r in text.split("\n") if ",Dream," in r))
    code, _, err = yamlnet("predict", "--run", folder, "--data", tmp_path / "new.csv")
    assert code == 2
    assert f"new.csv:{line}: category not seen in training (column 'island') in 1 cell" in err
    assert f"row {line} column 'island': 'Atlantis'" in err and "Traceback" not in err
    assert not list(folder.glob("predictions-new*"))

    ignoring = config.replace("island: categorical",
                              "island: {type: categorical, unknown: ignore}")
    folder = fit(tmp_path, ignoring.replace("epochs: 200", "epochs: 3"), "ignore.yaml")
    out = api.predict_run(folder, str(tmp_path / "new.csv"), out=str(tmp_path / "p.csv"))
    config_, net, _, _ = api.load_run(folder)
    state = json.loads((folder / "preprocess.json").read_text())["features"]
    # an independent encoding of the changed row: numeric columns filled and scaled,
    # island all zeros, sex one-hot
    with open(tmp_path / "new.csv") as f:
        row = list(csv.DictReader(f))[line - 2]
    x = []
    for col in state["columns"]:
        value = row[col["name"]]
        if col["type"] == "numeric":
            v = col["fill"] if value == "NA" else float(value)
            x.append((v - col["mean"]) / col["std"])
        else:
            cats = col["categories"] + ["(missing)"] * col["missing_column"]
            value = "(missing)" if value == "NA" else value
            x += [float(value == c) for c in cats]
    assert x[4:7] == [0.0, 0.0, 0.0]  # island
    expected = net.forward(np.array([x], np.float32))[0].astype(np.float64)
    with open(out) as f:
        got = [float(v) for v in list(csv.reader(f))[line - 1][:3]]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-12)


# ---- dialects --------------------------------------------------------------------------

def _iris_variant(tmp_path, name, delimiter=",", decimal=".", header=True):
    rows = iris_rows()
    with open(tmp_path / name, "w") as f:
        for row in rows if header else rows[1:]:
            f.write(delimiter.join(cell.replace(".", decimal) for cell in row) + "\n")
    return tmp_path / name


@pytest.mark.slow
def test_dialects_of_one_table_give_the_same_weights_bit_for_bit(tmp_path):
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    plain = fit(tmp_path, IRIS.format(path=CONFIGS / "iris.csv", features=names,
                                      targets="species", extra=""), "plain.yaml")
    reference = weight_arrays(plain)
    variants = {
        "semicolon": (_iris_variant(tmp_path, "semi.csv", ";"), names, "species", ""),
        "tab": (_iris_variant(tmp_path, "tab.tsv", "\t"), names, "species", ""),
        "pipe, decimal comma": (_iris_variant(tmp_path, "dc.txt", "|", ","), names, "species",
                                "  decimal: ','\n"),
        "no header": (_iris_variant(tmp_path, "nohead.csv", header=False), [0, 1, 2, 3], 4,
                      "  header: false\n"),
    }
    for label, (path, features, targets, extra) in variants.items():
        folder = fit(tmp_path, IRIS.format(path=path, features=features, targets=targets,
                                           extra=extra), label.replace(" ", "_") + ".yaml")
        got = weight_arrays(folder)
        assert sorted(got) == sorted(reference), label
        for key in reference:
            assert got[key].tobytes() == reference[key].tobytes(), (label, key)
        assert (folder / "predictions.csv").read_bytes() == \
            (plain / "predictions.csv").read_bytes(), label


@pytest.mark.slow
def test_typed_columns_give_the_same_weights_in_every_dialect(tmp_path):
    typed = "{" + ", ".join(f"{n}: numeric" for n in ("sepal_length", "sepal_width")) + \
        ", petal_length: {type: numeric, scale: minmax}, petal_width: numeric}"
    plain = weight_arrays(fit(tmp_path, IRIS.format(path=CONFIGS / "iris.csv", features=typed,
                                                    targets="species", extra=""), "p.yaml"))
    path = _iris_variant(tmp_path, "semi.csv", ";", ",")
    got = weight_arrays(fit(tmp_path, IRIS.format(path=path, features=typed, targets="species",
                                                  extra="  decimal: ','\n"), "s.yaml"))
    assert all(got[k].tobytes() == plain[k].tobytes() for k in plain)


# ---- targets that cannot be mis-coded ---------------------------------------------------

BINARY = """\
seed: 1
data:
  path: {path}
  targets: [y]
  scale: standard
model:
  layers:
    - units: 4
      activation: tanh
    - units: 1
      activation: sigmoid
train:
  loss: binary_crossentropy
  optimizer: {{name: adam, lr: 0.05}}
  epochs: 30
  batch_size: 8
  metrics: [accuracy]
"""


def binary_table(tmp_path, name, codes):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    lines = ["x1,x2,y"] + [f"{a!r},{b!r},{codes[v]}" for (a, b), v in zip(X.tolist(), y)]
    return write(tmp_path / name, "\n".join(lines) + "\n"), y


@pytest.mark.parametrize("codes", [("2", "4"), ("-1", "1"), ("no", "yes"), ("benign", "malignant")])
def test_binary_targets_coded_otherwise_fit_as_zero_one_and_predict_their_labels(tmp_path, codes):
    path01, y = binary_table(tmp_path, "01.csv", ("0", "1"))
    path, _ = binary_table(tmp_path, "coded.csv", codes)
    reference = fit(tmp_path, BINARY.format(path=path01), "a.yaml")
    folder = fit(tmp_path, BINARY.format(path=path), "b.yaml")
    a, b = weight_arrays(reference), weight_arrays(folder)
    for key in ("layers.0.W", "layers.0.b", "layers.1.W", "layers.1.b"):
        assert a[key].tobytes() == b[key].tobytes(), key
    assert list(b["classes"]) == list(codes)
    with open(reference / "predictions.csv") as f:
        p01 = [float(r["y0"]) for r in csv.DictReader(f)]
    with open(folder / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["y0"]) for r in rows] == p01
    assert [r["label"] for r in rows] == [codes[p > 0.5] for p in p01]
    saved = json.loads((folder / "preprocess.json").read_text())
    assert saved["labels"]["values"] == [int(c) if c.lstrip("-").isdigit() else c for c in codes]


@pytest.mark.parametrize("column, words", [
    (["0.5", "1.25", "3.75", "2.0"] * 15, ["non-integer numbers", "loss mse",
                                           "identity output layer"]),
    (["0", "1", "2"] * 20, ["3 distinct values", "categorical_crossentropy",
                            "3 softmax units"]),
])
def test_binary_loss_refuses_a_target_that_is_not_binary(tmp_path, column, words):
    lines = ["x1,x2,y"] + [f"{i},{i % 7},{v}" for i, v in enumerate(column)]
    write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    write(tmp_path / "c.yaml", BINARY.format(path="d.csv"))
    code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs",
                           cwd=tmp_path)
    assert code == 2, err
    for word in words:
        assert word in err
    assert "Traceback" not in err and "accuracy" not in err
    assert not list((tmp_path / "runs").rglob("run.json"))


def test_softmax_loss_on_a_continuous_target_gets_regression_advice(tmp_path):
    lines = ["x,price"] + [f"{i},{1.5 + i * 0.37!r}" for i in range(214)]
    write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    text = BINARY.format(path="d.csv").replace("targets: [y]", "targets: [price]")
    text = text.replace("units: 1\n      activation: sigmoid", "units: 3\n      activation: softmax")
    write(tmp_path / "c.yaml", text.replace("binary_crossentropy", "categorical_crossentropy"))
    code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs")
    assert code == 2
    assert "non-integer numbers" in err and "loss mse with an identity output" in err
    assert "214" not in err.split("non-integer")[1].split("(")[0]  # no "set units: 214"
    assert "units: 214" not in err


# ---- regression targets on a sane scale ------------------------------------------------

@pytest.mark.parametrize("scale", ["log", "standard", "minmax"])
def test_target_scale_reports_metrics_and_predictions_in_the_targets_units(tmp_path, scale):
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 1, size=(80, 2))
    price = np.exp(2 + X[:, 0] + 0.5 * X[:, 1])  # positive, like prices
    lines = ["a,b,price"] + [f"{a!r},{b!r},{p!r}" for (a, b), p in zip(X.tolist(), price.tolist())]
    write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    text = f"""\
data: {{path: d.csv, targets: [price], target_scale: {scale}}}
model:
  layers:
    - {{units: 8, activation: tanh}}
    - {{units: 1}}
train: {{loss: mse, optimizer: {{name: adam, lr: 0.02}}, epochs: 40, batch_size: 16,
        metrics: [mse, mae, r2]}}
"""
    folder = fit(tmp_path, text)
    metrics = json.loads((folder / "metrics.json").read_text())
    with open(folder / "predictions.csv") as f:
        pred = np.array([float(r["y0"]) for r in csv.DictReader(f)])
    err = pred - price
    assert metrics["mse"] == pytest.approx(np.mean(err**2), rel=1e-4)
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-4)
    r2 = 1 - np.sum(err**2) / np.sum((price - price.mean()) ** 2)
    assert metrics["r2"] == pytest.approx(r2, rel=1e-4, abs=1e-6)
    assert metrics["r2"] > 0.5  # in the targets' units, the fit explains most of the variance
    saved = json.loads((folder / "preprocess.json").read_text())["targets"]
    assert saved["scale"] == scale and saved["names"] == ["price"]


def test_log_target_scale_refuses_non_positive_targets(tmp_path):
    write(tmp_path / "d.csv", "x,y\n1,2\n2,0\n3,5\n")
    write(tmp_path / "c.yaml", "data: {path: d.csv, targets: [y], target_scale: log}\n"
          "model: {layers: [{units: 1}]}\ntrain: {loss: mse, epochs: 2}\n")
    code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs")
    assert code == 2 and "target_scale log takes ln(y)" in err and "c.yaml:1:" in err


# ---- missing values -------------------------------------------------------------------

def test_missing_numeric_cells_are_refused_by_default_with_every_place(tmp_path):
    lines = ["x,y"] + [f"{'NA' if i % 10 == 3 else i},{i % 2}" for i in range(40)]
    write(tmp_path / "d.csv", "\n".join(lines) + "\n")
    text = BINARY.format(path="d.csv").replace("targets: [y]",
                                               "features: {x: numeric}\n  targets: y")
    write(tmp_path / "c.yaml", text)
    code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs")
    assert code == 2
    assert "missing value in 4 cells: row 5 column 'x': 'NA'; row 15" in err
    write(tmp_path / "c.yaml", text.replace("x: numeric", "x: {type: numeric, missing: drop_row}"))
    code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs")
    assert code == 0, err
    folder = next((tmp_path / "runs").rglob("preprocess.json")).parent
    assert json.loads((folder / "preprocess.json").read_text())["features"]["rows"] == 36
    with open(folder / "predictions.csv") as f:  # one line per row; none for the 4 dropped
        rows = list(csv.DictReader(f))
    assert len(rows) == 40
    assert [i for i, r in enumerate(rows) if r["y0"] == "nan"] == [3, 13, 23, 33]
    assert list(rows[0]) == ["y0"]  # 0/1 targets stay as they are: no label column
    assert all(0 <= float(r["y0"]) <= 1 for r in rows if r["y0"] != "nan")


def test_forward_pass_refuses_typed_columns(tmp_path):
    shutil.copy(CONFIGS / "penguins.csv", tmp_path)
    write(tmp_path / "c.yaml", "data: {path: penguins.csv, features: {island: categorical}}\n"
          "model: {layers: [{units: 1}]}\n")
    code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs")
    assert code == 2 and "typed columns are learned by a fit" in err


# ---- Parquet ---------------------------------------------------------------------------

def test_parquet_table_fits_and_predicts_as_the_csv(tmp_path):
    csv_module = pytest.importorskip("pyarrow.csv", reason="the 'parquet' extra (pyarrow)")
    import pyarrow.parquet as pq

    table = csv_module.read_csv(CONFIGS / "penguins.csv", convert_options=csv_module.ConvertOptions(
        strings_can_be_null=True))
    assert table.column("sex").null_count == 11  # "NA" read as null
    pq.write_table(table, tmp_path / "penguins.parquet", row_group_size=100)
    text = (CONFIGS / "penguins.yaml").read_text().replace("epochs: 200", "epochs: 4")
    from_csv = fit(tmp_path, text.replace("penguins.csv", str(CONFIGS / "penguins.csv")), "a.yaml")
    from_parquet = fit(tmp_path, text.replace("penguins.csv", "penguins.parquet"), "b.yaml")
    a, b = weight_arrays(from_csv), weight_arrays(from_parquet)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert (from_parquet / "predictions.csv").read_bytes() == \
        (from_csv / "predictions.csv").read_bytes()
    out = api.predict_run(from_csv, str(tmp_path / "penguins.parquet"), out=str(tmp_path / "p.csv"))
    assert Path(out).read_bytes() == (from_csv / "predictions.csv").read_bytes()


def test_parquet_without_the_extra_names_it(tmp_path, monkeypatch):
    import sys

    from runner.errors import DataError
    from runner.io import data

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as if not installed
    (tmp_path / "t.parquet").write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"needs the 'parquet' extra: pip install 'yamlnet\[parquet\]'"):
        data.load(tmp_path / "t.parquet")


# ---- memory -----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="ru_maxrss: Linux")
def test_predict_over_a_table_with_categories_keeps_memory_flat(tmp_path):
    """A streamed prediction over a 20 MB table with categorical columns holds no more
    memory than over a 1.5 MB one (peaks read in a wrapper process, as in test_memory)."""
    import subprocess
    import sys

    from conftest import ROOT
    from test_memory import MB, WRAPPER

    rng = np.random.default_rng(0)
    n = 20_000
    cols = {"a": rng.normal(size=n).round(4), "b": rng.normal(size=n).round(4),
            "c": rng.choice(["red", "green", "blue", "NA"], n), "d": rng.choice(list("pqrstu"), n)}
    y = (cols["a"] > 0).astype(int)
    lines = ["a,b,c,d,y"] + [f"{a},{b},{c},{d},{t}" for a, b, c, d, t in
                              zip(*(cols[k].tolist() for k in "abcd"), y.tolist())]
    text = "\n".join(lines[1:]) + "\n"
    write(tmp_path / "small.csv", lines[0] + "\n" + text * 3)  # about 1.5 MB, and 20 MB:
    write(tmp_path / "large.csv", lines[0] + "\n" + text * 40)
    folder = fit(tmp_path, f"""\
data:
  path: {tmp_path / 'small.csv'}
  features: {{a: numeric, b: numeric, c: {{type: categorical, missing: category}}, d: categorical}}
  targets: y
model: {{layers: [{{units: 8, activation: tanh}}, {{units: 1, activation: sigmoid}}]}}
train: {{loss: binary_crossentropy, epochs: 1, batch_size: 256}}
""")
    peaks = {}
    for name in ("small", "large"):
        proc = subprocess.run([sys.executable, "-c", WRAPPER, sys.executable, "-m", "runner",
                               "predict", "--run", str(folder), "--data", str(tmp_path / f"{name}.csv"),
                               "--out", str(tmp_path / f"p-{name}.csv")],
                              capture_output=True, text=True, timeout=600,
                              env=dict(__import__("os").environ, PYTHONPATH=str(ROOT)))
        assert proc.returncode == 0, proc.stderr
        peaks[name] = int(proc.stderr.strip().splitlines()[-1]) * 1024
    with open(tmp_path / "p-large.csv") as f:
        assert sum(1 for _ in f) == 40 * n + 1
    assert peaks["large"] - peaks["small"] < 25 * MB, {k: v / MB for k, v in peaks.items()}


def test_a_header_that_looks_like_data_is_named(tmp_path):
    rows = iris_rows()[1:]
    write(tmp_path / "d.csv", "\n".join(",".join(r) for r in rows) + "\n")
    write(tmp_path / "c.yaml", IRIS.format(path="d.csv", features="null", targets="species",
                                           extra=""))
    code, _, err = yamlnet("run", "--config", tmp_path / "c.yaml", "--out", tmp_path / "runs")
    assert code == 2
    assert "the header line looks like data (5.1, 3.5, 1.4, 0.2, ...)" in err
    assert "set data.header: false" in err


def test_validate_with_data_prints_the_input_plan(tmp_path):
    code, out, err = yamlnet("validate", "--data", CONFIGS / "penguins.yaml")
    assert code == 0, err
    lines = out.splitlines()
    with open(CONFIGS / "penguins.csv") as f:
        table = list(csv.DictReader(f))
    islands = sorted({r["island"] for r in table})
    row = next(line.split(None, 3) for line in lines if line.startswith("island "))
    assert row[:3] == ["island", "categorical", str(len(islands))]
    assert row[3] == ", ".join(f"island={i}" for i in islands)
    sex = next(line.split(None, 3) for line in lines if line.startswith("sex "))
    assert sex[2] == "3" and sex[3].endswith("sex=(missing)")  # female, male, (missing)
    assert lines[-1] == f"network inputs: {4 + len(islands) + 3}"
