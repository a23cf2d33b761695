"""A table of bad configs and data files through the real CLI: each exits 2, names the
file and line (or data row) and the dotted path, prints no traceback and leaves no run
folder claiming `complete`.

In each config the offending line carries the marker `#!`; the expected line number
is found from the text itself. Data cases give the bad file and the expected row."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write, yamlnet

BASE = """\
name: case
data:
  path: d.csv
  targets: [y]
model:
  layers:
    - units: 3
      activation: tanh
    - units: 1
      activation: sigmoid
train:
  loss: binary_crossentropy
  optimizer: {name: sgd, lr: 0.5}
  epochs: 3
  batch_size: 2
"""
GOOD_CSV = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"


def edit(old, new):
    assert old in BASE, old
    return BASE.replace(old, new)


# (id, config text, dotted path in the message (or, for a file that is no config at
# all, what the message says), extra files {name: text})
CONFIG_CASES = [
    ("unknown activation", edit("activation: tanh", "activation: relux  #!"),
     "model.layers.0.activation", {}),
    ("misspelled key", edit("    - units: 3", "    - unit: 3  #!"), "model.layers.0", {}),
    ("string for a count", edit("units: 3", 'units: "3"  #!'), "model.layers.0.units", {}),
    ("zero units", edit("units: 3", "units: 0  #!"), "model.layers.0.units", {}),
    ("float units", edit("units: 3", "units: 2.5  #!"), "model.layers.0.units", {}),
    ("absurd units", edit("units: 3", "units: 1000000000000  #!"), "model.layers.0.units", {}),
    ("duplicate key", edit("  epochs: 3", "  epochs: 3\n  epochs: 4  #!"), "train.epochs", {}),
    ("syntax error", edit("  epochs: 3", "  epochs: 3: 4  #!"),
     "invalid YAML: mapping values are not allowed", {}),
    ("list at the top", "- units: 3  #!\n", "the file holds a list; a config is a mapping", {}),
    ("loss vs output", edit("  loss: binary_crossentropy", "  loss: categorical_crossentropy  #!"),
     "train.loss", {}),
    ("unknown optimizer", edit("  optimizer: {name: sgd, lr: 0.5}", "  optimizer: adamm  #!"),
     "train.optimizer", {}),
    ("negative lr", edit("{name: sgd, lr: 0.5}", "{name: sgd, lr: -0.5}  #!"), "train.optimizer.lr",
     {}),
    ("bad batch size", edit("batch_size: 2", "batch_size: all  #!"), "train.batch_size", {}),
    ("float epochs", edit("epochs: 3", "epochs: 3.0  #!"), "train.epochs", {}),
    ("unknown dtype", "dtype: float16  #!\n" + BASE, "dtype", {}),
    ("unknown scale", edit("  targets: [y]", "  targets: [y]\n  scale: zscore  #!"), "data.scale", {}),
    ("split outside (0, 1)", edit("  targets: [y]", "  targets: [y]\n  validation_split: 1.5  #!"),
     "data.validation_split", {}),
    ("name escaping the folder", edit("name: case", "name: ../../etc  #!"), "name", {}),
    ("unknown init", edit("activation: tanh", "activation: tanh\n      init: xavier  #!"),
     "model.layers.0.init", {}),
    ("unknown metric", edit("  batch_size: 2", "  batch_size: 2\n  metrics: [acc]  #!"),
     "train.metrics.0", {}),
    ("monitor without validation", edit(
        "  batch_size: 2", "  batch_size: 2\n  early_stopping: {monitor: val_loss}  #!"),
     "train.early_stopping", {}),
    ("python tag", edit("name: case", "name: !!python/object/apply:os.system ['touch pwned']  #!"),
     "name", {}),
    ("missing data file", edit("path: d.csv", "path: nowhere.csv  #!"), "data.path", {}),
    ("bad grid path", BASE + "sweep:\n  grid:\n    model.layers.5.units: [1, 2]  #!\n",
     "sweep.grid", {}),
]

# (id, data file text, expected row, words the message must hold)
DATA_CASES = [
    ("ragged row", "x1,x2,y\n0,0,0\n0,1\n1,0,1\n", 3, "expected 3 columns, found 2"),
    ("non-numeric value", "x1,x2,y\n0,0,0\n0,abc,1\n", 3, "'abc'"),
    ("NaN value", "x1,x2,y\n0,0,0\n0,1,1\nnan,0,1\n", 4, "x1"),
    ("infinite value", "x1,x2,y\n0,0,0\n0,inf,1\n", 3, "x2"),
    ("header only", "x1,x2,y\n", None, "no data rows"),
    ("unknown target column", "x1,x2,z\n0,0,0\n", 1, "'y'"),
]


def marked_line(text):
    for number, line in enumerate(text.splitlines(), start=1):
        if line.endswith("#!"):
            return number
    raise AssertionError("no #! marker")


def assert_refused(code, err, tmp_path):
    assert code == 2, err
    assert "Traceback" not in err and err.strip()
    for run_json in Path(tmp_path).glob("runs/**/run.json"):
        assert json.loads(run_json.read_text())["status"] != "complete"


@pytest.mark.parametrize("text,path,files", [c[1:] for c in CONFIG_CASES],
                         ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(tmp_path, text, path, files):
    write(tmp_path / "d.csv", GOOD_CSV)
    for name, content in files.items():
        write(tmp_path / name, content)
    config = write(tmp_path / "case.yaml", text)
    code, _, err = yamlnet("run", "--config", config, cwd=tmp_path)
    assert_refused(code, err, tmp_path)
    assert f"{config}:{marked_line(text)}:" in err
    assert path in err
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("csv_text,row,words", [c[1:] for c in DATA_CASES],
                         ids=[c[0] for c in DATA_CASES])
def test_bad_data(tmp_path, csv_text, row, words):
    data = write(tmp_path / "d.csv", csv_text)
    config = write(tmp_path / "case.yaml", BASE)
    code, _, err = yamlnet("run", "--config", config, cwd=tmp_path)
    assert_refused(code, err, tmp_path)
    assert (f"{data.name}:{row}:" if row else f"{data.name}:") in err
    # located at the key that named what is wrong: the missing column's list, else the file
    key = "data.targets" if words == "'y'" else "data.path"
    assert words in err and f"{key}: " in err, err


def test_empty_config_file(tmp_path):
    config = write(tmp_path / "case.yaml", "")
    code, _, err = yamlnet("run", "--config", config)
    assert_refused(code, err, tmp_path)
    assert f"{config}:1:" in err


def test_classes_versus_output_units(tmp_path):
    write(tmp_path / "d.csv", "x1,x2,y\n0,0,a\n0,1,b\n1,0,c\n")
    text = (BASE.replace("binary_crossentropy", "categorical_crossentropy")
            .replace("activation: sigmoid", "activation: softmax").replace("units: 1", "units: 2"))
    config = write(tmp_path / "case.yaml", text)
    code, _, err = yamlnet("run", "--config", config)
    assert_refused(code, err, tmp_path)
    assert "3 classes" in err and "model.layers.1.units: 3" in err


def test_weights_of_the_wrong_shape(tmp_path):
    write(tmp_path / "d.csv", GOOD_CSV)
    np.savez(tmp_path / "w.npz", **{"layers.0.W": np.zeros((2, 4)), "layers.0.b": np.zeros(4),
                                    "layers.1.W": np.zeros((3, 1)), "layers.1.b": np.zeros(1)})
    config = write(tmp_path / "case.yaml", BASE.replace("  layers:", "  weights: w.npz\n  layers:"))
    code, _, err = yamlnet("run", "--config", config)
    assert_refused(code, err, tmp_path)
    assert "w.npz" in err and "layers.0.W" in err and "(2, 3)" in err


def test_pickled_weights_are_refused(tmp_path):
    write(tmp_path / "d.csv", GOOD_CSV)
    np.savez(tmp_path / "w.npz", **{"layers.0.W": np.array([{"x": 1}], dtype=object)})
    config = write(tmp_path / "case.yaml", BASE.replace("  layers:", "  weights: w.npz\n  layers:"))
    code, _, err = yamlnet("run", "--config", config)
    assert_refused(code, err, tmp_path)
    assert "w.npz" in err and "pickle" in err
