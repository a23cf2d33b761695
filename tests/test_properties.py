"""Property-based tests (hypothesis): whatever a config file holds, loading it either
gives a Config or raises ConfigError whose every problem is located (file and line)
and worded; never another exception. A valid config survives the trip through the
config.yaml its run folder saves: reloaded, it names the same run id.

Example counts are bounded so that the whole file runs in a few seconds in-process,
plus a handful of documents through the real CLI.
"""

import math
import re
import shutil
import string

import pytest
import yaml
from conftest import CONFIGS, write, yamlnet
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runner.errors import UserError
from runner.runs import experiment, folders
from schemas import (
    ACTIVATION_NAMES,
    INIT_NAMES,
    LOSS_NAMES,
    METRIC_NAMES,
    OPTIMIZER_NAMES,
    ConfigError,
    load_config,
)
from schemas.yamlread import Where, dump, read

BUNDLED = sorted(CONFIGS.glob("*.yaml"))
FAST = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
NAMES = sorted({*ACTIVATION_NAMES, *INIT_NAMES, *LOSS_NAMES, *METRIC_NAMES, *OPTIMIZER_NAMES,
                "float32", "float64", "standard", "minmax", "none", "full", "csv", "npy"})
KEYS = ["name", "seed", "dtype", "data", "path", "features", "targets", "scale", "model",
        "layers", "units", "activation", "init", "bias", "train", "loss", "optimizer", "lr",
        "epochs", "batch_size", "metrics", "predict", "format", "sweep", "grid", "random",
        "seeds", "<<", "model.layers.0.units"]
TRICKY = ["", "~", "null", "yes", "no", "on", "1e3", "0o17", "0x1F", ".inf", "-.nan", "1_000",
          "tRuE", "&a", "*a", "!!python/object/apply:os.system", "- x", "a: b", "#", "'", '"',
          "\t", "é", "\x85", "..", "../x", "/etc/passwd", "relux", "adamm", "10e500"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A copy of configs/ (configs and their data), where mutated configs are written."""
    where = tmp_path_factory.mktemp("props")
    for path in CONFIGS.iterdir():
        if path.is_file():
            shutil.copy(path, where / path.name)
    return where


def assert_located(path, overrides=()):
    """load_config(path) gives a Config, or a ConfigError whose problems all name the
    file (or the override) and a line, with a message. Returns the Config or None."""
    try:
        return load_config(path, overrides=overrides)
    except ConfigError as e:
        assert e.problems
        for problem in e.problems:
            assert problem.file == str(path) or problem.file.startswith("--set "), problem
            assert problem.line is not None and problem.line >= 1, problem
            assert problem.message.strip(), problem
        text = str(e)
        assert text.startswith((str(path), "--set ")), text
        assert len(e.to_json()) == len(e.problems)
        return None


# ---- random YAML documents -----------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=12) | st.sampled_from(TRICKY + NAMES))
keys = st.sampled_from(KEYS) | st.text(max_size=8)
trees = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(keys, inner, max_size=5), max_leaves=25)


@st.composite
def rendered(draw):
    """A random tree rendered by PyYAML, block or flow style."""
    return yaml.safe_dump(draw(trees), default_flow_style=draw(st.booleans()),
                          allow_unicode=draw(st.booleans()))


@st.composite
def scrambled(draw):
    """A bundled config with a few characters inserted, deleted or replaced by the
    characters that matter to YAML."""
    text = draw(st.sampled_from(BUNDLED)).read_text()
    alphabet = st.sampled_from(list(":-[]{}&*!|>'\"#%@`,?\t\n ") + ["  ", "\n  - "])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(alphabet)
        text = (text[:i] + piece + text[i:] if how == "insert" else
                text[:i] + text[i + 1:] if how == "delete" else text[:i] + piece + text[i + 1:])
    return text


documents = rendered() | scrambled() | st.text(
    alphabet=st.sampled_from(list(string.ascii_letters[:6] + string.digits[:3]
                                  + ":-[]{}&*!|>'\"#,? \t\n")), max_size=80)


@FAST
@given(text=documents)
def test_random_documents_are_loaded_or_refused_with_a_location(folder, text):
    path = write(folder / "random.yaml", text)
    assert_located(path)


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=documents)
def test_random_documents_through_the_cli(folder, text):
    path = write(folder / "cli.yaml", text)
    code, out, err = yamlnet("validate", path, "--data")
    assert code in (0, 2) and "Traceback" not in err, err
    if code == 2:
        assert re.search(rf"{re.escape(str(path))}:\d+(:\d+)?: ", err), err


# ---- mutations of every bundled config -------------------------------------------------

def paths_of(tree, prefix=()):
    """Every (path, value) in a tree of dicts and lists, the root included."""
    yield prefix, tree
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) \
        if isinstance(tree, list) else ()
    for key, value in items:
        yield from paths_of(value, prefix + (key,))


def node(tree, path):
    for part in path:
        tree = tree[part]
    return tree


def other_type(value):
    """Values of every other type than `value`'s."""
    options = [None, True, 3, 2.5, "2", [1], {"a": 1}, "relu"]
    return [v for v in options if type(v) is not type(value)]


@st.composite
def mutated(draw):
    """(name of a bundled config, its data with one mutation) : a key deleted, a value of
    another type, a junk key inserted, or a name swapped for another."""
    source = draw(st.sampled_from(BUNDLED))
    data = read(source.read_text(), lambda mark: Where(str(source)))[0]
    every = list(paths_of(data))
    kind = draw(st.sampled_from(["delete", "retype", "junk", "swap"]))
    if kind == "delete":
        path, _ = draw(st.sampled_from([(p, v) for p, v in every if p]))
        parent = node(data, path[:-1])
        del parent[path[-1]]
    elif kind == "retype":
        path, value = draw(st.sampled_from([(p, v) for p, v in every if p]))
        node(data, path[:-1])[path[-1]] = draw(st.sampled_from(other_type(value)))
    elif kind == "junk":
        path, mapping = draw(st.sampled_from([(p, v) for p, v in every if isinstance(v, dict)]))
        mapping[draw(keys)] = draw(scalars)
    else:
        leaves = [(p, v) for p, v in every if p and isinstance(v, str)]
        path, _ = draw(st.sampled_from(leaves))
        node(data, path[:-1])[path[-1]] = draw(st.sampled_from(NAMES + TRICKY) | st.text(max_size=6))
    return source.name, data


@FAST
@given(case=mutated())
def test_mutated_bundled_configs_are_loaded_or_refused_with_a_location(folder, case):
    name, data = case
    path = write(folder / f"mutated-{name}", dump(data))
    config = assert_located(path)
    if config is not None:  # still valid: it must also survive the saved config.yaml
        assert_round_trip(config, folder / "runs")


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(BUNDLED), key=st.sampled_from(KEYS) | st.text(max_size=10),
       value=st.sampled_from(TRICKY + NAMES + ["[1, 2", "{a: 1}", "3", "-1", "1e9"]),
       equals=st.booleans())
def test_random_overrides_are_loaded_or_refused_with_a_location(folder, name, key, value,
                                                                  equals):
    override = f"{key}={value}" if equals else key + value
    assert_located(folder / name.name, overrides=[override])


# ---- the saved config.yaml gives the same run id --------------------------------------

def assert_round_trip(config, out):
    try:
        first = experiment.plan(config, out)
    except UserError:  # a data path the mutation changed: there is nothing to run
        return
    run = folders.RunFolder(first.folder)
    run.start(first.resolved, {"id": first.id, "seed": config.seed, "inputs": first.digests})
    again = load_config(run.file("config.yaml"))
    assert experiment.plan(again, out).id == first.id
    assert again.model_dump() == config.model_dump()


@pytest.mark.parametrize("source", BUNDLED, ids=[p.name for p in BUNDLED])
def test_every_bundled_config_round_trips(folder, source):
    assert_round_trip(load_config(folder / source.name), folder / "runs")


odd_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}", fullmatch=True)
column = st.sampled_from(TRICKY[:13] + ["x1", "1e5", "1.", "+1", "0", "TRUE"]) \
    | st.text(min_size=1, max_size=6)


@FAST
@given(name=odd_names, seed=st.integers(0, 2**64), features=st.lists(column, min_size=1,
                                                                         max_size=3),
       lr=st.floats(1e-12, 1e3), units=st.integers(1, 64), epochs=st.integers(1, 10**6),
       dtype=st.sampled_from(["float32", "float64"]))
def test_valid_configs_round_trip_through_config_yaml(folder, name, seed, features, lr, units,
                                                      epochs, dtype):
    assume(math.isfinite(lr))
    data = read((folder / "xor.yaml").read_text(), lambda mark: Where("xor.yaml"))[0]
    data.update(name=name, seed=seed, dtype=dtype)
    data["data"]["features"] = features
    data["model"]["layers"][0]["units"] = units
    data["train"].update(epochs=epochs, optimizer={"name": "adam", "lr": lr})
    config = load_config(write(folder / "valid.yaml", dump(data)))
    assert_round_trip(config, folder / "runs")


def test_a_real_run_round_trips_through_the_cli(tmp_path):
    """End to end: the config.yaml a run leaves, run again, lands in the same folder."""
    for name in ("xor.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    text = (tmp_path / "xor.yaml").read_text().replace("name: xor", 'name: "1e3"')
    write(tmp_path / "xor.yaml", text.replace("features: [x1, x2]", 'features: [x1, "x2"]'))
    code, out, err = yamlnet("run", "--config", "xor.yaml", "--quiet", "--set",
                             "train.epochs=3", cwd=tmp_path)
    assert code == 0, err
    folder = out.split(": ")[1].strip()
    code, again, err = yamlnet("run", "--config", f"{folder}/config.yaml", "--quiet",
                               cwd=tmp_path)
    assert code == 0, err
    assert again.startswith("skipped (already complete)") and folder in again
