"""Tracking in MLflow (extra 'mlflow'): a real local file store, read back by MLflow's own
client; the CLI in subprocesses. Tracking never changes a run's id or bytes, and a store
that cannot be reached is a warning, not a failed run."""

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, ROOT, weights_bytes, yamlnet

from runner import api
from runner.runs import folders, tracking

mlflow = pytest.importorskip("mlflow", reason="tracking tests need the extra 'mlflow' "
                             "(mlflow-skinny)")
from mlflow.tracking import MlflowClient  # noqa: E402

# MLflow 3 keeps its file store behind this switch; MLflow 2 ignores it.
FILE_STORE = {"MLFLOW_ALLOW_FILE_STORE": "true"}


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A file: tracking URI in the test's folder, and the environment that selects it."""
    for key, value in FILE_STORE.items():
        monkeypatch.setenv(key, value)
    uri = (tmp_path / "mlruns").as_uri()
    return uri, {**FILE_STORE, "MLFLOW_TRACKING_URI": uri}


def runs_of(uri, experiment):
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} in {uri}"
    return client, client.search_runs([found.experiment_id], max_results=1000)


def leaves(tree, prefix=""):
    """{dotted path: value} of a plain tree, written here apart from tracking.flatten."""
    if isinstance(tree, dict) and tree:
        return {k: v for key, sub in tree.items() for k, v in leaves(sub, f"{prefix}{key}.").items()}
    if isinstance(tree, list) and tree:
        return {k: v for i, sub in enumerate(tree) for k, v in leaves(sub, f"{prefix}{i}.").items()}
    return {prefix[:-1]: tree}


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def copy_example(tmp_path, *names):
    for name in names:
        shutil.copy(CONFIGS / name, tmp_path / name)


def test_flatten_walks_mappings_and_lists_like_set_paths():
    tree = {"model": {"layers": [{"units": 4, "activation": {"name": "elu", "alpha": 0.5}}]},
            "train": {"metrics": ["accuracy"], "shuffle": True, "early_stopping": None},
            "data": {"features": {"body mass (g)": {"type": "numeric"}}, "na_values": []}}
    assert tracking.flatten(tree) == {
        "model.layers.0.units": "4", "model.layers.0.activation.name": "elu",
        "model.layers.0.activation.alpha": "0.5", "train.metrics.0": "accuracy",
        "train.shuffle": "true", "train.early_stopping": "null",
        "data.features.body mass _g_.type": "numeric", "data.na_values": "[]"}


def test_a_run_reads_back_params_metrics_artifacts_and_tags(tmp_path, store):
    uri, env = store
    code, out, err = yamlnet("run", "--config", CONFIGS / "iris.yaml", "--track", "mlflow",
                             "--set", "train.epochs=12", "--quiet", env=env)
    assert code == 0, err
    assert "warning" not in err
    (folder,) = (tmp_path / "runs" / "iris").iterdir()
    client, (run,) = runs_of(uri, "iris")
    info = json.loads((folder / "run.json").read_text())
    assert run.info.status == "FINISHED" and info["status"] == "complete"

    config = yaml.safe_load((folder / "config.yaml").read_text())
    expected = {k: v if isinstance(v, str) else json.dumps(v) for k, v in leaves(config).items()}
    assert run.data.params == expected
    assert run.data.params["model.layers.0.units"] == "16"
    assert run.data.params["train.epochs"] == "12"

    tags = run.data.tags
    assert tags["yamlnet.run_id"] == folder.name == info["id"]
    digest = hashlib.sha256((CONFIGS / "iris.csv").read_bytes()).hexdigest()
    assert tags["yamlnet.input.data.path"] == digest
    assert tags["yamlnet.status"] == "complete"

    history = read_csv(folder / "history.csv")
    assert len(history) == 12
    columns = [c for c in history[0] if c != "epoch"]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(columns)
    for column in columns:
        logged = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, column))
        assert logged == [(int(r["epoch"]), float(r[column])) for r in history], column
    assert run.data.metrics["final.val_loss"] == info["metrics"]["val_loss"]

    names = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    assert names == sorted(p.name for p in folder.iterdir())
    stored = Path(run.info.artifact_uri.removeprefix("file://"))
    for name in names:
        assert (stored / name).read_bytes() == (folder / name).read_bytes(), name


def test_tracking_changes_neither_the_id_nor_the_bytes(tmp_path, store):
    uri, env = store
    base = {"name": "xor", "data": {"path": str(CONFIGS / "xor.csv"), "targets": ["y"]},
            "model": {"layers": [{"units": 4, "activation": "tanh"},
                                 {"units": 1, "activation": "sigmoid"}]},
            "train": {"loss": "binary_crossentropy", "epochs": 30, "batch_size": 4}}
    plain = api.load_config_dict(base)
    tracked = api.load_config_dict({**base, "track": {"mlflow": {"uri": uri, "experiment": "t"}}})
    assert api.plan(plain, tmp_path / "a").id == api.plan(tracked, tmp_path / "b").id
    a = Path(api.run(plain, out=tmp_path / "a").folder)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", tracking.TrackingWarning)
        b = Path(api.run(tracked, out=tmp_path / "b").folder)
    assert not [w for w in caught if w.category is tracking.TrackingWarning]
    assert a.name == b.name
    assert (a / "config.yaml").read_bytes() == (b / "config.yaml").read_bytes()
    assert "track" not in (b / "config.yaml").read_text()
    assert weights_bytes(a / "weights.npz") == weights_bytes(b / "weights.npz")
    for name in ("history.csv", "predictions.csv"):
        assert folders.output_digest(a / name) == folders.output_digest(b / name), name
    _, (run,) = runs_of(uri, "t")
    assert run.data.tags["yamlnet.run_id"] == b.name


def test_a_sweep_logs_one_mlflow_run_per_trial_once(tmp_path, store):
    uri, env = store
    args = ("run", "--config", CONFIGS / "xor_sweep.yaml", "--track", "mlflow",
            "--set", "train.epochs=10", "--quiet")
    code, out, err = yamlnet(*args, env=env)
    assert code == 0, err
    ids = {row["id"] for row in read_csv(tmp_path / "runs" / "xor_sweep" / "sweep.csv")}
    assert len(ids) == 12
    _, runs = runs_of(uri, "xor_sweep")
    assert sorted(r.data.tags["yamlnet.run_id"] for r in runs) == sorted(ids)
    assert {r.data.tags["yamlnet.sweep"] for r in runs} == {"xor_sweep"}
    assert {r.data.params["seed"] for r in runs} == {"0", "1", "2"}
    code, out, err = yamlnet(*args, env=env)  # all trials skipped: nothing logged again
    assert code == 0, err
    assert len(runs_of(uri, "xor_sweep")[1]) == 12


def test_the_track_section_names_the_store_and_experiment(tmp_path, store):
    uri, _ = store
    copy_example(tmp_path, "xor.yaml", "xor.csv")
    with open(tmp_path / "xor.yaml", "a") as f:
        f.write(f"track:\n  mlflow: {{uri: '{uri}', experiment: gates}}\n")
    code, out, err = yamlnet("run", "--config", tmp_path / "xor.yaml", "--quiet",
                             "--set", "train.epochs=5", env=FILE_STORE)
    assert code == 0, err
    _, (run,) = runs_of(uri, "gates")
    assert run.data.params["train.epochs"] == "5"
    assert run.info.run_name.startswith("xor-")


def test_a_failed_run_is_logged_as_failed(tmp_path, store):
    uri, env = store
    copy_example(tmp_path, "puzzle.yaml", "puzzle.csv", "puzzle_query.csv")
    code, out, err = yamlnet("run", "--config", tmp_path / "puzzle.yaml", "--quiet", "--track",
                             "mlflow", "--set", "train.optimizer.lr=10.0", env=env)
    assert code == 1, err
    _, (run,) = runs_of(uri, "puzzle")
    assert run.info.status == "FAILED"
    assert "epoch" in run.data.tags["yamlnet.error"]


def test_an_unreachable_store_is_a_warning_and_the_run_completes(tmp_path):
    with socket.socket() as s:  # a port of this machine that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    code, out, err = yamlnet("run", "--config", CONFIGS / "xor.yaml", "--track", "mlflow",
                             "--set", "train.epochs=5", "--quiet", env=env)
    assert code == 0, err
    assert "warning: MLflow tracking at" in err and f"127.0.0.1:{port}" in err
    assert "Traceback" not in err
    assert out.startswith("complete: ")
    (folder,) = (tmp_path / "runs" / "xor").iterdir()
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"


BLOCKED = """import sys
for name in {names!r}:
    sys.modules[name] = None  # as if the package were not installed
sys.argv = ["yamlnet", *sys.argv[1:]]
from runner.cli import main
main()
"""


def without(names, *args, cwd):
    proc = subprocess.run([sys.executable, "-c", BLOCKED.format(names=names), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc.returncode, proc.stdout, proc.stderr


def test_without_mlflow_track_is_refused_before_running(tmp_path):
    code, out, err = without(["mlflow"], "run", "--config", CONFIGS / "xor.yaml",
                             "--track", "mlflow", cwd=tmp_path)
    assert code == 2
    assert err.strip() == "error: " + tracking.EXTRA
    assert not (tmp_path / "runs" / "xor").exists()
    code, out, err = without(["mlflow"], "run", "--config", CONFIGS / "xor.yaml",
                             "--set", "train.epochs=3", "--quiet", cwd=tmp_path)
    assert code == 0, err  # without --track, mlflow is never imported
