"""`yamlnet compare` through the real CLI, checked against sweep.csv and each run's own
files: only the differing config keys, every format, filters, sorting and groups."""

import csv
import io
import json
import shutil

import numpy as np
import pytest
from conftest import CONFIGS, yamlnet

SWEPT = ["model.layers.0.units", "train.optimizer.lr"]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The README's sweep (configs/xor_sweep.yaml, 2 x 2 x 3 seeds), with fewer epochs."""
    folder = tmp_path_factory.mktemp("compare")
    for name in ("xor_sweep.yaml", "xor.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, folder / name)
    code, _, err = yamlnet("run", "--config", "xor_sweep.yaml", "--set", "train.epochs=40",
                           "--out", "runs", "--quiet", cwd=folder)
    assert code == 0, err
    with open(folder / "runs" / "xor_sweep" / "sweep.csv") as f:
        return folder, {row["id"]: row for row in csv.DictReader(f)}


def compare(folder, *args):
    code, out, err = yamlnet("compare", *args, cwd=folder)
    assert code == 0, err
    return out


def test_the_table_shows_only_the_keys_that_differ(swept):
    folder, rows = swept
    lines = compare(folder, "runs/xor_sweep").splitlines()
    assert lines[0].split() == ["run", "seed", *SWEPT, "loss", "accuracy", "status", "epochs",
                                "seconds"]
    assert set(lines[1]) == {"-"} and len(lines) == 2 + len(rows) == 14
    for line in lines[2:]:
        run, seed, units, lr, loss, accuracy, status, epochs, _ = line.split()
        row = rows[run.rsplit("/", 1)[1]]
        assert [seed, units, lr, status] == [row["seed"], row["model.layers.0.units"],
                                              row["train.optimizer.lr"], row["status"]]
        assert float(loss) == pytest.approx(float(row["loss"]), rel=1e-5)
        assert epochs == "40"


def test_json_is_one_object_per_run(swept):
    folder, rows = swept
    found = json.loads(compare(folder, "runs", "--format", "json"))  # the --out folder
    assert len(found) == len(rows) and all(isinstance(r, dict) for r in found)
    for run in found:
        row = rows[run["run"].rsplit("/", 1)[1]]
        assert set(run) == {"run", "seed", *SWEPT, "loss", "accuracy", "status", "epochs",
                            "seconds"}
        assert run["loss"] == float(row["loss"]) and run["seed"] == int(row["seed"])
        assert run["model.layers.0.units"] == int(row["model.layers.0.units"])
        assert run["seconds"] == float(row["seconds"]) and run["epochs"] == 40
        info = json.loads((folder / run["run"] / "run.json").read_text())
        assert run["status"] == info["status"] == "complete"


def test_group_gives_mean_and_std_over_seeds(swept):
    folder, rows = swept
    groups = json.loads(compare(folder, "runs/xor_sweep", "--group", "--format", "json",
                                "--sort", "loss"))
    assert len(groups) == 4
    for group in groups:
        losses = [float(r["loss"]) for r in rows.values()
                  if [r[k] for k in SWEPT] == [str(group[k]) for k in SWEPT]]
        assert group["runs"] == len(losses) == 3
        assert group["loss"]["mean"] == pytest.approx(np.mean(losses), rel=1e-12)
        assert group["loss"]["std"] == pytest.approx(np.std(losses), rel=1e-9, abs=1e-15)
        assert "seed" not in group and group["status"] == "complete"
    means = [g["loss"]["mean"] for g in groups]
    assert means == sorted(means)


def test_filter_sort_and_the_other_formats(swept):
    folder, rows = swept
    out = compare(folder, "runs/xor_sweep", "--filter", "seed=1", "--filter",
                  "train.optimizer.lr=0.5", "--sort=-loss", "--format", "csv")
    got = list(csv.DictReader(io.StringIO(out)))
    want = sorted((r for r in rows.values() if r["seed"] == "1"
                   and r["train.optimizer.lr"] == "0.5"), key=lambda r: -float(r["loss"]))
    assert [g["run"].rsplit("/", 1)[1] for g in got] == [w["id"] for w in want]
    assert len(got) == 2 and list(got[0]) == ["run", "model.layers.0.units", "loss", "accuracy",
                                              "status", "epochs", "seconds"]
    lines = compare(folder, "runs/xor_sweep", "--format", "markdown").splitlines()
    assert lines[0].startswith("| run | seed | model.layers.0.units |")
    assert lines[1] == "| --- " * 9 + "|" and len(lines) == 14


def test_filter_status_leaves_out_a_failed_run(tmp_path):
    for name in ("puzzle.yaml", "puzzle.csv", "puzzle_query.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    code, _, _ = yamlnet("run", "--config", "puzzle.yaml", "--quiet", "--set",
                         "sweep={grid: {train.optimizer.lr: [0.001, 0.01, 10.0]}, "
                         "metric: loss, mode: min}")
    assert code == 1  # the trial at lr 10 diverged
    every = json.loads(compare(tmp_path, "runs", "--format", "json"))
    assert sorted(r["status"] for r in every) == ["complete", "complete", "failed"]
    done = json.loads(compare(tmp_path, "runs", "--format", "json", "--filter",
                              "status=complete"))
    assert sorted(r["train.optimizer.lr"] for r in done) == [0.001, 0.01]


def test_mistakes_exit_2(tmp_path, swept):
    folder, _ = swept
    (tmp_path / "empty").mkdir()
    for args, words in [(["empty"], "no run folder"), (["nowhere"], "no such folder"),
                        ([str(folder / "runs"), "--sort", "lossy"], "not a column"),
                        ([str(folder / "runs"), "--filter", "nokey=1"], "no run has that key"),
                        ([str(folder / "runs"), "--filter", "seed"], "KEY=VALUE")]:
        code, out, err = yamlnet("compare", *args, cwd=tmp_path)
        assert code == 2 and words in err and "Traceback" not in err, (args, err)


@pytest.fixture
def two_runs(tmp_path, swept):
    """Two runs of the sweep that differ only in their seed, copied to
    `tmp_path/runs/{a,b}`, to damage."""
    folder, rows = swept
    same = [i for i, row in rows.items() if [row[k] for k in SWEPT] == ["4", "0.5"]]
    for name, run in zip("ab", same[:2]):
        shutil.copytree(folder / "runs" / "xor_sweep" / run, tmp_path / "runs" / name)
    return tmp_path / "runs"


@pytest.mark.parametrize("name, text, words", [
    ("run.json", '{"status": "complete", "metrics": [1]}', '"metrics" is a list'),
    ("run.json", '{"status": "complete", "metrics": "abc"}', '"metrics" is the string'),
    ("run.json", "[1, 2]", "holds a list, not an object"),
    ("run.json", "{}", 'no "status"'),
    ("run.json", "", "not valid JSON"),
    ("run.json", None, "not valid JSON"),  # cut short: its first 50 bytes
    ("config.yaml", None, "cannot be read"),  # missing
    ("config.yaml", "model: [a,\nb: 2\n", "invalid YAML"),
    ("config.yaml", "", "is empty, not a config"),
])
def test_a_damaged_run_folder_is_refused_naming_its_file(two_runs, name, text, words):
    path = two_runs / "b" / name
    if text is not None:
        path.write_text(text)
    elif name == "run.json":
        path.write_text(path.read_text()[:50])
    else:
        path.unlink()
    for extra in ([], ["--group", "--format", "json"]):
        code, out, err = yamlnet("compare", "runs", *extra, cwd=two_runs.parent)
        assert code == 2 and out == "" and "Traceback" not in err, (extra, err)
        assert f"runs/b/{name}" in err and words in err, err


def test_a_config_value_yaml_1_1_reads_as_a_date_is_text(two_runs):
    path = two_runs / "b" / "config.yaml"
    path.write_text(path.read_text().replace("\nseed: ", "\nseed: 2020-01-01 #", 1))
    rows = json.loads(compare(two_runs.parent, "runs", "--format", "json"))
    assert [r["seed"] for r in rows][1] == "2020-01-01"
    kept = json.loads(compare(two_runs.parent, "runs", "--format", "json", "--filter",
                              "seed=2020-01-01"))
    assert [r["run"] for r in kept] == ["runs/b"]
    assert "2020-01-01" in compare(two_runs.parent, "runs")
    groups = json.loads(compare(two_runs.parent, "runs", "--group", "--format", "json"))
    assert len(groups) == 1 and groups[0]["runs"] == 2


@pytest.mark.parametrize("args, words", [
    (["--sort=-lossy"], ["--sort '-lossy'", "'lossy' is not a column", "did you mean 'loss'"]),
    (["--sort", ""], ["--sort ''", "no column given", "one of: run, seed"]),
    (["--sort=-"], ["--sort '-'", "no column given", "one of: run, seed"]),
    (["--filter", "sed=0"], ["--filter sed", "no run has that key", "did you mean 'seed'"]),
])
def test_sort_and_filter_mistakes_name_the_key_and_what_is_valid(two_runs, args, words):
    code, out, err = yamlnet("compare", "runs", *args, cwd=two_runs.parent)
    assert code == 2 and out == "" and "Traceback" not in err, err
    assert all(w in err for w in words), err
