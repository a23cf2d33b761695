"""The loader: YAML 1.2 reading, located errors, overrides, dotted paths, sweep checks.

Expected lines and columns are computed from each test's own YAML text with `pos`."""

import os
import tracemalloc

import pytest

from schemas import (
    ConfigError,
    PathError,
    get_path,
    load_config,
    load_config_dict,
    locate,
    set_path,
)

XOR = """\
name: xor
data:
  path: data/xor.csv
  validation_split: 0.25
model:
  inputs: 2
  layers:
    - units: 4
      activation: tanh
    - units: 1
      activation: sigmoid
train:
  loss: binary_crossentropy
  optimizer: {name: sgd, lr: 0.5, momentum: 0.9}
  metrics: [accuracy]
"""


def pos(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the nth occurrence of `needle` in `text`."""
    i = -1
    for _ in range(nth + 1):
        i = text.index(needle, i + 1)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


def write(tmp_path, text: str, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


def where(problem):
    return problem.line, problem.column


def test_valid_file_and_paths(tmp_path):
    cfg = load_config(write(tmp_path, XOR))
    assert cfg.data.path == os.path.join(str(tmp_path), "data", "xor.csv")
    absolute = XOR.replace("data/xor.csv", "/srv/xor.csv")
    assert load_config(write(tmp_path, absolute)).data.path == "/srv/xor.csv"



def test_paths_are_relative_to_the_config_as_given(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    write(tmp_path / "configs", XOR.replace("data/xor.csv", "../d/./xor.csv"), "x.yaml")
    monkeypatch.chdir(tmp_path)
    cfg = load_config(os.path.join("configs", "x.yaml"))
    assert cfg.data.path == os.path.join("d", "xor.csv")


def test_error_format_matches_the_spec(tmp_path):
    text = XOR.replace("activation: tanh", "activation: relux")
    path = write(tmp_path, text)
    [problem] = problems(path)
    line, column = pos(text, "relux")
    assert (problem.file, problem.line, problem.column) == (str(path), line, column)
    assert problem.path == "model.layers.0.activation"
    assert problem.source == "      activation: relux"
    assert str(problem).splitlines() == [
        f"{path}:{line}:{column}: model.layers.0.activation: 'relux' is not an activation; did "
        "you mean 'relu'? (one of: identity, sigmoid, tanh, relu, leaky_relu, elu, softplus, "
        "gelu, silu, softmax)",
        "          activation: relux",
        "                      ^",
    ]


def test_all_errors_at_once_each_located(tmp_path):
    text = XOR.replace("units: 4", 'unit: 4').replace("units: 1", 'units: "1"').replace(
        "momentum: 0.9", "momentum: 0.9, nesterov: yes") + "seed: 1.5\n"
    path = write(tmp_path, text)
    found = problems(path)
    assert [(p.path, where(p), p.message) for p in found] == [
        ("model.layers.0", pos(text, "unit: 4"), "missing required key 'units'"),
        ("model.layers.0.unit", pos(text, "unit: 4"), "unknown key 'unit'; did you mean "
         "'units'? (allowed: units, activation, init, bias_init, bias, dropout, l1, l2)"),
        ("model.layers.1.units", pos(text, '"1"'), "expected an integer, got the string '1'"),
        ("train.optimizer.nesterov", pos(text, "yes"), "expected true or false, got the "
         "string 'yes'"),
        ("seed", pos(text, "1.5"), "expected an integer, got the float 1.5"),
    ]
    assert ConfigError(found).to_json()[2] == {
        "file": str(path), "line": pos(text, '"1"')[0], "column": pos(text, '"1"')[1],
        "path": "model.layers.1.units", "message": "expected an integer, got the string '1'"}


def test_missing_key_points_at_the_parent(tmp_path):
    text = XOR.replace("  path: data/xor.csv\n", "")
    [problem] = problems(write(tmp_path, text))
    assert (problem.path, where(problem), problem.message) == (
        "data", pos(text, "data:"), "missing required key 'path'")


def test_bad_tag_in_a_mapping_points_at_the_name(tmp_path):
    text = XOR.replace("{name: sgd,", "{name: sgdd,")
    [problem] = problems(write(tmp_path, text))
    assert (problem.path, where(problem)) == ("train.optimizer", pos(text, "sgdd"))
    assert problem.message.startswith("'sgdd' is not an optimizer; did you mean 'sgd'?")


def test_duplicate_keys(tmp_path):
    text = XOR.replace("  inputs: 2\n", "  inputs: 2\n  inputs: 3\n")
    [problem] = problems(write(tmp_path, text))
    assert (problem.path, where(problem)) == ("model.inputs", pos(text, "inputs", 1))
    first = pos(text, "inputs")[0]
    assert problem.message == f"duplicate key 'inputs' (first given on line {first})"


def test_yaml_1_2_numbers_and_booleans(tmp_path):
    text = XOR.replace("lr: 0.5", "lr: 1e-3").replace("validation_split: 0.25",
                                                      "validation_split: .5")
    text += "  epochs: 0x10\n  shuffle: FALSE\n"
    cfg = load_config(write(tmp_path, text))
    assert (cfg.train.optimizer.lr, cfg.data.validation_split) == (0.001, 0.5)
    assert (cfg.train.epochs, cfg.train.shuffle) == (16, False)
    for word in ("yes", "no", "on", "off", "y"):
        text = XOR + f"  shuffle: {word}\n"
        [problem] = problems(write(tmp_path, text))
        line, column = pos(text, f"shuffle: {word}")
        assert where(problem) == (line, column + len("shuffle: "))
        assert problem.message == f"expected true or false, got the string '{word}'"
    text = XOR + "  epochs: 1e3\n"
    [problem] = problems(write(tmp_path, text))
    assert problem.message == "expected an integer, got the float 1000.0"


def test_dates_stay_strings(tmp_path):
    text = XOR.replace("name: xor", "name: 2024-01-01")
    assert load_config(write(tmp_path, text)).name == "2024-01-01"


def test_python_tags_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    text = XOR.replace("data/xor.csv", f"!!python/object/apply:os.system ['touch {marker}']")
    text += f"predict: !!python/object/new:builtins.open ['{marker}', 'w']\n"
    found = problems(write(tmp_path, text))
    assert not marker.exists()
    assert [(p.path, where(p)) for p in found] == [
        ("data.path", pos(text, "!!python")), ("predict", pos(text, "!!python", 1))]
    assert found[0].message.startswith("tag '!!python/object/apply:os.system' is not allowed")


def test_alias_bomb_is_refused_before_expansion(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):  # 9**9 strings once expanded
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    tracemalloc.start()
    try:
        [problem] = problems(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak  # (some 20 MB; expanded, it would take gigabytes)
    assert problem.message.startswith("document too large (alias expansion?)")
    assert problem.line is not None


def test_hostile_shapes(tmp_path):
    [deep] = problems(write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "nest" in deep.message and deep.line == 1  # our limit, or PyYAML 6.0.4's own
    [loop] = problems(write(tmp_path, "a: &x [1, *x]\n"))
    assert "recursive alias" in loop.message
    [big] = problems(write(tmp_path, "a: '" + "x" * (10 * 1024**2) + "'\n"))
    assert big.message.startswith("document too large")


@pytest.mark.parametrize("text, line, column, message", [
    ("", 1, 1, "the file is empty; a config is a mapping with at least data: and model:"),
    ("- 1\n", 1, 1, "the file holds a list; a config is a mapping with at least data: and model:"),
    ("data: {path: x\nmodel: 1\n", 2, 6, "invalid YAML: "),
    ("a: 1\n---\nb: 2\n", 2, 1, "invalid YAML: expected a single document in the stream"),
    ("a:\n\tb: 1\n", 2, 1, "invalid YAML: "),
])
def test_unreadable_yaml_is_located(tmp_path, text, line, column, message):
    [problem] = problems(write(tmp_path, text))
    assert (problem.line, problem.column) == (line, column)
    assert problem.message.startswith(message)


def test_missing_file(tmp_path):
    [problem] = problems(tmp_path / "nope.yaml")
    assert str(problem) == f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"


def test_merge_keys(tmp_path):
    text = XOR.replace("    - units: 4\n      activation: tanh\n",
                       "    - &hidden {units: 4, activation: tanh, init: he_normal}\n"
                       "    - {<<: *hidden, units: 3}\n")
    layers = load_config(write(tmp_path, text)).model.layers
    assert [(la.units, la.init.name) for la in layers] == [(4, "he_normal"), (3, "he_normal"),
                                                             (1, "xavier_uniform")]


# ---- overrides ---------------------------------------------------------------------

def test_overrides(tmp_path):
    path = write(tmp_path, XOR)
    cfg = load_config(path, ["model.layers.0.units=16", "train.optimizer.lr=1e-3",
                             "model.layers.0.activation.alpha=0.2",
                             "model.layers.0.activation.name=leaky_relu", "seed=7",
                             "predict.format=npy", "data.features=[x1, x2]"])
    assert cfg.model.layers[0].units == 16
    assert cfg.train.optimizer.lr == 0.001
    assert cfg.model.layers[0].activation.model_dump() == {"name": "leaky_relu", "alpha": 0.2}
    assert (cfg.seed, cfg.predict.format, cfg.data.features) == (7, "npy", ["x1", "x2"])
    cfg = load_config(path, ["train.optimizer={name: adam, lr: 0.01}", "model.weights=w.npz"])
    assert (cfg.train.optimizer.name, cfg.train.optimizer.lr) == ("adam", 0.01)
    assert cfg.model.weights == str(tmp_path / "w.npz")


def test_override_errors_are_located_at_the_override(tmp_path):
    path = write(tmp_path, XOR)
    found = problems(path, ["model.layers.0.units=abc", "model.layers.5.units=3",
                            "train.optimizer={name: sgd, lr: x}", "nokey", "predict.formt=npy",
                            "model.layers.0.units.x=1"])
    shown = {p.file: (p.column, p.path, p.message) for p in found}
    assert shown == {
        "--set model.layers.0.units=abc": (28, "model.layers.0.units",
                                           "expected an integer, got the string 'abc'"),
        "--set model.layers.5.units=3": (7, "model.layers.5.units",
                                         "model.layers has no item 5 (valid: 0..1)"),
        "--set train.optimizer={name: sgd, lr: x}": (
            len("--set train.optimizer={name: sgd, lr: ") + 1, "train.optimizer.lr",
            "expected a number, got the string 'x'"),
        "--set nokey": (7, "", "expected KEY=VALUE, e.g. model.layers.0.units=16"),
        "--set predict.formt=npy": (7, "predict.formt", "unknown key 'formt'; did you mean "
                                    "'format'? (allowed: path, batch_size, format, keep)"),
        "--set model.layers.0.units.x=1": (7, "model.layers.0.units.x",
                                           "model.layers.0.units is the string 'abc', it has "
                                           "no key 'x'"),
    }
    assert str(found[0]).splitlines() == [
        "--set model.layers.0.units=abc: model.layers.0.units: expected an integer, got the "
        "string 'abc'",
        "    --set model.layers.0.units=abc",
        "                               ^",
    ]


def test_override_yaml_errors(tmp_path):
    [problem] = problems(write(tmp_path, XOR), ["train.optimizer.lr=[1"])
    assert problem.file == "--set train.optimizer.lr=[1"
    assert problem.message.startswith("invalid YAML: ")
    [problem] = problems(write(tmp_path, XOR), ["seed=!!python/object/apply:os.getpid []"])
    assert problem.message.startswith("tag '!!python/object/apply:os.getpid' is not allowed")


# ---- dotted paths ------------------------------------------------------------------

def test_get_and_set_path():
    data = {"model": {"layers": [{"units": 1, "activation": "leaky_relu"}]},
            "sweep": {"grid": {"model.layers.0.units": [1]}}}
    assert get_path(data, "model.layers.0.units") == 1
    assert get_path(data, "sweep.grid.model.layers.0.units") == [1]
    assert set_path(data, "model.layers.0.activation.alpha", 0.2) == (
        "model", "layers", 0, "activation", "alpha")
    assert data["model"]["layers"][0]["activation"] == {"name": "leaky_relu", "alpha": 0.2}
    set_path(data, "train.optimizer.lr", 0.1)
    assert data["train"] == {"optimizer": {"lr": 0.1}}
    with pytest.raises(PathError, match=r"model.layers has no item 1 \(valid: 0..0\)"):
        set_path(data, "model.layers.1.units", 2)
    with pytest.raises(PathError, match="did you mean 'units'"):
        get_path(data, "model.layers.0.unit")
    with pytest.raises(PathError, match="not a dotted path"):
        get_path(data, "model..layers")
    with pytest.raises(PathError, match="data is not a list"):
        set_path(data, "data.0", 1)


# ---- sweeps ------------------------------------------------------------------------

SWEEP = """\
sweep:
  grid:
    model.layers.0.units: [2, 0, 8]
    model.layers.1.activation: [sigmoid, tanh]
    model.layers.0.unit: [1]
    name: [a]
  random:
    samples: 3
    space:
      train.optimizer.lr: {loguniform: [1.0e-4, 1.0e-1]}
      model.layers.0.units: {uniform: [1, 5]}
      model.layers.0.activation: {choice: [tanh, relux]}
"""


def test_sweep_paths_and_values_are_checked(tmp_path):
    text = XOR + SWEEP
    found = problems(write(tmp_path, text))
    assert [(p.path, where(p)) for p in found] == [
        ("sweep.grid.model.layers.0.units", pos(text, "0, 8")),
        ("sweep.grid.model.layers.1.activation", pos(text, "tanh]")),
        ("sweep.grid.model.layers.0.unit", pos(text, "model.layers.0.unit:")),
        ("sweep.grid.name", pos(text, "name: [a]")),
        ("sweep.random.space.model.layers.0.units", pos(text, "1, 5")),
        ("sweep.random.space.model.layers.0.units", pos(text, "5]")),
        ("sweep.random.space.model.layers.0.activation", pos(text, "relux")),
    ]
    messages = [p.message for p in found]
    assert messages[0] == "expected a value >= 1, got 0"
    assert messages[1] == ("with 'tanh', train.loss: loss 'binary_crossentropy' wants a sigmoid "
                           "output layer, but model.layers.1.activation is 'tanh'; set it to "
                           "sigmoid")
    assert messages[2] == ("'model.layers.0.unit' cannot be swept: it is not in the config: "
                           "model.layers.0 has no key 'unit'; did you mean 'units'? (keys: "
                           "units, activation, init, bias_init, bias, dropout, l1, l2)")
    assert messages[3] == "'name' cannot be swept: a sweep keeps one name"
    assert messages[4] == ("uniform low 1.0: expected an integer, got the float 1.0 (uniform and "
                           "loguniform draw floats; use choice for integers)")
    assert messages[6].startswith("'relux' is not an activation; did you mean 'relu'?")


def test_sweep_over_defaults_and_paths(tmp_path):
    text = XOR + """\
sweep:
  grid:
    train.epochs: [10, 20]
    model.layers.0.init: [he_normal, {name: normal, std: 0.1}]
    data.path: [a.csv, /abs/b.csv]
  seeds: [0, 1]
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.sweep.grid["data.path"] == [str(tmp_path / "a.csv"), "/abs/b.csv"]
    assert cfg.sweep.grid["train.epochs"] == [10, 20]
    text = text.replace("train.epochs", "train.early_stopping.patience")
    [problem] = problems(write(tmp_path, text))
    assert problem.message == ("'train.early_stopping.patience' cannot be swept: it is not in "
                               "the config: train.early_stopping is null, it has no key "
                               "'patience'")


def test_dict_configs():
    cfg = load_config_dict({"data": {"path": "x.csv"}, "model": {"layers": [{"units": 1}]}},
                           base_dir="configs", overrides=["model.layers.0.units=3"])
    assert (cfg.name, cfg.data.path, cfg.model.layers[0].units) == (
        "config", os.path.join("configs", "x.csv"), 3)
    with pytest.raises(ConfigError) as info:
        load_config_dict({"data": {"path": 1}, "model": {"layers": [{"units": 1}]}}, "nb")
    assert str(info.value) == "nb: data.path: expected a string, got the integer 1"
    assert info.value.to_json() == [{"file": "nb", "line": None, "column": None,
                                     "path": "data.path",
                                     "message": "expected a string, got the integer 1"}]


def test_locate_points_into_the_file(tmp_path):
    path = write(tmp_path, XOR)
    problem = locate(path, "data.path", "file not found: data/xor.csv")
    assert (problem.line, problem.column) == pos(XOR, "data/xor.csv")
    assert str(problem).startswith(f"{path}:{pos(XOR, 'data/xor.csv')[0]}:")
    assert where(locate(path, "model.layers.1.init", "x")) == pos(XOR, "units: 1")
    assert locate(tmp_path / "nope.yaml", "data.path", "x").line is None
