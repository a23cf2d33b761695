"""Successive halving (sweep.halving) through the real CLI: the rung plan, decisions
checked against a full grid's histories, halted trials that keep their checkpoint and go
on from it, reruns that compute nothing, config errors, and the same bytes sequentially,
with --workers 2 and on a Dask cluster; the README's case on configs/halving.yaml."""

import csv
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import CONFIGS, weights_bytes, write, yamlnet

from runner.runs import halving

XOR = """\
sweep:
  grid:
    model.layers.0.units: [2, 4, 8]
    train.optimizer.lr: [0.1, 0.3, 0.5]
  metric: loss
  mode: min
  halving: {min_epochs: 3, factor: 3}
"""

IRIS = """\
extends: iris.yaml
name: iris_halving
train:
  epochs: 45
  early_stopping: {monitor: val_loss, patience: 3, restore_best: true}
sweep:
  grid:
    model.layers.0.units: [4, 16, 64]
    train.optimizer.lr: [0.003, 0.03, 0.3]
  metric: val_accuracy
  mode: max
  halving: {min_epochs: 5, factor: 3}
"""


@pytest.fixture
def xor(tmp_path):
    """The XOR example, 27 epochs, a 3 x 3 grid halved at epochs 3 and 9."""
    shutil.copy(CONFIGS / "xor.csv", tmp_path / "xor.csv")
    text = (CONFIGS / "xor.yaml").read_text().replace("epochs: 2000", "epochs: 27")
    return write(tmp_path / "halving.yaml", text + XOR)


@pytest.fixture
def iris(tmp_path):
    """iris with early stopping (restoring the best weights), ranked by val_accuracy."""
    for name in ("iris.yaml", "iris.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    return write(tmp_path / "halving.yaml", IRIS)


def sweep_rows(out, name):
    with open(Path(out) / name / "sweep.csv") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def history(folder):
    """history.csv as rows of text cells, without its seconds column."""
    with open(Path(folder) / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def expected_epochs(full, rungs, metric, mode, kept=lambda rows: rows[-1]):
    """{id: epochs reached} of a halving sweep, decided here from the histories of the
    same trials run to the end (`full`: {id: history rows}): at each rung the best
    ceil(n / factor) scores go on, ties to the smaller id. kept(rows) picks the row
    whose weights a trial keeps."""
    sign = 1 if mode == "min" else -1
    alive, reached, last = sorted(full), dict.fromkeys(full, 0), None
    for epochs, keep in rungs:
        if last is not None:
            def key(i, e=last):
                return (sign * float(kept(full[i][:e])[metric]), i)
            alive = sorted(alive, key=key)[:keep]
        for i in alive:
            reached[i] = min(epochs, len(full[i]))
        last = epochs
    return reached


def test_rungs():
    assert halving.rungs(27, 4, 3, 60) == [(4, 27), (12, 9), (36, 3), (60, 1)]
    assert halving.rungs(27, 1, 3, 27) == [(1, 27), (3, 9), (9, 3), (27, 1)]
    assert halving.rungs(10, 1, 2, 5) == [(1, 10), (2, 5), (4, 3), (5, 2)]
    assert halving.rungs(5, 2, 4, 3) == [(2, 5), (3, 2)]


def test_best_ranks_failed_and_missing_last_and_ties_by_id(tmp_path):
    def trial(name, status, losses):
        folder = write(tmp_path / name / "run.json", json.dumps({"status": status})).parent
        write(folder / "history.csv", "epoch,loss,seconds\n" + "".join(
            f"{e},{v!r},0.1\n" for e, v in enumerate(losses, 1)))
        early = SimpleNamespace(train=SimpleNamespace(early_stopping=None))
        return SimpleNamespace(plan=SimpleNamespace(folder=str(folder), id=name, config=early))

    found = [trial("e", "halted", [0.9, 0.5]), trial("d", "failed", [0.1, 0.1]),
             trial("c", "halted", [0.9, 0.3]), trial("b", "halted", [0.2, 0.3]),
             trial("a", "complete", [0.4]), trial("f", "halted", [0.3, float("nan")])]
    everyone = range(len(found))
    # at epoch 2: c 0.3 and b 0.3 tie (b first), a stopped at 0.4, e 0.5; then, without a
    # score, d (failed, though its losses are the lowest) and f (NaN), by id
    assert [found[i].plan.id for i in halving.best(found, everyone, 2, "loss", "min", 2)] == \
        ["c", "b"]
    assert [found[i].plan.id for i in halving.best(found, everyone, 2, "loss", "min", 4)] == \
        ["e", "c", "b", "a"]
    assert [found[i].plan.id for i in halving.best(found, everyone, 1, "loss", "min", 1)] == ["b"]
    assert [found[i].plan.id for i in halving.best(found, everyone, 2, "loss", "max", 2)] == \
        ["e", "a"]
    assert [found[i].plan.id for i in halving.best(found, everyone, 2, "loss", "min", 5)] == \
        ["e", "d", "c", "b", "a"]


def test_dry_run_shows_the_rungs_and_the_trial_ids_do_not_change(xor, tmp_path):
    code, out, err = yamlnet("run", "--config", xor, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[9:] == [
        "successive halving (factor 3, by loss, min):",
        "rung  epochs  trials",
        "1          3       9",
        "2          9       3",
        "3         27       1",
        "at most 63 epochs in all (every trial to the end: 243)"]
    code, plain, _ = yamlnet("run", "--config", xor, "--dry-run", "--set", "sweep.halving=null")
    assert code == 0 and plain.splitlines() == lines[:9]  # the same ids, no rung plan
    assert not (tmp_path / "runs").exists()


def test_halving_decides_from_the_scores_and_halted_trials_go_on(xor, tmp_path):
    code, _, err = yamlnet("run", "--config", xor, "--out", "full", "--quiet",
                           "--set", "sweep.halving=null")
    assert code == 0, err
    full = {i: history(tmp_path / "full" / "xor" / i) for i in sweep_rows("full", "xor")}
    code, out, err = yamlnet("run", "--config", xor, "--quiet")
    assert code == 0, err
    rows = sweep_rows("runs", "xor")
    assert rows.keys() == full.keys()
    want = expected_epochs(full, [(3, 9), (9, 3), (27, 1)], "loss", "min")
    assert {i: int(r["epochs"]) for i, r in rows.items()} == want
    assert sorted(want.values()) == [3] * 6 + [9] * 2 + [27]
    for i, r in rows.items():
        folder = tmp_path / "runs" / "xor" / i
        info = json.loads((folder / "run.json").read_text())
        assert history(folder) == full[i][:want[i]]  # each rung went on from its state
        if want[i] == 27:
            assert r["status"] == info["status"] == "complete"
            assert weights_bytes(folder / "weights.npz") == \
                weights_bytes(tmp_path / "full" / "xor" / i / "weights.npz")
            continue
        assert r["status"] == info["status"] == "halted" and info["halted_at"] == want[i]
        assert sorted(p.name for p in folder.iterdir()) == [
            "checkpoint.npz", "config.yaml", "history.csv", "run.json"]
        assert info["metrics"]["loss"] == float(full[i][want[i] - 1]["loss"])
        assert float(r["loss"]) == info["metrics"]["loss"]

    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*")
              if p.is_file() and "sweep." not in p.name}
    code, out, _ = yamlnet("run", "--config", xor, "--quiet")
    assert code == 0 and "(0 run, 9 already done" in out
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing recomputed

    killed = [i for i in rows if want[i] == 9][1]  # killed as it went on past epoch 9
    path = tmp_path / "runs" / "xor" / killed / "run.json"
    path.write_text(json.dumps(dict(json.loads(path.read_text()), status="running")))
    code, out, _ = yamlnet("run", "--config", xor, "--quiet")
    assert code == 0 and "(1 run, 8 already done" in out
    info = json.loads(path.read_text())  # its checkpoint is past rung 1: halted there again
    assert (info["status"], info["halted_at"], info["resumed"]) == ("halted", 9, 9)
    assert history(path.parent) == full[killed][:9]

    code, out, _ = yamlnet("run", "--config", xor, "--dry-run")
    statuses = sorted(line.split()[1] for line in out.splitlines()[:9])
    assert code == 0 and statuses == ["complete"] + ["halted"] * 8

    halted = next(i for i in rows if want[i] == 9)  # its config alone goes on to the end
    folder = tmp_path / "runs" / "xor" / halted
    code, out, err = yamlnet("run", "--config", folder / "config.yaml", "--out", "runs")
    assert code == 0 and f"complete (resumed at epoch 9): runs/xor/{halted}" in out, err
    assert weights_bytes(folder / "weights.npz") == \
        weights_bytes(tmp_path / "full" / "xor" / halted / "weights.npz")
    assert history(folder) == full[halted] and not (folder / "checkpoint.npz").exists()

    code, out, _ = yamlnet("compare", "runs/xor", "--format", "json")
    shown = {Path(r["run"]).name: (r["status"], r["epochs"]) for r in json.loads(out)}
    assert shown == {i: ("complete" if i == halted or want[i] == 27 else "halted",
                         27 if i == halted else want[i]) for i in want}


def test_early_stopping_applies_and_rungs_rank_the_kept_weights(iris, tmp_path):
    code, _, err = yamlnet("run", "--config", iris, "--out", "full", "--quiet",
                           "--set", "sweep.halving=null")
    assert code == 0, err
    names = sweep_rows("full", "iris_halving")
    full = {i: history(tmp_path / "full" / "iris_halving" / i) for i in names}

    def kept(rows):  # restore_best: the row of the lowest val_loss, the first one on ties
        return min(rows, key=lambda r: float(r["val_loss"]))

    code, _, err = yamlnet("run", "--config", iris, "--quiet")
    assert code == 0, err
    rows = sweep_rows("runs", "iris_halving")
    want = expected_epochs(full, [(5, 9), (15, 3), (45, 1)], "val_accuracy", "max", kept)
    assert {i: int(r["epochs"]) for i, r in rows.items()} == want
    early = [i for i in want if len(full[i]) < 45 and want[i] == len(full[i])]
    assert early and all(rows[i]["status"] == "complete" for i in early)  # stopped early
    assert any(r["status"] == "halted" for r in rows.values())
    for i in rows:
        folder = tmp_path / "runs" / "iris_halving" / i
        info = json.loads((folder / "run.json").read_text())
        assert history(folder) == full[i][:want[i]]
        value = float(kept(full[i][:want[i]])["val_accuracy"])
        assert info["metrics"]["val_accuracy"] == value  # what the fit keeps, halted or not
        assert halving.score(str(folder), want[i], "val_accuracy", _rule()) == value


def _rule():
    return SimpleNamespace(monitor="val_loss", min_delta=0.0, restore_best=True)


@pytest.mark.parametrize("change,key,words", [
    ({"halving: {min_epochs: 3, factor: 3}": "halving: {min_epochs: 27}"},
     "sweep.halving.min_epochs", "below train.epochs (27)"),
    ({"factor: 3}": "factor: 1}"}, "sweep.halving.factor", "expected a value >= 2, got 1"),
    ({"halving: {min_epochs: 3, factor: 3}": "halving: {factor: 3}"}, "sweep.halving",
     "min_epochs"),
    ({"metric: loss": "metric: val_loss"}, "sweep.metric", "needs validation data"),
    ({"train.optimizer.lr: [0.1, 0.3, 0.5]": "train.epochs: [20, 27]"}, "sweep.halving",
     "do not sweep train.epochs"),
])
def test_mistakes_exit_2_before_any_trial(xor, tmp_path, change, key, words):
    text = xor.read_text()
    for old, new in change.items():
        assert old in text
        text = text.replace(old, new)
    write(xor, text)
    code, out, err = yamlnet("run", "--config", xor)
    assert code == 2 and key in err and words in err and "Traceback" not in err, err
    assert "halving.yaml:" in err  # located in the file
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("run.json"))
    code, out, err = yamlnet("validate", xor)  # the same check, without running
    assert code == 2 and key in err and words in err and "Traceback" not in err, err


@pytest.mark.parametrize("swept,base_split,refused", [
    ("    data.validation_split: [0.2, 0.0]", "", True),  # one trial has no val_ scores
    ("    data.validation_split: [0.0]", "", True),
    ("  random: {samples: 2, space: {data.validation_split: {choice: [0.3, 0]}}}", "", True),
    ("  random: {samples: 2, space: {data.validation_split: {uniform: [0.1, 0.3]}}}", "",
     False),
    ("    data.validation_split: [0.2, 0.3]", "0.0", False),  # every trial has them
])
def test_val_metric_needs_validation_in_every_trial(iris, swept, base_split, refused):
    """Halving ranks by sweep.metric: a trial without validation rows has no val_ score,
    and halting trials by id instead would be a silent wrong result; a base config
    without validation whose every trial has some is fine. (Early stopping then watches
    `loss`: each swept value is checked alone against the base config, loader.py's
    _sweep_issues, so a val_loss monitor would be refused there.) A grid line goes into
    the grid, a random search beside it."""
    text = iris.read_text()
    text = (text.replace("  grid:\n", "  grid:\n" + swept + "\n") if swept.startswith("    ")
            else text.replace("  grid:\n", swept + "\n  grid:\n"))
    if base_split:
        text = text.replace("monitor: val_loss", "monitor: loss")
        text += f"data: {{validation_split: {base_split}}}\n"
    write(iris, text)
    for command in (["run", "--config", iris, "--dry-run"], ["validate", iris]):
        code, out, err = yamlnet(*command)
        assert "Traceback" not in err
        if refused:
            assert code == 2 and "sweep.metric" in err and "in every trial" in err, err
        else:
            assert code == 0, err


def test_a_forward_sweep_cannot_halve(tmp_path):
    shutil.copy(CONFIGS / "xor.csv", tmp_path / "xor.csv")
    text = (CONFIGS / "forward.yaml").read_text()
    write(tmp_path / "f.yaml", text + "sweep:\n  grid: {model.layers.0.units: [2, 3]}\n"
          "  halving: {min_epochs: 1}\n")
    code, _, err = yamlnet("run", "--config", tmp_path / "f.yaml")
    assert code == 2 and "sweep.halving" in err and "train section" in err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def folder_files(out, name):
    """Every trial's files, as what must match: bytes, history.csv without seconds,
    checkpoint.npz's arrays and meta without the epochs' seconds, run.json without
    times and argv; and sweep.csv without seconds."""
    found = {}
    for path in sorted((Path(out) / name).rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        key = str(path.relative_to(out))
        if path.name == "history.csv":
            found[key] = history(path.parent)
        elif path.name == "sweep.csv":
            found[key] = [{k: v for k, v in r.items() if k != "seconds"}
                          for r in sweep_rows(out, name).values()]
        elif path.name == "run.json":
            info = json.loads(path.read_text())
            found[key] = {k: v for k, v in info.items()
                          if k not in ("started", "finished", "seconds", "argv")}
        elif path.name == "checkpoint.npz":
            with np.load(path) as z:
                arrays = {k: z[k].tobytes() for k in z.files if k != "meta"}
                meta = json.loads(z["meta"].tobytes())
            for row in meta["history"]:
                row.pop("seconds")
            found[key] = (arrays, meta)
        elif path.suffix == ".npz":
            found[key] = weights_bytes(path)
        else:
            found[key] = path.read_bytes()
    return found


@pytest.mark.slow
def test_sequential_workers_and_dask_give_the_same_folders(iris, tmp_path):
    pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
    from test_sweep import dask_cluster

    code, _, err = yamlnet("run", "--config", iris, "--out", "seq", "--quiet")
    assert code == 0, err
    code, _, err = yamlnet("run", "--config", iris, "--out", "par", "--quiet", "--workers", "2")
    assert code == 0, err
    elsewhere = tmp_path / "cluster"  # the workers' folder holds no data files
    elsewhere.mkdir()
    with dask_cluster(elsewhere) as address:
        code, _, err = yamlnet("run", "--config", iris, "--out", "dask", "--quiet",
                               "--scheduler", address)
    assert code == 0, err
    reference = folder_files(tmp_path / "seq", "iris_halving")
    statuses = [r["status"] for r in reference["iris_halving/sweep.csv"]]
    assert sorted(set(statuses)) == ["complete", "halted"]
    assert sum(k.endswith("checkpoint.npz") for k in reference) == statuses.count("halted")
    for out in ("par", "dask"):
        got = folder_files(tmp_path / out, "iris_halving")
        assert got.keys() == reference.keys(), out
        for key in reference:
            assert got[key] == reference[key], (out, key)
    assert not list(elsewhere.iterdir())


@pytest.mark.slow
def test_readme_case_finds_the_full_grids_best_in_40_percent_of_its_epochs(tmp_path):
    config = CONFIGS / "halving.yaml"
    code, out, err = yamlnet("run", "--config", config, "--out", "full", "--quiet",
                             "--set", "sweep.halving=null")
    assert code == 0, err
    code, out, err = yamlnet("run", "--config", config, "--out", "halved", "--quiet")
    assert code == 0, err
    full, halved = sweep_rows("full", "halving"), sweep_rows("halved", "halving")
    assert len(full) == len(halved) == 27 and full.keys() == halved.keys()

    def winner(rows):
        done = [r for r in rows.values() if r["status"] == "complete"]
        return min(done, key=lambda r: (float(r["val_loss"]), r["id"]))["id"]

    assert winner(halved) == winner(full)
    spent, everything = (sum(int(r["epochs"]) for r in rows.values()) for rows in (halved, full))
    assert spent <= 0.4 * everything, (spent, everything)
    assert sum(r["status"] == "halted" for r in halved.values()) >= 20
    best = winner(full)
    assert weights_bytes(tmp_path / "halved" / "halving" / best / "weights.npz") == \
        weights_bytes(tmp_path / "full" / "halving" / best / "weights.npz")
    assert math.isclose(float(halved[best]["val_loss"]), float(full[best]["val_loss"]),
                        rel_tol=0, abs_tol=0)
