"""`yamlnet export RUN --format onnx`, checked by ONNX's checker and by onnxruntime (the
consumer's own runtime): on a run's own data its outputs equal predictions.csv within
1e-5 (float32) or 1e-9 (float64), for every example, every activation and every typed
column; what cannot be expressed is refused with exit 2."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, ROOT, write, yamlnet

from runner import api, vocabulary
from runner.engine.activations import erfc as engine_erfc
from runner.runs import export

onnx = pytest.importorskip("onnx", reason="export tests need the extra 'onnx'")
ort = pytest.importorskip("onnxruntime", reason="export tests run the model in onnxruntime")

EXAMPLES = sorted(CONFIGS.glob("*.yaml"))
TOLERANCE = {"float32": 1e-5, "float64": 1e-9}


def run_folders(config, out):
    """The run folders of a config: its one run, or every complete trial of a sweep
    (under successive halving the others are halted, and export refuses them)."""
    result = api.run(config, out=out)
    if config.sweep is not None:
        assert result.failed == 0
        return [Path(t.plan.folder) for t, o in zip(result.trials, result.outcomes)
                if o.status != "halted"]
    assert result.status == "complete"
    return [Path(result.folder)]


def exported(folder, out=None):
    """Export `folder` with the real CLI; the checked model and an onnxruntime session."""
    args = ["export", folder, "--format", "onnx"] + (["--out", out] if out else [])
    code, stdout, err = yamlnet(*args)
    assert code == 0, err
    path = Path(out or folder / "model.onnx")
    assert stdout.strip() == f"wrote {out or os.path.join(str(folder), 'model.onnx')}"
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return model, session


def metadata(model):
    return {p.key: p.value for p in model.metadata_props}


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def feeds(session, model, rows, dtype, na_values, targets):
    """The inputs of the model for table rows (dicts of cell texts), built here from the
    documented signature: X of the feature columns, or one (batch, 1) input per column,
    strings as stripped texts and numbers with NaN for a missing cell."""
    out = {}
    for i in session.get_inputs():
        if i.name == "X":
            names = json.loads(metadata(model).get("features", "null")) or [
                c for c in rows[0] if c not in targets]
            out["X"] = np.array([[float(r[n]) for n in names] for r in rows], dtype)
        elif i.type == "tensor(string)":
            out[i.name] = np.array([[r[i.name].strip()] for r in rows], dtype=object)
        else:
            out[i.name] = np.array([[np.nan if r[i.name].strip() in na_values
                                     else float(r[i.name])] for r in rows], dtype)
    return out


def check_against_predictions(folder):
    """Run the exported model on the rows the run predicted; compare with predictions.csv."""
    config, _, _, info = api.load_run(str(folder))
    model, session = exported(folder)
    source = config.prediction()[1]
    assert source.endswith(".csv"), source
    targets = [str(t) for t in (config.data.targets if isinstance(config.data.targets, list)
                                else [config.data.targets] if config.data.targets else [])]
    rows = read_rows(source)
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, feeds(session, model, rows, config.dtype,
                                           config.data.na_values, targets))))
    expected = read_rows(folder / "predictions.csv")
    K = len([c for c in expected[0] if c.startswith("y")])
    P = np.array([[float(r[f"y{k}"]) for k in range(K)] for r in expected])
    name = "probabilities" if "probabilities" in got else "values"
    assert got[name].shape == P.shape and got[name].dtype == np.dtype(config.dtype)
    tol = TOLERANCE[config.dtype]
    np.testing.assert_allclose(got[name], P, rtol=tol, atol=tol)
    if "label" in expected[0]:
        assert got["label"].tolist() == [r["label"] for r in expected]
        with np.load(folder / "weights.npz") as w:
            assert json.loads(metadata(model)["classes"]) == w["classes"].astype(str).tolist()
    else:
        assert "label" not in got
    assert metadata(model)["yamlnet.run_id"] == info["id"]
    return got, model


@pytest.mark.slow
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_exports_and_matches_its_predictions(path, tmp_path):
    for folder in run_folders(api.load_config(str(path)), tmp_path / "runs"):
        check_against_predictions(folder)


def every_activation(dtype, epochs, std):
    """iris through one hidden layer per activation of the vocabulary, softmax last."""
    hidden = [{"units": 6, "activation": {"name": e.name, **{p.name: p.default * 0.7 + 0.05
                                                             for p in e.params}},
               "init": {"name": "normal", "mean": 0.0, "std": std}}
              for e in vocabulary.ACTIVATIONS if e.name != "softmax"]
    config = {"name": f"every_{dtype}", "dtype": dtype, "seed": 3,
              "data": {"path": str(CONFIGS / "iris.csv"), "targets": ["species"],
                       "scale": "standard"},
              "model": {"layers": hidden + [{"units": 3, "activation": "softmax"}]}}
    if epochs:
        config["train"] = {"loss": "categorical_crossentropy", "epochs": epochs,
                           "optimizer": {"name": "adam", "lr": 0.01}}
    return api.load_config_dict(config)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("epochs, std", [(40, 0.5), (0, 2.0)], ids=["fit", "forward"])
def test_a_run_with_every_activation_matches(dtype, epochs, std, tmp_path):
    (folder,) = run_folders(every_activation(dtype, epochs, std), tmp_path / "runs")
    got, model = check_against_predictions(folder)
    ops = {n.op_type for n in model.graph.node}
    assert {"Tanh", "Sigmoid", "Relu", "LeakyRelu", "Softmax", "Floor"} <= ops
    assert "Erf" not in ops and "Gelu" not in ops  # float32-only kernels in onnxruntime


@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-14), ("float32", 2e-6)])
def test_erfc_in_onnx_is_the_engines(dtype, rtol):
    """Cody's erfc, as nodes, against the engine's own over every range of |x|."""
    from onnx import TensorProto, helper

    from runner.runs import onnx_ops

    g = onnx_ops.Graph(dtype)
    elem = TensorProto.DOUBLE if dtype == "float64" else TensorProto.FLOAT
    g.inputs.append(helper.make_tensor_value_info("x", elem, ["n"]))
    g.outputs.append(helper.make_tensor_value_info(g.rename(onnx_ops.erfc(g, "x"), "y"), elem, ["n"]))
    model = helper.make_model(helper.make_graph(g.nodes, "erfc", g.inputs, g.outputs, g.initializers),
                              opset_imports=[helper.make_opsetid("", export.OPSET)])
    model.ir_version = export.IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    x = np.concatenate([np.linspace(-30, 30, 4001), [0.0, 0.46875, -0.46875, 4.0, -4.0, 9.0,
                                                     26.5, 1e-20, -1e-20, np.inf, -np.inf]])
    x = x.astype(dtype)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    expected = engine_erfc(x)
    tiny = np.finfo(dtype).tiny * 1e6  # below it, both are underflow
    np.testing.assert_allclose(y, expected, rtol=rtol, atol=tiny)
    assert y[x == -np.inf][0] == 2.0 and y[x == np.inf][0] == 0.0


def test_export_covers_every_activation_of_the_vocabulary():
    from runner.runs import onnx_ops

    assert set(onnx_ops.ACTIVATIONS) == set(vocabulary.names(vocabulary.ACTIVATIONS))


TYPED = """a,b,c,d,e,f,g,h,price,buy
{rows}"""


def typed_table(path, n=80):
    """A table of every typed-column option: fills, scalings, drop_row, categories with
    (missing) and (other), binary numbers, true/false and texts; a positive price and a
    yes/no target."""
    rng = np.random.default_rng(5)
    lines = []
    for i in range(n):
        a = "NA" if i % 9 == 0 else f"{rng.normal(10, 3):.3f}"
        b = "" if i % 7 == 0 else f"{rng.normal(0, 1):.4f}"
        c = "NA" if i in (5, 40) else f"{rng.uniform(-1, 1):.3f}"
        d = ["red", "green", "blue", "teal", "NA"][int(rng.integers(5))]
        e = "NA" if i == 17 else ["x", "y"][i % 2]
        f = ["2", "4", "4.0"][i % 3]
        g = ["true", "FALSE", "True", "false"][i % 4]
        h = ["no", "yes"][int(rng.integers(2))]
        price = f"{np.exp(rng.normal(1, 0.5)) + (h == 'yes'):.4f}"
        buy = "yes" if (g.lower() == "true") != (i % 5 == 0) else "no"
        lines.append(",".join([a, b, c, d, e, f, g, h, price, buy]))
    return write(path, TYPED.format(rows="\n".join(lines)) + "\n")


FEATURES = {
    "a": {"type": "numeric", "missing": "mean", "scale": "minmax"},
    "b": {"type": "numeric", "missing": "constant", "value": 3.5},
    "c": {"type": "numeric", "missing": "drop_row", "scale": "standard"},
    "d": {"type": "categorical", "missing": "category", "max_categories": 3, "unknown": "ignore"},
    "e": {"type": "categorical", "missing": "drop_row"},
    "f": "binary", "g": "binary", "h": "binary",
}


@pytest.mark.parametrize("target, dtype", [("price", "float64"), ("buy", "float32")])
def test_every_typed_column_exports_and_matches(target, dtype, tmp_path):
    path = typed_table(tmp_path / "table.csv")
    classify = target == "buy"
    config = api.load_config_dict({
        "name": f"typed_{target}", "dtype": dtype,
        "data": {"path": str(path), "features": FEATURES, "targets": target,
                 "target_scale": "none" if classify else "log"},
        "model": {"layers": [{"units": 8, "activation": "tanh"},
                             {"units": 1, "activation": "sigmoid" if classify else "identity"}]},
        "train": {"loss": "binary_crossentropy" if classify else "mse", "epochs": 30}})
    (folder,) = run_folders(config, tmp_path / "runs")
    saved = json.loads((folder / "preprocess.json").read_text())
    kinds = {c["name"]: c.get("kind") for c in saved["features"]["columns"]}
    assert kinds["f"] == "number" and kinds["g"] == "boolean" and kinds["h"] == "text"
    assert saved["features"]["columns"][3]["other"]  # d has an (other) column
    got, model = check_against_predictions(folder)
    out = got["probabilities" if classify else "values"]
    dropped = np.isnan(out[:, 0])
    assert dropped.sum() == 3  # rows 5, 17 and 40: drop_row in c and e
    types = {i.name: i.type.tensor_type.elem_type for i in model.graph.input}
    assert [i.name for i in model.graph.input] == list(FEATURES)
    assert types["a"] == types["f"] == (onnx.TensorProto.DOUBLE if dtype == "float64"
                                        else onnx.TensorProto.FLOAT)
    assert types["d"] == types["g"] == types["h"] == onnx.TensorProto.STRING
    if classify:
        assert json.loads(metadata(model)["classes"]) == ["no", "yes"]
        assert set(got["label"][dropped]) == {""} and "" not in set(got["label"][~dropped])
    else:
        assert (out[~dropped] > 0).all()  # log target scaling inverted: prices


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    out = tmp_path_factory.mktemp("penguins")
    (folder,) = run_folders(api.load_config(str(CONFIGS / "penguins.yaml")), out / "runs")
    return folder


def test_a_row_predict_refuses_gets_nan_and_no_label(penguins, tmp_path):
    rows = read_rows(CONFIGS / "penguins.csv")[:3]
    rows[1]["island"] = "Atlantis"  # unknown: error under the penguins config
    out = tmp_path / "model.onnx"
    model, session = exported(penguins, out)
    probabilities, label = session.run(None, feeds(session, model, rows, "float32",
                                                   ["", "NA"], ["species"]))
    assert np.isnan(probabilities[1]).all() and label[1] == ""
    assert np.isfinite(probabilities[[0, 2]]).all() and label[0] == "Adelie"
    with open(tmp_path / "new.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    code, _, err = yamlnet("predict", "--run", penguins, "--data", tmp_path / "new.csv")
    assert code == 2 and "Atlantis" in err


def test_a_row_with_nan_or_inf_gets_nan_and_no_label_on_listed_columns(tmp_path):
    """predict refuses a non-finite feature; the exported model gives that row NaN
    probabilities and an empty label (ArgMax over NaN said the first class)."""
    config = api.load_config(str(CONFIGS / "iris.yaml"), overrides=["train.epochs=3"])
    (folder,) = run_folders(config, tmp_path / "runs")
    _, session = exported(folder, tmp_path / "m.onnx")
    X = np.array([[5.1, np.nan, 1.4, 0.2], [5.1, 3.5, 1.4, 0.2], [np.inf, 3.5, 1.4, 0.2],
                  [6.5, 3.0, 5.5, -np.inf]], np.float32)
    probabilities, label = session.run(None, {"X": X})
    bad = [0, 2, 3]
    assert np.isnan(probabilities[bad]).all() and list(label[bad]) == ["", "", ""]
    assert np.isfinite(probabilities[1]).all() and label[1] == "setosa"


def test_a_column_type_without_an_onnx_form_is_refused(penguins, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(penguins, folder)
    saved = json.loads((folder / "preprocess.json").read_text())
    saved["features"]["columns"][4]["type"] = "text"  # island, as a type the export lacks
    (folder / "preprocess.json").write_text(json.dumps(saved))
    code, out, err = yamlnet("export", folder, "--format", "onnx")
    assert code == 2 and "Traceback" not in err
    assert "column 'island' is of type 'text'" in err and "numeric, categorical, binary" in err
    assert not (folder / "model.onnx").exists()


def test_export_of_an_unfinished_or_missing_run_is_exit_2(tmp_path):
    code, _, err = yamlnet("export", tmp_path / "nothing", "--format", "onnx")
    assert code == 2 and "no such run folder" in err
    code, _, err = yamlnet("export", tmp_path, "--format", "tflite")
    assert code == 2 and "tflite" in err


BLOCKED = """import sys
for name in ("onnx", "onnxruntime", "mlflow"):
    sys.modules[name] = None  # as if the package were not installed
{code}
"""


def blocked(code, cwd):
    proc = subprocess.run([sys.executable, "-c", BLOCKED.format(code=code)], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc.returncode, proc.stdout, proc.stderr


def test_without_the_extras_the_api_imports_and_export_names_the_extra(penguins, tmp_path):
    code, out, err = blocked("import runner.api, runner.cli; print('ok')", tmp_path)
    assert code == 0 and out.strip() == "ok", err
    cli = f"sys.argv = ['yamlnet', 'export', {str(penguins)!r}]\nfrom runner.cli import main\nmain()"
    code, out, err = blocked(cli, tmp_path)
    assert code == 2
    assert err.strip() == "error: " + export.EXTRA
