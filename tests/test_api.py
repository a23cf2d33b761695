"""The Python API is complete: every command is one call that returns data, and the CLI
prints what the API returns."""

import csv
import shutil
import statistics

import pytest
from conftest import CONFIGS, yamlnet

from runner import api


@pytest.fixture
def xor_sweep(tmp_path):
    for name in ("xor_sweep.yaml", "xor.yaml", "xor.csv"):  # the sweep extends xor.yaml
        shutil.copy(CONFIGS / name, tmp_path / name)
    return tmp_path / "xor_sweep.yaml"


def ranking_from_csv(path, keys, metric):
    """An independent ranking: mean of `metric` over seeds per swept point, from sweep.csv."""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(float(row[metric]))
    return sorted(((point, statistics.fmean(v), len(v)) for point, v in groups.items()),
                  key=lambda r: r[1])


@pytest.mark.slow
def test_run_on_a_sweep_runs_every_trial_and_returns_its_rows(xor_sweep, tmp_path):
    config = api.load_config(xor_sweep, overrides=["train.epochs=40"])
    result = api.run(config, out=tmp_path / "runs")
    assert isinstance(result, api.SweepResult)
    assert len(result.rows) == len(result.trials) == 12  # 2 x 2 points, 3 seeds
    assert {r["status"] for r in result.rows} == {"complete"}
    assert result.keys == ["model.layers.0.units", "train.optimizer.lr"]
    points = {(r["model.layers.0.units"], r["train.optimizer.lr"]) for r in result.rows}
    assert points == {(2, 0.1), (2, 0.5), (4, 0.1), (4, 0.5)}
    assert sorted(r["seed"] for r in result.rows) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    # each row is the run.json of its own folder
    for trial, row in zip(result.trials, result.rows):
        info = api.load_run(trial.plan.folder)[3]
        assert row["loss"] == info["metrics"]["loss"] and row["id"] == info["id"]
    expected = ranking_from_csv(tmp_path / "runs" / "xor_sweep" / "sweep.csv",
                                result.keys, "loss")
    got = [(tuple(str(v[k]) for k in result.keys), mean, n) for v, mean, _, n in result.ranked]
    assert [(p, n) for p, _, n in got] == [(p, n) for p, _, n in expected]
    assert [m for _, m, _ in got] == pytest.approx([m for _, m, _ in expected], rel=1e-12)
    # a second call runs nothing and returns the same rows
    again = api.run(config, out=tmp_path / "runs")
    assert again.ran == 0 and [r["loss"] for r in again.rows] == [r["loss"] for r in result.rows]


@pytest.mark.slow
def test_cli_prints_the_ranking_the_api_returns(xor_sweep, tmp_path):
    code, out, err = yamlnet("run", "--config", xor_sweep, "--set", "train.epochs=40",
                             "--out", tmp_path / "runs", "-q")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0].startswith("12 trials (12 run, 0 already complete; 0 failed)")
    head, body = lines[1].split(), [line.split() for line in lines[2:]]
    assert head[:3] == ["rank", "model.layers.0.units", "train.optimizer.lr"]
    expected = ranking_from_csv(tmp_path / "runs" / "xor_sweep" / "sweep.csv",
                                ["model.layers.0.units", "train.optimizer.lr"], "loss")
    assert [(tuple(r[1:3]), int(r[5])) for r in body] == [(p, n) for p, _, n in expected]
    assert [float(r[3]) for r in body] == pytest.approx([m for _, m, _ in expected], rel=1e-5)


def test_plan_of_a_sweep_lists_its_trials_and_runs_nothing(xor_sweep, tmp_path):
    trials = api.plan(api.load_config(xor_sweep), out=tmp_path / "runs")
    assert len(trials) == 12 and len({t.plan.id for t in trials}) == 12
    assert {t.plan.status for t in trials} == {"pending"}
    assert not (tmp_path / "runs" / "xor_sweep").exists()


def test_plan_of_a_run_names_its_folder(tmp_path):
    shutil.copy(CONFIGS / "xor.yaml", tmp_path)
    shutil.copy(CONFIGS / "xor.csv", tmp_path)
    p = api.plan(api.load_config(tmp_path / "xor.yaml"), out=tmp_path / "runs")
    assert p.status == "pending" and p.folder == str(tmp_path / "runs" / "xor" / p.id)
    outcome = api.run(p.config, out=tmp_path / "runs")
    assert (outcome.folder, outcome.status) == (p.folder, "complete")
    assert api.plan(p.config, out=tmp_path / "runs").status == "complete"


def test_validate_summary_and_schema_return_data(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {path: x.csv}\nmodel:\n  layers:\n    - units: 2\n      activation: relu2\n")
    text, problems = api.validate(bad)
    assert [(p["line"], p["path"]) for p in problems] == [(5, "model.layers.0.activation")]
    assert "did you mean 'relu'" in text
    assert api.validate(CONFIGS / "xor.yaml") == (None, [])
    summary = api.summary(api.load_config(CONFIGS / "xor.yaml"))
    assert "total params: 17" in summary  # 2*4 + 4 + 4*1 + 1
    assert api.schema()["title"] == "Config"
