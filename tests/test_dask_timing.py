"""On a Dask cluster, run.json's and sweep.csv's `seconds` are the trial's own time on
its worker, not the client's writing of the returned files."""

import csv
import json
import shutil

import pytest
from conftest import CONFIGS, write, yamlnet
from test_sweep import dask_cluster

SWEEP = """\
sweep:
  grid: {model.layers.0.units: [2, 4]}
  seeds: [0, 1]
  metric: loss
  mode: min
"""


@pytest.mark.slow
def test_dask_seconds_are_the_trials(tmp_path):
    pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
    shutil.copy(CONFIGS / "xor.csv", tmp_path / "xor.csv")
    config = write(tmp_path / "sweep.yaml", (CONFIGS / "xor.yaml").read_text() + SWEEP)
    elsewhere = tmp_path / "cluster"
    elsewhere.mkdir()
    with dask_cluster(elsewhere) as address:
        code, _, err = yamlnet("run", "--config", config, "--out", "runs", "--quiet",
                               "--set", "train.epochs=600", "--scheduler", address)
    assert code == 0, err
    with open(tmp_path / "runs" / "xor" / "sweep.csv") as f:
        rows = {row["id"]: row for row in csv.DictReader(f)}
    assert len(rows) == 4
    for run_id, row in rows.items():
        folder = tmp_path / "runs" / "xor" / run_id
        seconds = json.loads((folder / "run.json").read_text())["seconds"]
        with open(folder / "history.csv") as f:
            epochs = [float(r["seconds"]) for r in csv.DictReader(f)]
        assert len(epochs) == 600
        # the fit took at least as long as its epochs, which the worker timed one by one
        assert seconds >= round(sum(epochs), 3) > 0.01, (run_id, seconds, sum(epochs))
        assert float(row["seconds"]) == seconds
