"""The real CLI in a subprocess: runs, reruns, validate, schema, summary, --set,
--dry-run."""

import json
import os
import re
import shutil

import numpy as np
import pytest
from conftest import CONFIGS, ROOT, weights_bytes, write, yamlnet


@pytest.fixture
def xor(tmp_path):
    """A copy of the bundled XOR example in the test's folder."""
    for name in ("xor.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    return tmp_path / "xor.yaml"


def run_folder(stdout):
    match = re.search(r"(?:complete|skipped \(already complete\)): (\S+)", stdout)
    assert match, stdout
    return match.group(1)


def test_run_twice_is_byte_identical_and_skipped(xor, tmp_path):
    code, out, err = yamlnet("run", "--config", xor, "--quiet")
    assert code == 0, err
    folder = run_folder(out)
    files = {n: (tmp_path / folder / n).read_bytes()
             for n in ("weights.npz", "predictions.csv", "history.csv", "config.yaml")}
    assert weights_bytes(tmp_path / folder / "weights.npz") == files["weights.npz"]
    stamps = {n: os.stat(tmp_path / folder / n).st_mtime_ns for n in files}
    code, out, _ = yamlnet("run", "--config", xor, "--quiet")
    assert code == 0 and out.startswith("skipped") and run_folder(out) == folder
    assert {n: os.stat(tmp_path / folder / n).st_mtime_ns for n in files} == stamps

    code, out, _ = yamlnet("run", "--config", xor, "--quiet", "--force")
    assert code == 0 and run_folder(out) == folder
    assert weights_bytes(tmp_path / folder / "weights.npz") == files["weights.npz"]
    assert (tmp_path / folder / "predictions.csv").read_bytes() == files["predictions.csv"]
    assert json.loads((tmp_path / folder / "run.json").read_text())["status"] == "complete"


def test_run_folder_is_named_by_content(xor, tmp_path):
    _, out, _ = yamlnet("run", "--config", xor, "--quiet", "--set", "train.epochs=3")
    first = run_folder(out)
    _, out, _ = yamlnet("run", "--config", xor, "--quiet", "--set", "train.epochs=4")
    assert run_folder(out) != first and first.startswith(os.path.join("runs", "xor"))
    data = tmp_path / "xor.csv"
    data.write_text(data.read_text().replace("1,1,0", "1,1,1"))  # same config, new data
    _, out, _ = yamlnet("run", "--config", xor, "--quiet", "--set", "train.epochs=3")
    assert run_folder(out) != first


def test_set_overrides_are_applied_and_saved(xor, tmp_path):
    code, out, err = yamlnet("run", "--config", xor, "--quiet", "--set", "model.layers.0.units=7",
                             "--set", "train.epochs=5")
    assert code == 0, err
    folder = tmp_path / run_folder(out)
    with np.load(folder / "weights.npz") as w:
        assert w["layers.0.W"].shape == (2, 7) and w["layers.1.W"].shape == (7, 1)
    assert len((folder / "history.csv").read_text().splitlines()) == 1 + 5


def test_set_with_a_bad_value_names_the_override(xor):
    code, _, err = yamlnet("run", "--config", xor, "--set", "model.layers.0.units=abc")
    assert code == 2 and "Traceback" not in err
    assert "--set model.layers.0.units=abc" in err and "model.layers.0.units" in err


def test_dry_run_lists_the_plan_and_runs_nothing(xor, tmp_path):
    code, out, _ = yamlnet("run", "--config", xor, "--dry-run")
    assert code == 0 and "pending" in out
    assert not (tmp_path / "runs" / "xor").exists() or not any((tmp_path / "runs" / "xor").iterdir())
    run_id = out.split()[0]
    assert re.fullmatch(r"[0-9a-f]{12}", run_id)
    yamlnet("run", "--config", xor, "--quiet")
    code, out, _ = yamlnet("run", "--config", xor, "--dry-run")
    assert out.split()[:2] == [run_id, "complete"]


def test_validate_reports_ok_and_json(xor, tmp_path):
    code, out, _ = yamlnet("validate", xor)
    assert code == 0 and out.strip() == f"{xor}: ok"
    bad = write(tmp_path / "bad.yaml", xor.read_text().replace("activation: tanh", "activation: relux")
                .replace("epochs: 2000", "epochs: many"))
    code, out, _ = yamlnet("validate", bad, "--format", "json")
    assert code == 2
    problems = json.loads(out)
    lines = bad.read_text().splitlines()
    assert {p["path"] for p in problems} == {"model.layers.0.activation", "train.epochs"}
    for p in problems:
        assert p["file"] == str(bad)
        assert lines[p["line"] - 1].strip().startswith(p["path"].split(".")[-1])


def test_validate_data_checks_the_files(xor, tmp_path):
    code, _, err = yamlnet("validate", xor, "--data", "--set", "model.inputs=3")
    assert code == 2 and "model.inputs" in err and "2 feature columns" in err
    code, out, _ = yamlnet("validate", xor, "--data")
    assert code == 0, out


def test_schema_is_the_committed_one():
    code, out, _ = yamlnet("schema")
    assert code == 0
    assert out == (ROOT / "schemas" / "config.schema.json").read_text()  # `diff` agrees too


def test_summary_counts_parameters_and_flops(xor):
    code, out, err = yamlnet("summary", "--config", xor, "--set", "model.layers.0.units=5")
    assert code == 0, err
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("layers.")}
    assert rows["layers.0"][-2:] == [str(2 * 5 + 5), str(2 * 2 * 5 + 5)]
    assert rows["layers.1"][-2:] == [str(5 * 1 + 1), str(2 * 5 * 1 + 1)]
    assert f"total params: {2 * 5 + 5 + 5 + 1}" in out


def test_forward_only_run_writes_predictions(tmp_path):
    for name in ("forward.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    code, out, err = yamlnet("run", "--config", tmp_path / "forward.yaml", "--quiet")
    assert code == 0, err
    folder = tmp_path / run_folder(out)
    rows = (folder / "predictions.csv").read_text().splitlines()
    assert rows[0] == "y0,y1" and len(rows) == 5
    with np.load(folder / "weights.npz") as w:
        X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], np.float32)
        Z = np.tanh(X @ w["layers.0.W"] + w["layers.0.b"]) @ w["layers.1.W"] + w["layers.1.b"]
    P = np.exp(Z - Z.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    got = np.array([[float(v) for v in r.split(",")] for r in rows[1:]])
    np.testing.assert_allclose(got, P, rtol=1e-5)
    assert not (folder / "history.csv").exists()


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    for name in ("forward.yaml", "xor.csv"):
        shutil.copy(CONFIGS / name, tmp_path / name)
    folders = []
    for seed in (7, 7, 8):
        code, out, _ = yamlnet("run", "--config", tmp_path / "forward.yaml", "--quiet",
                               "--set", f"seed={seed}", "--out", f"out{len(folders)}")
        folders.append(tmp_path / run_folder(out))
    w = [weights_bytes(f / "weights.npz") for f in folders]
    assert w[0] == w[1] and w[0] != w[2]
