"""A corpus of hostile and broken inputs through the real CLI: configs, data files,
weights files and command-line flags. Every case must exit 2 with one message that
names the file and line (or the data row, or the flag) and says what is allowed; no
traceback, no run folder claiming `complete`, no half-written file, no code run.

Config cases mark the line the message must point at with `#!`; other cases give the
text that locates the problem (`d.csv:3:`, `--workers`). Together with
tests/test_bad_inputs.py (a first, smaller table) this is the bad-input corpus of
docs/cli.md (Errors); this file alone holds more than 40 cases.
"""

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import CONFIGS, ROOT, example_run, write, yamlnet

BASE = """\
name: hostile
seed: 1
data:
  path: d.csv
  targets: [y]
model:
  layers:
    - units: 4
      activation: relu
      init: he_uniform
    - units: 1
      activation: sigmoid
train:
  loss: binary_crossentropy
  optimizer: {name: adam, lr: 0.01}
  epochs: 2
  batch_size: 2
  metrics: [accuracy]
predict:
  batch_size: 8
"""
GOOD = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n"
WEIGHTS = {"layers.0.W": np.ones((2, 4)), "layers.0.b": np.zeros(4),
           "layers.1.W": np.ones((4, 1)), "layers.1.b": np.zeros(1)}


def edit(old, new, text=BASE):
    assert old in text, old
    return text.replace(old, new, 1)


def npz(path, arrays=None, **extra):
    np.savez(path, **{**(WEIGHTS if arrays is None else arrays), **extra})


def npy(array, **kw):
    def make(path):
        np.save(path, array, **kw)
    return make


def truncated_npz(path):
    npz(path)
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def with_weights(text=BASE):
    return edit("  layers:", "  weights: w.npz  #!\n  layers:", text)


# ---------------------------------------------------------------------------------------
# The corpus: (id, files {name: text | bytes | callable(path)}, argv, where, words).
# argv defaults to `run --config case.yaml`; files always hold case.yaml (BASE unless
# given) and d.csv (GOOD unless given); `where=None` means the `#!` line of case.yaml.

CASES = []


def case(id, where=None, words=(), argv=None, **files):
    files = {"d.csv" if name == "d_csv" else name: v for name, v in files.items()}
    CASES.append(pytest.param(files, argv, where, words, id=id))


def config(id, text, *words, **files):
    case(id, None, words, **{"case.yaml": text}, **files)


# -- YAML itself -------------------------------------------------------------------------
config("yaml: unclosed flow mapping",
       edit("{name: adam, lr: 0.01}\n  epochs: 2", "{name: adam, lr: 0.01\n  epochs: 2  #!"),
       "invalid YAML", "'}'", "opened on line 15, column 14")
case("yaml: unclosed quote", "case.yaml:", ["invalid YAML", "quoted scalar",
                                            "opened on line 1, column 7"],
     **{"case.yaml": edit("name: hostile", 'name: "hostile')})
config("yaml: tab indentation", edit("    - units: 1\n", "    - units: 1\n\t  #!\n"),
       "invalid YAML", "tab")
config("yaml: bad indentation", edit("  epochs: 2", "   epochs: 2  #!"), "invalid YAML")
config("yaml: comments only", "# nothing but a comment  #!\n", "empty", "data:", "model:")
config("yaml: null document", "~  #!\n", "empty", "mapping")
config("yaml: list at the top", "- data: {path: d.csv}  #!\n- model: {}\n", "a list",
       "mapping")
config("yaml: scalar at the top", "just some words  #!\n", "the string", "mapping")
config("yaml: NUL character", "name: x\x00  #!\n", "not allowed")
config("yaml: not UTF-8", b"name: \xff\xfe  #!\n", "UTF-8")
config("yaml: nested 10,000 deep", "x: " + "[" * 10000 + "]" * 10000 + "  #!\n",
       "nest")
config("yaml: recursive alias", "x: &a [1, *a]  #!\n" + BASE, "recursive alias")
# -- unknown, misspelled and duplicate keys ------------------------------------------------
config("key: misspelled section", edit("train:", "trian:  #!"), "unknown key 'trian'",
       "did you mean 'train'", "allowed:")
config("key: misspelled in data", edit("  targets: [y]", "  target: [y]  #!"),
       "did you mean 'targets'", "allowed:")
config("key: unknown optimizer field", edit("lr: 0.01}", "learning_rate: 0.01}  #!"),
       "unknown key 'learning_rate'", "allowed: name, lr")
config("key: parameter of another variant",
       edit("activation: relu", "activation: {name: relu, alpha: 0.1}  #!"),
       "unknown key 'alpha'")
config("key: duplicate in a layer", edit("    - units: 4", "    - units: 4\n      units: 8  #!"),
       "duplicate key 'units'", "line 8")
config("key: duplicate section", BASE + "seed: 2  #!\n", "duplicate key 'seed'", "line 2")
# -- wrong types ---------------------------------------------------------------------------
config("type: string for epochs", edit("epochs: 2", 'epochs: "2"  #!'), "expected an integer",
       "the string '2'")
config("type: float batch size", edit("batch_size: 2", "batch_size: 2.5  #!"),
       "an integer", "'full'")
config("type: metrics not a list", edit("metrics: [accuracy]", "metrics: accuracy  #!"),
       "expected a list")
config("type: yes is not a boolean", edit("  batch_size: 2", "  batch_size: 2\n  shuffle: yes  #!"),
       "true or false", "the string 'yes'")
config("type: layers as a mapping", edit("  layers:\n", "  layers: {units: 4}  #!\n  old:\n"),
       "expected a list")
config("type: string for a float", edit("lr: 0.01}", 'lr: "0.01"}  #!'), "expected a number")
# -- zero, negative and absurd sizes -------------------------------------------------------
config("size: zero epochs", edit("epochs: 2", "epochs: 0  #!"), "a value >= 1", "got 0")
config("size: negative seed", edit("seed: 1", "seed: -1  #!"), "a value >= 0")
config("size: negative units", edit("units: 4", "units: -4  #!"), "a value >= 1")
config("size: no layers", edit("  layers:", "  layers: []  #!\n  unused:"), "at least 1 item")
config("size: zero predict batch", edit("  batch_size: 8", "  batch_size: 0  #!"),
       "a value >= 1")
config("size: 10^12 epochs", edit("epochs: 2", "epochs: 1000000000000  #!"), "a value <=")
config("size: parameters over the budget",
       edit("    - units: 4\n", "    - units: 1000000\n    - units: 1000000  #!\n"
            "    - units: 1000000\n"), "parameters", "2 GiB limit", "fewer units")
# -- unknown names in every vocabulary ----------------------------------------------------
config("name: activation", edit("activation: relu", "activation: {name: relux}  #!"),
       "'relux' is not an activation", "did you mean 'relu'", "one of:")
config("name: init", edit("init: he_uniform", "init: he  #!"), "is not an initializer",
       "one of:")
config("name: bias init", edit("init: he_uniform", "init: he_uniform\n      bias_init: zero  #!"),
       "did you mean 'zeros'", "one of:")
config("name: loss", edit("loss: binary_crossentropy", "loss: bce  #!"), "is not a loss",
       "one of:")
config("name: optimizer", edit("{name: adam, lr: 0.01}", "{name: adamax, lr: 0.01}  #!"),
       "'adamax' is not an optimizer", "one of:")
config("name: metric", edit("metrics: [accuracy]", "metrics: [precision]  #!"),
       "is not a metric", "one of:")
config("name: scale", edit("  targets: [y]", "  targets: [y]\n  scale: normalize  #!"),
       "is not a scaling", "one of: none, standard, minmax")
config("name: dtype", "dtype: half  #!\n" + BASE, "is not a dtype", "one of: float32, float64")
config("name: predict format", edit("  batch_size: 8", "  batch_size: 8\n  format: parquet  #!"),
       "is not a format", "one of: csv, npy")
config("name: monitor", edit("  metrics: [accuracy]", "  metrics: [accuracy]\n"
                             "  early_stopping: {monitor: acc}  #!"),
       "'acc' is not recorded", "one of:")
# -- impossible combinations ---------------------------------------------------------------
config("combo: validation_split 1.0", edit("  targets: [y]", "  targets: [y]\n"
                                           "  validation_split: 1.0  #!"), "a value < 1")
config("combo: validation_split negative", edit("  targets: [y]", "  targets: [y]\n"
                                                "  validation_split: -0.2  #!"), "a value >= 0")
config("combo: split and validation file",
       edit("  targets: [y]", "  targets: [y]\n  validation_split: 0.5\n"
            "  validation_path: d.csv  #!"), "not both")
config("combo: accuracy under mse", edit("loss: binary_crossentropy", "loss: mse")
       .replace("metrics: [accuracy]", "metrics: [accuracy]  #!"), "needs loss")
config("combo: softmax of one unit", edit("loss: binary_crossentropy",
                                          "loss: categorical_crossentropy  #!")
       .replace("activation: sigmoid", "activation: softmax"), "at least 2 output units")
config("combo: nesterov without momentum",
       edit("{name: adam, lr: 0.01}", "{name: sgd, lr: 0.1, nesterov: true}  #!"),
       "nesterov needs momentum")
config("combo: uniform low above high",
       edit("init: he_uniform", "init: {name: uniform, low: 1.0, high: -1.0}  #!"),
       "high must be above low")
config("combo: split leaves no training rows",
       edit("  targets: [y]", "  targets: [y]\n  validation_split: 0.9  #!"), "no training rows")
config("combo: two targets, one output unit", edit("  targets: [y]", "  targets: [y, z]  #!"),
       "2 target columns", "units: 2", d_csv="x1,x2,y,z\n0,0,0,1\n1,1,1,0\n")
config("combo: three classes, two units",
       edit("loss: binary_crossentropy", "loss: categorical_crossentropy")
       .replace("    - units: 1\n      activation: sigmoid",
                "    - units: 2\n      activation: softmax")
       .replace("  targets: [y]", "  targets: [y]  #!"),
       "3 classes", "units: 3", d_csv="x1,x2,y\n0,0,a\n0,1,b\n1,0,c\n")
# -- names that would escape the output folder ---------------------------------------------
config("escape: dot-dot", edit("name: hostile", "name: ..  #!"), "not a valid name")
config("escape: absolute", edit("name: hostile", "name: /tmp/evil  #!"), "not a valid name")
config("escape: slash", edit("name: hostile", "name: a/../../b  #!"), "not a valid name")
config("escape: backslash", edit("name: hostile", "name: 'a\\\\b'  #!"), "not a valid name")
# -- YAML tags: nothing runs ---------------------------------------------------------------
config("tag: python/object/apply in data.path",
       edit("path: d.csv", "path: !!python/object/apply:os.system ['touch pwned']  #!"),
       "tag '!!python/object/apply:os.system' is not allowed")
config("tag: python/object/new on a mapping",
       edit("  optimizer: {name: adam, lr: 0.01}",
            "  optimizer: !!python/object/new:subprocess.Popen {args: [[touch, pwned]]}  #!"),
       "is not allowed")
config("tag: python/name", edit("name: hostile", "name: !!python/name:os.system  #!"),
       "is not allowed")
config("tag: local tag", edit("epochs: 2", "epochs: !include other.yaml  #!"), "is not allowed")
config("tag: binary", edit("path: d.csv", "path: !!binary aGVsbG8=  #!"), "is not allowed")
# -- data files ----------------------------------------------------------------------------
config("data: missing file", edit("path: d.csv", "path: nowhere.csv  #!"), "nowhere.csv",
       "file not found")
config("data: a folder", edit("path: d.csv", "path: sub  #!"), "a folder", **{"sub/x": "1"})
config("data: unknown format", edit("path: d.csv", "path: d.dat  #!"), "unknown data format",
       ".csv, .npy, .npz, .tsv, .txt", **{"d.dat": GOOD})
config("data: inputs disagree with the data", edit("  layers:", "  inputs: 3  #!\n  layers:"),
       "2 feature columns", "model.inputs: 2")
config("data: validation file of other width",
       edit("  targets: [y]", "  targets: [y]\n  validation_path: v.csv  #!"),
       "has 3 feature columns, the training data 2", **{"v.csv": "x1,x2,x3,y\n0,0,0,0\n"})
config("data: predict file without a column",
       edit("  batch_size: 8", "  batch_size: 8\n  path: p.csv  #!"), "no column 'x2'",
       **{"p.csv": "x1,y\n0,0\n"})
case("csv: empty file", "d.csv:", ["empty file"], d_csv="")
case("csv: blank lines after the header", "d.csv:", ["no data rows"], d_csv="x1,x2,y\n\n\n")
case("csv: too many columns", "d.csv:4:", ["expected 3 columns, found 4"],
     d_csv="x1,x2,y\n0,0,0\n0,1,1\n1,0,1,7\n")
case("csv: a boolean word", "d.csv:3:", ["non-numeric value 'true' in column x2"],
     d_csv="x1,x2,y\n0,0,0\n0,true,1\n")
case("csv: an empty value", "d.csv:2:", ["empty value in column x2"], d_csv="x1,x2,y\n0,,0\n")
case("csv: NaN target", "d.csv:3:", ["non-finite value 'NaN' in column y"],
     d_csv="x1,x2,y\n0,0,0\n0,1,NaN\n")
case("csv: -inf in the validation file", "v.csv:2:", ["non-finite", "x1"],
     **{"case.yaml": edit("  targets: [y]", "  targets: [y]\n  validation_path: v.csv"),
        "v.csv": "x1,x2,y\n-inf,0,0\n"})
case("csv: out of range for float32", "d.csv:2:", ["out of range for float32"],
     d_csv="x1,x2,y\n1e39,0,0\n0,1,1\n")
case("csv: duplicate header", "d.csv:1:", ["duplicate column name 'x1'"],
     d_csv="x1,x1,y\n0,0,0\n")
case("csv: not UTF-8", "d.csv:", ["not UTF-8"], d_csv=b"x1,x2,y\n0,\xff,0\n")
NPY = edit("  path: d.csv\n  targets: [y]", "  path: d.npy\n  targets_path: t.npy")
case("npy: object array (pickle)", "d.npy:", ["pickled/object arrays are refused"],
     **{"case.yaml": NPY, "d.npy": npy(np.array([[{"a": 1}]], dtype=object), allow_pickle=True),
        "t.npy": npy(np.zeros((1, 1)))})
case("npy: 3-D array", "d.npy:", ["1-D or 2-D"],
     **{"case.yaml": NPY, "d.npy": npy(np.zeros((2, 2, 2))), "t.npy": npy(np.zeros((2, 1)))})
case("npy: truncated", "d.npy:", ["truncated"], **{
    "case.yaml": NPY, "t.npy": npy(np.zeros((4, 1))),
    "d.npy": lambda p: (np.save(p, np.zeros((4, 2))),
                        Path(p).write_bytes(Path(p).read_bytes()[:-8]))})
case("npy: infinity", "d.npy:", ["row 3", "non-finite value inf"], **{
    "case.yaml": NPY, "t.npy": npy(np.zeros((4, 1))),
    "d.npy": npy(np.array([[0, 0], [1, 1], [np.inf, 0], [1, 0]]))})
case("npy: targets of other length", "t.npy:", ["3 rows of targets for 4 rows"],
     **{"case.yaml": NPY, "d.npy": npy(np.zeros((4, 2))), "t.npy": npy(np.zeros((3, 1)))})
case("npz: not a zip", "d.npz:", ["not a zip archive"],
     **{"case.yaml": edit("  path: d.csv\n  targets: [y]", "  path: d.npz\n  targets: y"),
        "d.npz": "x1,x2,y\n"})
# -- weights files -------------------------------------------------------------------------
config("weights: missing file", with_weights(), "w.npz", "file not found")
config("weights: missing array", with_weights(), "missing array 'layers.1.b'",
       **{"w.npz": lambda p: npz(p, {k: v for k, v in WEIGHTS.items() if k != "layers.1.b"})})
config("weights: wrong shape", with_weights(), "'layers.1.W' has shape (3, 1)", "(4, 1)",
       **{"w.npz": lambda p: npz(p, {**WEIGHTS, "layers.1.W": np.ones((3, 1))})})
config("weights: a pickled array beside good ones", with_weights(), "pickled",
       **{"w.npz": lambda p: npz(p, extra=np.array([{"x": 1}], dtype=object))})
config("weights: not a zip", with_weights(), "not an .npz file", "layers.0.W",
       **{"w.npz": "hello"})
config("weights: truncated zip", with_weights(), "not an .npz file", **{"w.npz": truncated_npz})
config("weights: a .npy, not an .npz", with_weights(), "not an .npz file",
       **{"w.npz": lambda p: np.save(open(p, "wb"), np.zeros(3))})
config("weights: NaN", with_weights(), "'layers.0.W' holds NaN",
       **{"w.npz": lambda p: npz(p, {**WEIGHTS, "layers.0.W": np.full((2, 4), np.nan)})})
config("weights: text array", with_weights(), "not numeric",
       **{"w.npz": lambda p: npz(p, {**WEIGHTS, "layers.0.b": np.array(list("abcd"))})})
# -- command-line flags --------------------------------------------------------------------
RUN = ["run", "--config", "case.yaml"]
case("flag: --workers 0", "--workers", ["0 is not in the range x>=1"], RUN + ["--workers", "0"])
case("flag: --workers two", "--workers", ["'two' is not a valid integer"],
     RUN + ["--workers", "two"])
case("flag: --set without =", "--set epochs", ["expected KEY=VALUE"], RUN + ["--set", "epochs"])
case("flag: --set unknown path", "--set train.epoch=3", ["did you mean 'epochs'"],
     RUN + ["--set", "train.epoch=3"])
case("flag: --set wrong type", "--set train.epochs=many", ["expected an integer"],
     RUN + ["--set", "train.epochs=many"])
case("flag: --set index out of range", "--set model.layers.5.units=3", ["valid: 0..1"],
     RUN + ["--set", "model.layers.5.units=3"])
case("flag: --set broken YAML", "--set train.metrics=[accuracy", ["invalid YAML"],
     RUN + ["--set", "train.metrics=[accuracy"])
case("flag: --set name escaping", "--set name=../../x", ["not a valid name"],
     RUN + ["--set", "name=../../x"])
case("flag: unknown option", "--bogus", ["No such option"], RUN + ["--bogus"])
case("flag: unknown command", "runn", ["No such command", "run"], ["runn"])
case("flag: missing config file", "nowhere.yaml", ["cannot read", "No such file"],
     ["run", "--config", "nowhere.yaml"])
case("flag: a folder as config", "'sub'", ["is a directory"], ["run", "--config", "sub"],
     **{"sub/x": ""})
case("flag: --config without a value", "--config", ["requires an argument"], ["run", "--config"])
case("flag: --out inside a file", "out.txt", ["choose a writable --out"],
     RUN + ["--out", "out.txt/sub"], **{"out.txt": "x"})
case("flag: --workers with --scheduler", "--scheduler", ["not both"],
     RUN + ["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
case("flag: --scheduler unknown scheme", "--scheduler", ["unknown address scheme", "tcp://"],
     RUN + ["--scheduler", "bogus://x"],
     **{"case.yaml": BASE + "sweep: {grid: {train.epochs: [1, 2]}}\n"})
case("flag: validate a missing file", "nowhere.yaml", ["cannot read"],
     ["validate", "nowhere.yaml"])
case("flag: summary of a bad config", "case.yaml:3:", ["unknown key 'dta'"],
     ["summary", "--config", "case.yaml"], **{"case.yaml": BASE.replace("data:", "dta:")})
case("flag: predict on a non-run folder", "sub", ["not a run folder", "<out>/<name>/<id>/"],
     ["predict", "--run", "sub", "--data", "d.csv"], **{"sub/x": ""})
case("flag: predict on a missing folder", "gone", ["no such run folder"],
     ["predict", "--run", "gone", "--data", "d.csv"])
case("flag: predict on a running run", "r/x/1", ["'running', not complete"],
     ["predict", "--run", "r/x/1", "--data", "d.csv"],
     **{"r/x/1/run.json": json.dumps({"status": "running"})})
case("flag: predict --batch-size 0", "--batch-size", ["0 is not in the range x>=1"],
     ["predict", "--run", "r", "--data", "d.csv", "--batch-size", "0"])
case("flag: verify a missing folder", "gone", ["no such run folder"], ["verify", "gone"])
case("flag: verify an interrupted run", "r/x/1", ["'interrupted', not complete"],
     ["verify", "r/x/1"], **{"r/x/1/run.json": json.dumps({"status": "interrupted"})})


def materialize(tmp_path, files):
    files = {"case.yaml": BASE, "d.csv": GOOD, **files}
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(str(path))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return files


def marked_line(text):
    lines = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    for number, line in enumerate(lines.splitlines(), start=1):
        if line.rstrip().endswith("#!"):
            return number
    raise AssertionError("no #! marker")


def assert_clean_refusal(code, err, tmp_path):
    """Exit 2, a message, no traceback, no complete run, no temporary file, no code run."""
    assert code == 2, err
    assert err.strip() and "Traceback" not in err, err
    for run_json in Path(tmp_path).rglob("run.json"):
        assert json.loads(run_json.read_text()).get("status") != "complete", run_json
    assert not [p for p in Path(tmp_path).rglob(".tmp-*")]
    assert not (tmp_path / "pwned").exists()


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 40


@pytest.fixture(scope="module")
def refusals(request, tmp_path_factory):
    """The selected cases of the corpus, each run in its own folder, several CLI
    processes at a time: {case id: (folder, files, (exit code, stdout, stderr))}."""
    wanted = {item.callspec.id for item in request.session.items
              if item.name.startswith("test_hostile_input[")}
    root = tmp_path_factory.mktemp("corpus")

    def refuse(number, param):
        files, argv, _, _ = param.values
        folder = root / f"case{number}"
        folder.mkdir()
        files = materialize(folder, files)
        result = yamlnet(*(argv or ["run", "--config", "case.yaml"]), cwd=folder)
        return param.id, (folder, files, result)

    selected = [(n, p) for n, p in enumerate(CASES) if p.id in wanted]
    with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        return dict(pool.map(lambda case: refuse(*case), selected))


@pytest.mark.parametrize("files,argv,where,words", CASES)
def test_hostile_input(request, refusals, files, argv, where, words):
    folder, files, (code, _, err) = refusals[request.node.callspec.id]
    assert_clean_refusal(code, err, folder)
    if where is None:
        where = f"case.yaml:{marked_line(files['case.yaml'])}:"
    assert where in err, err
    for word in words:
        assert word in err, (word, err)


# ---------------------------------------------------------------------------------------
# Cases that need more than a table row: time and memory bounds, a finished run.

@pytest.fixture
def fresh_child_rusage(tmp_path):
    """(exit code, stderr, peak MiB) of `yamlnet ARGS`. RUSAGE_CHILDREN is a maximum over
    every child so far: measure in a new process. (Time is not measured: a refusal before
    allocation shows in the memory peak, and speed is bench/'s business.)"""
    script = tmp_path / "measure.py"
    script.write_text(
        "import json, resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(json.dumps([p.returncode, p.stderr,\n"
        "                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))\n")

    def measure(*args, cwd):
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        out = subprocess.run([sys.executable, str(script), sys.executable, "-m", "runner", *args],
                             cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout)

    return measure


def test_a_huge_network_is_refused_before_allocation(tmp_path, fresh_child_rusage):
    write(tmp_path / "d.csv", GOOD)
    big = edit("    - units: 4\n", "    - units: 1000000\n    - units: 1000000\n"
               "    - units: 1000000\n")
    write(tmp_path / "case.yaml", big)
    code, err, peak_mib = fresh_child_rusage("run", "--config", "case.yaml",
                                                      cwd=tmp_path)
    assert code == 2 and "2 GiB limit" in err and "Traceback" not in err
    assert peak_mib < 300, peak_mib
    # without model.inputs the first layer's fan-in is known only from the data: the
    # refusal then comes at build time, still before any array is allocated
    write(tmp_path / "case.yaml", edit("    - units: 4\n", "    - units: 200000\n"
                                       "    - units: 5000\n"))
    code, err, peak_mib = fresh_child_rusage("run", "--config", "case.yaml",
                                                      cwd=tmp_path)
    assert code == 2 and "parameters" in err and "Traceback" not in err, err
    assert peak_mib < 300, peak_mib


def test_huge_work_buffers_are_refused_before_allocation(tmp_path, fresh_child_rusage):
    """One layer of 1,000,000 units is only 3M parameters, but a minibatch of 4,096
    rows through it would need 48 GiB of buffers: refused, saying what to lower."""
    rows = "\n".join(f"{i % 7},{i % 3},{i % 2}" for i in range(3000))
    write(tmp_path / "d.csv", "x1,x2,y\n" + rows + "\n")
    text = edit("units: 4", "units: 1000000").replace("batch_size: 2", "batch_size: 64")
    write(tmp_path / "case.yaml", text.replace("predict:\n  batch_size: 8\n", ""))
    code, err, peak_mib = fresh_child_rusage("run", "--config", "case.yaml",
                                                      cwd=tmp_path)
    assert code == 2 and "Traceback" not in err, err
    assert "work buffers" in err and "use fewer units" in err and "case.yaml:8:" in err
    assert peak_mib < 300, peak_mib
    # the same network with a forward pass: predict.batch_size is what to lower
    write(tmp_path / "case.yaml", text.split("train:")[0] + "predict: {batch_size: 4096}\n")
    code, err, peak_mib = fresh_child_rusage("run", "--config", "case.yaml", cwd=tmp_path)
    assert code == 2 and "set predict.batch_size to at most" in err, err
    assert peak_mib < 300
    assert not list(tmp_path.rglob("run.json"))


def alias_bomb(levels=9):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\ndata: {path: d.csv}\nmodel: {layers: [{units: 1}]}\n"


def merge_bomb(levels=8):
    keys = ", ".join(f"k{j}: 1" for j in range(10))
    lines = [f"a0: &a0 {{{keys}}}"]
    lines += [f"a{i}: &a{i} {{" + ", ".join(f"m{j}: *a{i - 1}" for j in range(10)) + "}"
              for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text", [alias_bomb(), merge_bomb()], ids=["lists", "merge keys"])
def test_alias_bombs_are_refused_in_bounded_memory(tmp_path, fresh_child_rusage, text):
    write(tmp_path / "d.csv", GOOD)
    write(tmp_path / "case.yaml", text)
    for args in (["run", "--config", "case.yaml"], ["validate", "case.yaml"]):
        code, err, peak_mib = fresh_child_rusage(*args, cwd=tmp_path)
        assert code == 2 and "document too large" in err and "case.yaml:1:" in err, err
        assert "Traceback" not in err
        assert peak_mib < 300, peak_mib


def test_an_oversized_config_is_refused(tmp_path):
    write(tmp_path / "case.yaml", "# padding\n" * 1_200_000)
    code, _, err = yamlnet("validate", "case.yaml", cwd=tmp_path)
    assert code == 2 and "case.yaml:1:" in err and "over 10 MB" in err


def test_yaml_tags_never_run_anything(tmp_path):
    """Every way PyYAML's unsafe loaders would run a command: none of them may."""
    write(tmp_path / "d.csv", GOOD)
    payloads = [
        "!!python/object/apply:os.system ['touch pwned']",
        "!!python/object/apply:subprocess.check_call [[touch, pwned]]",
        "!!python/object/new:os.system ['touch pwned']",
    ]
    for payload in payloads:
        write(tmp_path / "case.yaml", edit("name: hostile", f"name: {payload}"))
        for args in (["run", "--config", "case.yaml"], ["validate", "case.yaml"],
                     ["run", "--config", "d.yaml", "--set", f"name={payload}"]):
            write(tmp_path / "d.yaml", BASE)
            code, _, err = yamlnet(*args, cwd=tmp_path)
            assert code == 2 and "is not allowed" in err and "Traceback" not in err, err
            assert not (tmp_path / "pwned").exists(), payload


def test_scheduler_at_a_closed_port_fails_fast(tmp_path):
    pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write(tmp_path / "d.csv", GOOD)
    write(tmp_path / "case.yaml", BASE + "sweep:\n  grid:\n    train.epochs: [1, 2]\n")
    code, _, err = yamlnet("run", "--config", "case.yaml", "--scheduler",
                           f"127.0.0.1:{port}", cwd=tmp_path, timeout=60)
    assert code == 2 and "Traceback" not in err, err
    assert f"--scheduler 127.0.0.1:{port}" in err and "cannot reach" in err
    assert "tcp://" in err  # what a valid address looks like
    # refused at once by a probe of the port, not timed out after the client's 10 s of retries
    assert f"[Errno {errno.ECONNREFUSED}]" in err and "Timed out" not in err, err
    assert not list(tmp_path.rglob("run.json"))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A complete XOR run (a few epochs), for predict and verify cases."""
    return example_run(tmp_path_factory.mktemp("finished"), "xor.yaml", "xor.csv",
                       "train.epochs=5")


@pytest.mark.parametrize("csv_text,where,words", [
    ("x1,x3\n0,1\n", ":1:", ["no column 'x2'", "columns: x1, x3"]),
    ("x1,x2\n0,1\n1,oops\n", ":3:", ["non-numeric value 'oops'"]),
    ("x1,x2\n", "new.csv:", ["no data rows"]),
], ids=["missing column", "non-numeric", "header only"])
def test_predict_with_bad_data(finished_run, tmp_path, csv_text, where, words):
    write(tmp_path / "new.csv", csv_text)
    code, _, err = yamlnet("predict", "--run", finished_run, "--data", "new.csv",
                           "--out", "p.csv", cwd=tmp_path)
    assert code == 2 and "Traceback" not in err, err
    assert where in err and all(w in err for w in words), err
    assert not (tmp_path / "p.csv").exists() and not list(tmp_path.glob(".tmp-*"))


def test_scheduler_is_never_silently_local(tmp_path):
    """--scheduler on a single run, or empty, is refused, rather than run here."""
    for name in ("xor.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    for address, words in (("tcp://127.0.0.1:1", "is a single run"), ("", "empty address")):
        code, _, err = yamlnet("run", "--config", "xor.yaml", "--scheduler", address,
                               cwd=tmp_path)
        assert code == 2 and words in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def test_verify_names_a_missing_file_and_predict_takes_format_for_a_bare_name(
        finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    write(tmp_path / "new.csv", "x1,x2\n0,1\n1,1\n")
    code, out, err = yamlnet("predict", "--run", run, "--data", "new.csv", "--out", "bare",
                             "--format", "npy", cwd=tmp_path)
    assert code == 0 and np.load(tmp_path / "bare").shape == (2, 1), err
    (run / "weights.npz").unlink()
    code, out, err = yamlnet("verify", run, cwd=tmp_path)
    assert code == 2 and "weights.npz missing" in err and "not a complete run" in err, err
    assert "MISMATCH" not in out and "Traceback" not in err


def test_predict_with_tampered_weights(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    with np.load(run / "weights.npz") as w:
        arrays = dict(w)
    arrays["layers.0.W"] = np.full_like(arrays["layers.0.W"], np.nan)
    np.savez(run / "weights.npz", **arrays)
    write(tmp_path / "new.csv", "x1,x2\n0,1\n")
    code, _, err = yamlnet("predict", "--run", run, "--data", "new.csv", cwd=tmp_path)
    assert code == 2 and "weights.npz" in err and "NaN" in err and "Traceback" not in err
    (run / "config.yaml").write_text("model: [\n")
    code, _, err = yamlnet("verify", run, cwd=tmp_path)
    assert code == 2 and "config.yaml:" in err and "invalid YAML" in err and "Traceback" not in err


def test_prediction_arrays_are_read_by_the_fits_array_names(tmp_path):
    """A predict.path .npz is checked with data.features' array name, as predictions read
    it: the right width passes, another is refused before the fit."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", inputs=rng.normal(size=(20, 2)).astype(np.float32),
             labels=(rng.random(20) > 0.5).astype(np.float32))
    for name, width in (("p2.npz", 2), ("p3.npz", 3)):
        np.savez(tmp_path / name, inputs=np.zeros((4, width), np.float32))
    write(tmp_path / "z.yaml", "name: z\ndata: {path: d.npz, features: inputs, targets: "
          "labels}\nmodel:\n  layers: [{units: 1, activation: sigmoid}]\n"
          "train: {loss: binary_crossentropy, epochs: 2}\npredict: {path: p2.npz}\n")
    code, _, err = yamlnet("run", "--config", "z.yaml", "--quiet", cwd=tmp_path)
    assert code == 0, err
    code, _, err = yamlnet("run", "--config", "z.yaml", "--set", "predict.path=p3.npz",
                           cwd=tmp_path)
    assert code == 2 and "3 feature columns, the fit reads 2" in err, err


def test_data_errors_point_at_the_override_or_the_targets_file(tmp_path):
    """A data error in a value given by --set points at that --set (not at the file's old
    line); one in data.targets_path's file names data.targets_path."""
    for name in ("iris.yaml", "iris.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    for command in (["run", "--config", "iris.yaml"], ["validate", "--data", "iris.yaml"]):
        code, _, err = yamlnet(*command, "--set", "data.path=gone.csv", cwd=tmp_path)
        assert code == 2 and err.startswith("--set data.path=gone.csv: data.path: "), err
        assert "gone.csv" in err.splitlines()[0] and "path: iris.csv" not in err, err
        for key, value in (("data.targets", "[specie]"), ("data.features", "[sepal_lenght]")):
            code, _, err = yamlnet(*command, "--set", f"{key}={value}", cwd=tmp_path)
            assert code == 2 and err.startswith(f"--set {key}={value}: {key}: iris.csv:1: "
                                                "no column"), err  # the list that named it
    np.save(tmp_path / "x.npy", np.zeros((6, 4), np.float32))
    np.save(tmp_path / "y.npy", np.array([object()] * 6, dtype=object))
    write(tmp_path / "t.yaml", "name: t\ndata:\n  path: x.npy\n  targets_path: y.npy\n"
          "model:\n  layers: [{units: 3, activation: softmax}]\n"
          "train: {loss: categorical_crossentropy}\n")
    code, _, err = yamlnet("run", "--config", "t.yaml", cwd=tmp_path)
    assert code == 2 and err.startswith("t.yaml:4:") and "data.targets_path: y.npy" in err, err


@pytest.mark.parametrize("override,key,words", [
    ("predict={keep: [nope]}", "predict.keep", "no column 'nope'"),
    ("predict={path: xor.csv}", "predict.path", "no column 'p0'"),
    ("predict={path: x.npy}", "predict.path", "by column name, and this file has none"),
    ("predict={path: x.npy, keep: [p0]}", "predict.keep", "has none"),
])
def test_prediction_file_mistakes_are_found_before_the_fit(tmp_path, override, key, words):
    """A fit of a million epochs: refused at once (the subprocess would time out if the
    check came after the fit, where it used to), by run and by validate --data."""
    for name in ("digits.yaml", "digits.csv", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    np.save(tmp_path / "x.npy", np.zeros((3, 2), np.float32))
    for command in (["run", "--config", "digits.yaml", "--set", "train.epochs=1000000"],
                    ["validate", "--data", "digits.yaml"]):
        code, _, err = yamlnet(*command, "--set", override, cwd=tmp_path, timeout=60)
        assert code == 2 and f"{key}: " in err and words in err and "Traceback" not in err, err
    assert not list(tmp_path.rglob("run.json"))


@pytest.mark.parametrize("command,name", [
    (["predict", "--data", "new.csv", "--out"], "history.csv"),
    (["predict", "--data", "new.csv", "--out"], "weights.npz"),
    (["export", "--out"], "weights.npz"),
    (["export", "--out"], "config.yaml"),
    (["export", "--out"], "predictions_labels.npy"),  # a file this run lacks but others hold
])
def test_out_never_replaces_a_file_of_the_run(finished_run, tmp_path, command, name):
    """--out naming one of the run's own files is refused before anything is written
    (the run would still say complete, with its weights or history replaced); another
    name in the run folder is fine."""
    pytest.importorskip("onnx", reason="the 'onnx' extra is not installed")
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    write(tmp_path / "new.csv", "x1,x2\n0,1\n")
    args = [command[0], *(["--run", run] if command[0] == "predict" else [run]), *command[1:]]
    code, _, err = yamlnet(*args, run / name, cwd=tmp_path)
    assert code == 2 and f"run's own {name}" in err and "Traceback" not in err, err
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    code, _, err = yamlnet(*args, run / "other.out.csv", cwd=tmp_path)
    assert code == 0, err


# ---------------------------------------------------------------------------------------
# Numerics: NaN and infinity are caught where they appear, with what to try; numpy's
# floating-point warnings never reach the user.

NOISY = {"PYTHONWARNINGS": "always"}  # show every warning that would be emitted


def test_a_diverging_fit_says_what_to_try_without_warnings(tmp_path):
    for name in ("puzzle.yaml", "puzzle.csv", "puzzle_query.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    code, _, err = yamlnet("run", "--config", "puzzle.yaml", "--quiet", "--set",
                           "train.optimizer.lr=10.0", cwd=tmp_path, env=NOISY)
    assert code == 1 and "not finite at epoch" in err, err
    assert "lower learning rate" in err and "data.scale: standard" in err
    assert "Warning" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_extreme_inputs_fail_with_advice_and_no_warnings(tmp_path, dtype):
    big = "3e38" if dtype == "float32" else "1.7e308"
    write(tmp_path / "d.csv", f"x1,x2,y\n{big},{big},1\n-{big},{big},0\n0,1,1\n1,0,0\n")
    fit = edit("name: hostile", f"name: hostile\ndtype: {dtype}").replace(
        "activation: relu", "activation: identity").replace("init: he_uniform",
                                                            "init: ones")
    write(tmp_path / "fit.yaml", fit)
    code, _, err = yamlnet("run", "--config", "fit.yaml", "--quiet", cwd=tmp_path, env=NOISY)
    assert code == 1 and "not finite" in err and "data.scale: standard" in err, err
    assert "Warning" not in err and "Traceback" not in err, err
    # a forward pass whose outputs overflow: the row is named, scaling is suggested
    write(tmp_path / "fwd.yaml", fit.split("train:")[0].replace("activation: sigmoid",
                                                                "activation: identity"))
    code, _, err = yamlnet("run", "--config", "fwd.yaml", "--quiet", cwd=tmp_path, env=NOISY)
    assert code == 1 and "d.csv: the outputs overflow" in err and "data row 1" in err, err
    assert "data.scale: standard" in err
    assert "Warning" not in err and "Traceback" not in err, err
    for run_json in tmp_path.rglob("run.json"):
        assert json.loads(run_json.read_text())["status"] == "failed"
    assert not list(tmp_path.rglob("predictions.csv")) and not list(tmp_path.rglob(".tmp-*"))
    # scaled, float32's extremes are fine; float64's overflow the statistics themselves
    code, _, err = yamlnet("run", "--config", "fit.yaml", "--quiet", "--set",
                           "data.scale=standard", cwd=tmp_path, env=NOISY)
    assert "Warning" not in err and "Traceback" not in err, err
    if dtype == "float32":
        assert code == 0, err
    else:
        assert code == 2 and "too large to scale" in err, err
        assert err.startswith("--set data.scale=standard: data.scale:"), err  # where it was set


def test_predict_on_extreme_rows_saturates_or_fails_with_advice(finished_run, tmp_path):
    # xor's tanh layer saturates: the outputs of extreme rows stay finite and are written
    write(tmp_path / "new.csv", "x1,x2\n0,1\n3e38,-3e38\n")
    code, _, err = yamlnet("predict", "--run", finished_run, "--data", "new.csv",
                           "--out", "p.csv", cwd=tmp_path, env=NOISY)
    assert code == 0 and "Traceback" not in err and "Warning" not in err, err
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    assert len(rows) == 2 and all(0 <= float(v) <= 1 for row in rows for v in row.split(","))
    # the puzzle's neuron is linear, y = 2x + 2 in float64: 1e308 overflows to inf
    for name in ("puzzle.yaml", "puzzle.csv", "puzzle_query.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    code, out, err = yamlnet("run", "--config", "puzzle.yaml", "--quiet", cwd=tmp_path)
    assert code == 0, err
    linear = tmp_path / out.split(": ")[1].strip()
    write(tmp_path / "far.csv", "x\n5\n1e308\n")
    code, _, err = yamlnet("predict", "--run", linear, "--data", "far.csv",
                           "--out", "q.csv", cwd=tmp_path, env=NOISY)
    assert code == 1 and "far.csv: the outputs overflow" in err and "data row 2" in err, err
    assert "data.scale: standard" in err
    assert "Traceback" not in err and "Warning" not in err, err
    assert not (tmp_path / "q.csv").exists() and not list(tmp_path.glob(".tmp-*"))
