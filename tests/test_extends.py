"""Configs that compose: `extends:` merges bases, keeps each value's file for errors and
relative paths, and leaves no trace in the resolved config or the run id."""

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, ROOT, write, yamlnet

from runner import api
from runner.io import digests
from runner.runs import experiment
from runner.runs.folders import output_digest
from schemas import ConfigError, json_schema, load_config, load_config_dict, locate
from schemas.compose import MAX_LEVELS

BASE = """\
name: fam
seed: 0
data:
  path: xor.csv
  targets: [y]
model:
  layers:
    - units: 4
      activation: tanh
    - units: 1
      activation: sigmoid
train:
  loss: binary_crossentropy
  optimizer: {name: sgd, lr: 0.5, momentum: 0.9}
  epochs: 40
  batch_size: 4
  metrics: [accuracy]
"""

CHILD = """\
extends: ../base/base.yaml
seed: 3
train:
  epochs: 25
"""

# CHILD written out flat, in a third folder: the same experiment
FLAT = BASE.replace("path: xor.csv", "path: ../base/xor.csv").replace(
    "seed: 0", "seed: 3").replace("epochs: 40", "epochs: 25")


def pos(text: str, needle: str) -> tuple[int, int]:
    """1-based (line, column) of the first occurrence of `needle` in `text`."""
    i = text.index(needle)
    return text.count("\n", 0, i) + 1, i - (text.rfind("\n", 0, i) + 1) + 1


@pytest.fixture
def family(tmp_path):
    """base/ holds the base and its data; kids/ a child; flat/ the child written flat."""
    shutil.copy(CONFIGS / "xor.csv", write(tmp_path / "base" / "base.yaml", BASE).parent)
    return (tmp_path / "base" / "base.yaml", write(tmp_path / "kids" / "child.yaml", CHILD),
            write(tmp_path / "flat" / "flat.yaml", FLAT))


def problems(path, overrides=()):
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.problems


# ---- the run does not care how the config was written --------------------------------

def test_a_child_and_its_flat_twin_give_the_same_run_folder(family, tmp_path):
    base, child, flat = family
    code, out_child, err = yamlnet("run", "--config", child, "--out", tmp_path / "a", "-q")
    assert code == 0, err
    code, out_flat, err = yamlnet("run", "--config", flat, "--out", tmp_path / "b", "-q")
    assert code == 0, err
    folder_a = Path(out_child.split(": ")[1].strip())
    folder_b = Path(out_flat.split(": ")[1].strip())
    assert folder_a.relative_to(tmp_path / "a") == folder_b.relative_to(tmp_path / "b")
    names = sorted(p.name for p in folder_a.iterdir())
    assert names == sorted(p.name for p in folder_b.iterdir())
    assert {"config.yaml", "weights.npz", "history.csv", "predictions.csv"} <= set(names)
    for name in names:
        if name in ("run.json", "history.csv"):  # timings and the command line differ
            continue
        assert (folder_a / name).read_bytes() == (folder_b / name).read_bytes(), name
    assert output_digest(folder_a / "history.csv") == output_digest(folder_b / "history.csv")
    info_a, info_b = (json.loads((f / "run.json").read_text()) for f in (folder_a, folder_b))
    for info in (info_a, info_b):
        for key in ("started", "finished", "seconds", "argv"):
            info.pop(key)
    assert info_a == info_b
    saved = (folder_a / "config.yaml").read_text()
    assert "extends" not in saved and "seed: 3" in saved and "epochs: 25" in saved
    # the flat one, run into the child's folder, finds its run already complete
    code, out, err = yamlnet("run", "--config", flat, "--out", tmp_path / "a", "-q")
    assert code == 0 and out.startswith(f"skipped (already complete): {folder_a}"), out + err


def test_the_resolved_tree_has_no_extends_and_equals_the_flat_one(family):
    base, child, flat = family
    tree = experiment.resolved(load_config(child))
    assert "extends" not in tree
    assert tree == experiment.resolved(load_config(flat))
    assert experiment.plan(load_config(child)).id == experiment.plan(load_config(flat)).id
    assert experiment.plan(load_config(child)).id != experiment.plan(load_config(base)).id


def test_validate_resolved_prints_the_run_folders_config(family, tmp_path):
    base, child, flat = family
    code, out, err = yamlnet("validate", "--resolved", child)
    assert code == 0, err
    outcome = api.run(load_config(child), out=tmp_path / "runs")
    assert out == (Path(outcome.folder) / "config.yaml").read_text()
    printed = write(tmp_path / "printed.yaml", out)  # runs as it is, into the same folder
    assert api.plan(load_config(printed), out=tmp_path / "runs").id == outcome.id
    code, out, err = yamlnet("validate", "--resolved", child, flat)
    assert code == 0, err
    assert [d["seed"] for d in yaml.safe_load_all(out)] == [3, 3]
    code, out, err = yamlnet("validate", "--resolved", "--format", "json", child)
    assert code == 2 and "--resolved" in err and "Traceback" not in err


# ---- merging -------------------------------------------------------------------------

def test_mappings_merge_lists_and_scalars_are_replaced_later_bases_win(tmp_path):
    write(tmp_path / "a.yaml", BASE)
    write(tmp_path / "b.yaml", "seed: 5\ntrain:\n  metrics: []\n  optimizer: adam\n")
    child = write(tmp_path / "c.yaml", "extends: [a.yaml, b.yaml]\nmodel:\n  layers:\n"
                  "    - {units: 1, activation: sigmoid}\ntrain:\n  epochs: 7\n")
    config = load_config(child)
    assert config.seed == 5  # b over a
    assert [layer.units for layer in config.model.layers] == [1]  # a list is replaced whole
    assert config.train.optimizer.name == "adam"  # a string replaces a mapping
    assert config.train.optimizer.lr == 0.001  # ...whole: nothing of a's sgd is kept
    assert config.train.metrics == []
    assert (config.train.epochs, config.train.batch_size, config.train.loss) == (
        7, 4, "binary_crossentropy")  # mappings merge key by key
    assert config.name == "fam"  # from the base; the file's stem only when no one names it
    swapped = write(tmp_path / "d.yaml", "extends: [b.yaml, a.yaml]\n")
    assert load_config(swapped).seed == 0


def test_a_base_may_extend_another_and_diamonds_are_not_cycles(tmp_path):
    write(tmp_path / "root.yaml", BASE)
    write(tmp_path / "left.yaml", "extends: root.yaml\nseed: 1\n")
    write(tmp_path / "right.yaml", "extends: root.yaml\ntrain: {epochs: 9}\n")
    config = load_config(write(tmp_path / "top.yaml", "extends: [left.yaml, right.yaml]\n"))
    # each base is composed whole before it is merged: right.yaml brings root's seed 0
    assert (config.seed, config.train.epochs, config.train.batch_size) == (0, 9, 4)
    config = load_config(write(tmp_path / "top2.yaml", "extends: [right.yaml, left.yaml]\n"))
    assert (config.seed, config.train.epochs) == (1, 40)


def test_a_child_may_name_its_base_by_an_absolute_path(tmp_path):
    base = write(tmp_path / "x" / "base.yaml", BASE)
    child = write(tmp_path / "y" / "child.yaml", f"extends: {base}\nseed: 2\n")
    config = load_config(child)
    assert config.seed == 2 and config.data.path == str(tmp_path / "x" / "xor.csv")


def test_load_config_dict_extends_relative_to_base_dir(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    config = load_config_dict({"extends": "base.yaml", "seed": 4}, base_dir=str(tmp_path))
    assert config.seed == 4 and config.data.path == str(tmp_path / "xor.csv")


# ---- paths stay relative to the file that wrote them ---------------------------------

def test_paths_resolve_against_the_folder_of_the_file_that_wrote_them(family, tmp_path):
    base, child, flat = family
    assert load_config(child).data.path == str(tmp_path / "base" / "xor.csv")
    own = write(tmp_path / "kids" / "own.yaml", CHILD + "data: {validation_path: v.csv}\n"
                "sweep:\n  grid: {data.path: [a.csv, /abs/b.csv]}\n")
    config = load_config(own)
    assert config.data.path == str(tmp_path / "base" / "xor.csv")  # from the base
    assert config.data.validation_path == str(tmp_path / "kids" / "v.csv")  # the child's
    assert config.sweep.grid["data.path"] == [str(tmp_path / "kids" / "a.csv"), "/abs/b.csv"]
    overridden = load_config(child, ["data.path=o.csv"])
    assert overridden.data.path == str(tmp_path / "kids" / "o.csv")  # --set: the config's


def test_a_run_reads_the_bases_data_even_when_the_child_lives_elsewhere(family, tmp_path):
    base, child, flat = family
    code, out, err = yamlnet("run", "--config", child, "--out", tmp_path / "runs", "-q",
                             cwd=tmp_path / "kids")
    assert code == 0, err
    folder = Path(out.split(": ", 1)[1].strip())
    folder = folder if folder.is_absolute() else tmp_path / "kids" / folder
    assert yaml.safe_load((folder / "config.yaml").read_text())["data"]["path"] == str(
        tmp_path / "base" / "xor.csv")


def test_prefetch_paths_follow_extends(family, tmp_path):
    base, child, flat = family
    assert digests.config_paths(child) == [str(tmp_path / "base" / "xor.csv")]
    assert digests.config_paths(child, ["data.path=o.csv"]) == [str(tmp_path / "kids" / "o.csv")]
    own = write(tmp_path / "kids" / "own.yaml", CHILD + "data: {path: mine.csv}\n"
                "predict: {path: p.csv}\n")
    assert digests.config_paths(own) == [str(tmp_path / "kids" / "mine.csv"),
                                         str(tmp_path / "kids" / "p.csv")]
    cleared = write(tmp_path / "kids" / "cleared.yaml", CHILD + "data: null\n")
    assert digests.config_paths(cleared) == []  # null replaces the base's data whole
    write(tmp_path / "a.yaml", "extends: b.yaml\n")
    write(tmp_path / "b.yaml", "extends: [nowhere.yaml, a.yaml, 3, {x: 1}]\n")
    assert digests.config_paths(tmp_path / "a.yaml") == []  # a cycle, a missing base: no error


# ---- errors point at the file that holds the mistake ----------------------------------

def test_a_bad_value_in_the_base_is_reported_there_via_the_child(family, tmp_path):
    base, child, flat = family
    bad = BASE.replace("activation: tanh", "activation: relux")
    base.write_text(bad)
    child.write_text(CHILD + "  optimzer: {lr: 0.1}\n")
    code, out, err = yamlnet("run", "--config", child, cwd=tmp_path)
    assert code == 2 and "Traceback" not in err
    line, column = pos(bad, "relux")
    kid_line, kid_column = pos(child.read_text(), "optimzer")
    lines = err.splitlines()
    assert lines[0].startswith(f"{child}:{kid_line}:{kid_column}: train.optimzer: unknown key "
                               "'optimzer'; did you mean 'optimizer'?")
    assert lines[3] == (f"{base}:{line}:{column}: model.layers.0.activation: 'relux' is not "
                        f"an activation; did you mean 'relu'? (one of: identity, sigmoid, "
                        f"tanh, relu, leaky_relu, elu, softplus, gelu, silu, softmax) "
                        f"(via {child})")
    assert lines[4:] == ["          activation: relux", "                      ^"]
    code, out, err = yamlnet("validate", "--format", "json", child)
    found = json.loads(out)
    assert [(p["file"], p["line"], p.get("via")) for p in found] == [
        (str(child), kid_line, None), (str(base), line, [str(child)])]


def test_an_overridden_bad_value_in_the_base_is_no_error(family):
    base, child, flat = family
    base.write_text(BASE.replace("epochs: 40", "epochs: -1"))
    assert load_config(child).train.epochs == 25
    assert [p.path for p in problems(base)] == ["train.epochs"]


def test_the_chain_names_every_file_on_the_way(tmp_path):
    bad = BASE.replace("units: 4", "units: four")
    root = write(tmp_path / "root.yaml", bad)
    mid = write(tmp_path / "mid.yaml", "extends: root.yaml\n")
    top = write(tmp_path / "top.yaml", "extends: mid.yaml\n")
    [problem] = problems(top)
    assert (problem.file, (problem.line, problem.column), problem.via) == (
        str(root), pos(bad, "four"), (str(top), str(mid)))
    assert f"(via {top} → {mid})" in str(problem)


def test_errors_found_later_point_into_the_base(family, tmp_path):
    base, child, flat = family
    base.write_text(BASE.replace("path: xor.csv", "path: nodata.csv"))
    problem = locate(child, "data.path", "file not found")
    assert (problem.file, (problem.line, problem.column), problem.via) == (
        str(base), pos(BASE, "xor.csv"), (str(child),))
    code, out, err = yamlnet("run", "--config", child, "--out", tmp_path / "runs")
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"{base}:{pos(BASE, 'xor.csv')[0]}:{pos(BASE, 'xor.csv')[1]}: "
                          f"data.path: file not found: {tmp_path / 'base' / 'nodata.csv'}")
    assert f"(via {child})" in err.splitlines()[0]


@pytest.mark.parametrize("files, message", [
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: [c.yaml, a.yaml]\n", "c.yaml": "seed: 1\n"},
     "b.yaml:1:19: extends: a cycle: {a} → {b} → {a}"),
    ({"a.yaml": "extends: a.yaml\n"}, "a.yaml:1:10: extends: a cycle: {a} → {a}"),
    ({"a.yaml": "seed: 1\nextends: nope.yaml\n"},
     "a.yaml:2:10: extends: cannot read {nope}: No such file or directory"),
    ({"a.yaml": "extends: [b.yaml]\n", "b.yaml": "- units: 3\n"},
     "a.yaml:1:11: extends: {b} holds a list; a base is a mapping of config keys"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "# nothing\n"},
     "a.yaml:1:10: extends: {b} is empty; a base is a mapping of config keys"),
    ({"a.yaml": "extends: 3\n"},
     "a.yaml:1:10: extends: expected a file name or a list of file names, got the integer 3"),
    ({"a.yaml": "extends: [b.yaml, null]\n"},
     "a.yaml:1:19: extends: expected a file name, got null"),
    ({"a.yaml": "extends: b.yaml\n", "b.yaml": "data: [unclosed\n"},
     "b.yaml:2:1: invalid YAML"),
], ids=["cycle", "itself", "missing", "list", "empty", "integer", "null-entry", "bad-yaml"])
def test_composition_problems_exit_2_with_one_message(tmp_path, files, message):
    for name, text in files.items():
        write(tmp_path / name, text)
    code, out, err = yamlnet("run", "--config", "a.yaml", cwd=tmp_path)
    names = {k: f"{k}.yaml" for k in ("a", "b", "c", "nope")}
    expected = message.format(**names)
    assert code == 2 and "Traceback" not in err
    assert err.splitlines()[0].startswith(expected), err
    assert len([line for line in err.splitlines() if line.startswith(tuple(files))]) == 1


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_base_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")  # opening it to read would wait for a writer
    (tmp_path / "folder").mkdir()
    for name in ("pipe.yaml", "folder"):
        write(tmp_path / "a.yaml", f"extends: {name}\n")
        assert digests.config_paths(tmp_path / "a.yaml") == []
        code, out, err = yamlnet("run", "--config", "a.yaml", cwd=tmp_path, timeout=60)
        assert code == 2 and "Traceback" not in err
        assert err.startswith(f"a.yaml:1:10: extends: cannot read {name}: not a regular file")


def test_more_than_a_sane_depth_is_refused(tmp_path):
    for i in range(MAX_LEVELS + 2):
        write(tmp_path / f"d{i}.yaml", f"extends: d{i + 1}.yaml\n")
    write(tmp_path / f"d{MAX_LEVELS + 2}.yaml", BASE)
    code, out, err = yamlnet("validate", "d0.yaml", cwd=tmp_path)
    assert code == 2 and "Traceback" not in err
    assert err.startswith(f"d{MAX_LEVELS}.yaml:1:10: extends: d{MAX_LEVELS + 1}.yaml would be "
                          f"level {MAX_LEVELS + 1} of bases; at most {MAX_LEVELS} levels")
    assert load_config(tmp_path / "d2.yaml").seed == 0  # MAX_LEVELS levels are followed


def test_extends_cannot_be_overridden_and_is_not_a_nested_key(family):
    base, child, flat = family
    [problem] = problems(child, ["extends=other.yaml"])
    assert problem.file == "--set extends=other.yaml"
    assert "read before the overrides" in problem.message
    child.write_text(CHILD + "model: {extends: x.yaml}\n")
    [problem] = problems(child)
    assert problem.path == "model.extends" and "unknown key 'extends'" in problem.message


def test_a_misspelt_extends_gets_a_did_you_mean(tmp_path):
    path = write(tmp_path / "a.yaml", "extend: base.yaml\n" + BASE)
    [problem] = problems(path)
    assert problem.message.startswith("unknown key 'extend'; did you mean 'extends'?")


# ---- the examples and the schema -----------------------------------------------------

FAMILY = sorted((CONFIGS / "family").glob("*.yaml"))


def test_the_family_examples_validate_with_their_data():
    code, out, err = yamlnet("validate", "--data", *FAMILY, CONFIGS / "xor_sweep.yaml")
    assert code == 0, err
    assert out.count(": ok") == len(FAMILY) + 1 >= 4


@pytest.mark.parametrize("path", FAMILY, ids=lambda p: p.stem)
def test_the_family_examples_extend_iris_and_point_at_the_schema(path):
    lines = path.read_text().splitlines()
    assert lines[0] == "# yaml-language-server: $schema=../../schemas/config.schema.json"
    assert "extends: ../iris.yaml" in lines
    tree = experiment.resolved(load_config(path))
    assert tree["data"]["path"] == str(CONFIGS / "iris.csv")


def test_the_xor_sweep_is_xor_yaml_plus_a_sweep():
    sweep = load_config(CONFIGS / "xor_sweep.yaml")
    assert "extends: xor.yaml" in (CONFIGS / "xor_sweep.yaml").read_text()
    flat = load_config(CONFIGS / "xor.yaml", ["name=xor_sweep", "train.epochs=300"])
    flat.sweep = sweep.sweep
    assert experiment.resolved(sweep) == experiment.resolved(flat)


def test_the_json_schema_knows_extends():
    schema = json_schema()
    branches = schema["properties"]["extends"]["anyOf"]
    assert {"type": "string", "minLength": 1} in branches
    assert {"type": "array", "items": {"type": "string", "minLength": 1}} in branches
    # data and model are required only of a file that extends nothing
    assert "required" not in schema and schema["if"] == {"required": ["extends"]}
    assert schema["else"]["required"] == ["data", "model"]
    assert schema["else"]["properties"]["data"] == {"required": ["path"]}
    assert "required" not in schema["$defs"]["Data"]
    committed = json.loads((ROOT / "schemas" / "config.schema.json").read_text())
    assert committed["properties"]["extends"] == schema["properties"]["extends"]


def test_digests_stay_light():
    """config_paths follows extends with stdlib and PyYAML only (it runs before the
    heavy imports of `yamlnet run`)."""
    source = (ROOT / "runner" / "io" / "digests.py").read_text()
    imports = {line.split()[1] for line in source.splitlines()
               if line.startswith(("import ", "from "))}
    assert imports <= {"hashlib", "json", "mmap", "os", "threading", "runner.io", "runner.vocabulary"}
