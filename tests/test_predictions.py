"""Prediction files: exact round trips, labels, atomic appearance and clean aborts."""

import csv
import os

import numpy as np
import pytest

from runner.io.predictions import PredictionWriter, labels_path


def awkward(dtype, rows=1000, k=3, seed=0):
    """Values that are hard to print: tiny, huge, negative, subnormal, exact integers."""
    rng = np.random.default_rng(seed)
    A = (rng.standard_normal((rows, k)) * 10.0 ** rng.integers(-30, 30, (rows, k))).astype(dtype)
    A[0] = [np.finfo(dtype).tiny / 8, np.finfo(dtype).max, -0.0][:k]
    A[1] = [1.0, -2.0, 1e-3][:k]
    return A


def write_chunks(path, A, sizes, **kwargs):
    with PredictionWriter(path, **kwargs) as w:
        start = 0
        for size in sizes:
            w.write(A[start:start + size])
            start += size
    assert start == len(A)


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_csv_values_round_trip_exactly(tmp_path, dtype):
    A = awkward(dtype)
    write_chunks(tmp_path / "p.csv", A, [1, 499, 0, 500], fmt="csv", n_outputs=3, dtype=dtype)
    header, rows = read_csv(tmp_path / "p.csv")
    assert header == ["y0", "y1", "y2"] and len(rows) == len(A)
    back = np.array([[float(v) for v in r] for r in rows])  # float64 parse of the text
    assert np.array_equal(back.astype(dtype), A)
    if dtype == "float64":
        assert np.array_equal(back, A)  # not even a cast needed
    assert all(len(v) <= (16 if dtype == "float32" else 24) for r in rows for v in r)


def test_csv_classification_labels(tmp_path):
    A = np.array([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.0, 0.0, 1.0]], np.float32)
    classes = np.array(["setosa", "a,b", 'say "hi"'])
    write_chunks(tmp_path / "p.csv", A, [2, 1], fmt="csv", n_outputs=3, dtype="float32",
                 classes=classes)
    header, rows = read_csv(tmp_path / "p.csv")
    assert header == ["y0", "y1", "y2", "label"]
    assert [r[3] for r in rows] == ["a,b", "setosa", 'say "hi"']
    assert np.array_equal(np.array([r[:3] for r in rows], np.float32), A)


def test_one_sigmoid_unit_picks_between_two_classes(tmp_path):
    A = np.array([[0.2], [0.5], [0.51], [0.99]], np.float64)
    write_chunks(tmp_path / "p.csv", A, [4], fmt="csv", n_outputs=1, dtype="float64",
                 classes=["0", "1"])
    assert [r[1] for r in read_csv(tmp_path / "p.csv")[1]] == ["0", "0", "1", "1"]
    with pytest.raises(ValueError, match="3 classes for 1 outputs"):
        PredictionWriter(tmp_path / "x.csv", fmt="csv", n_outputs=1, dtype="float32",
                         classes=["a", "b", "c"])
    assert os.listdir(tmp_path) == ["p.csv"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sizes", [[300, 300, 400], [1000], [1, 0, 999]])  # the header grows
def test_npy_loads_back_equal(tmp_path, dtype, sizes):
    A = awkward(dtype, seed=1)
    write_chunks(tmp_path / "p.npy", A, sizes, fmt="npy", n_outputs=3, dtype=dtype)
    back = np.load(tmp_path / "p.npy", allow_pickle=False)
    assert back.dtype == dtype and back.shape == A.shape and np.array_equal(back, A)
    assert os.listdir(tmp_path) == ["p.npy"]


def test_npy_labels_beside_the_predictions(tmp_path):
    A = awkward("float32", rows=50, seed=2)
    classes = ["b", "long label", "c"]
    out = tmp_path / "out" / "preds.npy"
    out.parent.mkdir()
    write_chunks(out, A, [20, 30], fmt="npy", n_outputs=3, dtype="float32", classes=classes)
    labels = np.load(labels_path(out), allow_pickle=False)
    assert labels_path(out) == str(tmp_path / "out" / "preds_labels.npy")
    assert labels.dtype == np.dtype("<U10")
    assert labels.tolist() == [classes[k] for k in A.argmax(1)]
    assert np.array_equal(np.load(out, allow_pickle=False), A)
    assert sorted(os.listdir(out.parent)) == ["preds.npy", "preds_labels.npy"]


def test_no_rows_is_a_valid_empty_file(tmp_path):
    with PredictionWriter(tmp_path / "p.npy", fmt="npy", n_outputs=2, dtype="float32"):
        pass
    assert np.load(tmp_path / "p.npy").shape == (0, 2)
    with PredictionWriter(tmp_path / "p.csv", fmt="csv", n_outputs=2, dtype="float32"):
        pass
    assert (tmp_path / "p.csv").read_text() == "y0,y1\n"


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_file_appears_only_on_close(tmp_path, fmt):
    path = tmp_path / f"p.{fmt}"
    w = PredictionWriter(path, fmt=fmt, n_outputs=2, dtype="float32", classes=["a", "b"])
    w.write(np.ones((5, 2), np.float32))
    assert not path.exists() and len(os.listdir(tmp_path)) == (2 if fmt == "npy" else 1)
    w.close()
    w.close()  # a second close does nothing
    assert path.exists()


@pytest.mark.parametrize("fmt", ["csv", "npy"])
def test_failure_midway_leaves_nothing(tmp_path, fmt):
    path = tmp_path / f"p.{fmt}"
    with pytest.raises(RuntimeError, match="boom"):
        with PredictionWriter(path, fmt=fmt, n_outputs=2, dtype="float32",
                              classes=["a", "b"]) as w:
            w.write(np.ones((5, 2), np.float32))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    w = PredictionWriter(path, fmt=fmt, n_outputs=2, dtype="float64")
    w.write(np.ones((5, 2)))
    w.abort()
    assert os.listdir(tmp_path) == []


def test_replaces_an_old_file_only_when_complete(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with PredictionWriter(path, fmt="csv", n_outputs=1, dtype="float32") as w:
            w.write(np.zeros((3, 1), np.float32))
            raise KeyboardInterrupt
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["p.csv"]
    write_chunks(path, np.zeros((1, 1), np.float32), [1], fmt="csv", n_outputs=1, dtype="float32")
    assert path.read_text() == "y0\n0\n"


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"^fmt must be 'csv' or 'npy', got 'json'$"):
        PredictionWriter(tmp_path / "p.json", fmt="json", n_outputs=1, dtype="float32")
    assert os.listdir(tmp_path) == []


def test_wrong_width_is_refused(tmp_path):
    with PredictionWriter(tmp_path / "p.csv", fmt="csv", n_outputs=2, dtype="float32") as w:
        with pytest.raises(ValueError, match=r"shape \(rows, 2\)"):
            w.write(np.ones((3, 4), np.float32))
