"""A fit holds its rows once (runner/io/rows.py, docs/data.md "Streaming and memory"):
statistics computed block by block equal numpy's over the whole array bit for bit, the
in-place split equals the copies it replaces, memory-mapped rows equal loaded ones, and
data.memory changes neither the run id nor a byte of the run folder."""

import numpy as np
import pytest
from conftest import write, yamlnet

from runner.io import data, rows, sources
from runner.io.data import Scaler
from runner.runs import prepare
from schemas import load_config


def hard(rng, n, d, dtype):
    """Values whose float64 sums round differently in another order."""
    return (rng.standard_normal((n, d)) * np.exp(rng.uniform(-8, 8, (n, d)))).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("d", [1, 2, 17])
@pytest.mark.parametrize("n", [1, 130, 20_001])
def test_statistics_block_by_block_equal_numpy_bit_for_bit(tmp_path, dtype, d, n):
    rng = np.random.default_rng(n + d)
    X = hard(rng, n, d, dtype)
    np.save(tmp_path / "x.npy", X.astype(np.float64))  # mapped rows are cast to dtype
    mapped = rows.Rows(np.load(tmp_path / "x.npy", mmap_mode="r"), None, dtype)
    part = np.sort(rng.choice(n, max(1, n // 3), replace=False))
    for source, ref in ((X, X), (mapped, X), (mapped.subset(part), X[part])):
        for block in (64, 4096, rows.BLOCK_BYTES):  # 64 bytes: blocks of a row or so
            mean = rows.mean(source, block)
            assert np.array_equal(mean, ref.mean(0, dtype=np.float64))
            assert np.array_equal(rows.std(source, mean, block), ref.std(0, dtype=np.float64))
            lo, hi = rows.extrema(source, block)
            assert np.array_equal(lo, ref.min(0)) and np.array_equal(hi, ref.max(0))
            assert lo.dtype == hi.dtype == np.float64


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_partition_in_place_equals_the_copies(monkeypatch, share):
    monkeypatch.setattr(rows, "BLOCK_BYTES", 3 * 5 * 8)  # blocks of 3 rows
    rng = np.random.default_rng(1)
    A = rng.standard_normal((101, 5))
    rest = np.sort(rng.choice(101, int(share * 101), replace=False))
    first = np.setdiff1d(np.arange(101), rest)
    expected = np.concatenate([A[first], A[rest]])
    base = A.__array_interface__["data"][0]
    rows.partition(A, first, rest)
    assert np.array_equal(A, expected)
    assert A.__array_interface__["data"][0] == base  # the same array, no new one


@pytest.mark.parametrize("stored", ["float32", "float64", "int16", "fortran", "1-D"])
def test_mapped_rows_equal_the_loaded_ones_scaled(tmp_path, stored):
    rng = np.random.default_rng(2)
    X = np.round(rng.standard_normal((300, 4)) * 50, 1)
    X = {"float32": X.astype(np.float32), "float64": X, "int16": np.round(X).astype(np.int16),
         "fortran": np.asfortranarray(X), "1-D": X[:, 0]}[stored]
    np.save(tmp_path / "x.npy", X)
    loaded = data.load(tmp_path / "x.npy").X  # float32, as a fit reads it
    mapped = data.load(tmp_path / "x.npy", mapped=True).X
    assert isinstance(mapped, rows.Rows) and mapped.shape == loaded.shape
    scaler = Scaler.fit("standard", loaded)
    mapped.scaler = scaler
    scaler.apply(loaded)
    idx = rng.permutation(len(loaded))[:50]
    out = np.empty((50, loaded.shape[1]), np.float32)
    assert np.take(mapped, idx, axis=0, out=out, mode="clip") is out  # as the fit loop calls it
    assert np.array_equal(out, loaded[idx])
    assert np.array_equal(mapped[10:60], loaded[10:60])
    half = mapped.subset(np.arange(0, 300, 2))
    assert np.array_equal(half[:], loaded[::2])


def test_integer_labels_are_coded_once_per_value_as_the_rows_were(tmp_path):
    y = np.array([10, 9, 10, 2, 9, 10])
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "x.npy", np.zeros((6, 2)))
    coded = data.load(tmp_path / "x.npy", targets_path=tmp_path / "y.npy", labels=True,
                      coded=True).labels
    assert isinstance(coded, sources.Labels) and len(coded.values) == 3
    old = y.astype(np.int64).astype(str)  # what each row held before (dtype <U21)
    assert coded.values.dtype == old.dtype and np.array_equal(coded.rows(), old)
    plain = data.load(tmp_path / "x.npy", targets_path=tmp_path / "y.npy", labels=True).labels
    assert np.array_equal(plain, old) and plain.dtype == old.dtype


def test_auto_maps_a_npy_large_against_the_memory_available(tmp_path, monkeypatch):
    np.save(tmp_path / "x.npy", np.zeros((1000, 10), np.float32))  # 40 KB
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    config = load_config(write(tmp_path / "c.yaml", "data: {path: x.npy}\nmodel: {layers: [{units: 1}]}\n"))
    size = (tmp_path / "x.npy").stat().st_size
    monkeypatch.setattr(data, "available_memory", lambda: 4 * size + 4)
    assert not prepare.mapped(config, str(tmp_path / "x.npy"))
    monkeypatch.setattr(data, "available_memory", lambda: 4 * size - 4)
    assert prepare.mapped(config, str(tmp_path / "x.npy"))
    assert not prepare.mapped(config, str(tmp_path / "x.csv"))  # only a .npy is mapped
    monkeypatch.setattr(data, "available_memory", lambda: None)  # unknown: loaded
    assert not prepare.mapped(config, str(tmp_path / "x.npy"))
    available = data.available_memory()
    assert available is None or available > 0


FIT = """name: held
seed: 4
data:
  path: x.npy
  targets_path: y.npy
  scale: {scale}
  validation_split: 0.25
model:
  layers:
    - {{units: 8, activation: tanh}}
    - {{units: 3, activation: softmax}}
train:
  loss: categorical_crossentropy
  optimizer: {{name: adam, lr: 0.01}}
  epochs: 3
  batch_size: 32
  metrics: [accuracy]
"""


@pytest.mark.parametrize("scale", ["standard", "minmax"])
def test_memory_changes_neither_the_run_id_nor_a_byte_of_the_results(tmp_path, scale):
    rng = np.random.default_rng(3)
    X = hard(rng, 5000, 7, np.float64)  # float64 in the file, float32 in the fit
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", (X[:, 0] > 0).astype(int) + (X[:, 1] > 0))
    config = write(tmp_path / "held.yaml", FIT.format(scale=scale))
    folders = {}
    for memory in ("auto", "load", "map"):
        code, out, err = yamlnet("run", "--config", config, "--out", tmp_path / memory,
                                 "--quiet", "--set", f"data.memory={memory}")
        assert code == 0, err
        (folders[memory],) = (tmp_path / memory / "held").iterdir()
    assert folders["auto"].name == folders["load"].name == folders["map"].name
    for name in ("weights.npz", "predictions.csv", "metrics.json"):
        assert (folders["load"] / name).read_bytes() == (folders["map"] / name).read_bytes() \
            == (folders["auto"] / name).read_bytes(), name
    history = [(folders[m] / "history.csv").read_text().splitlines() for m in ("load", "map")]
    strip = [[line.rsplit(",", 1)[0] for line in h] for h in history]  # seconds last
    assert strip[0] == strip[1] and len(strip[0]) == 4
    assert "  memory:" not in (folders["auto"] / "config.yaml").read_text()  # the default
    assert "  memory: map" in (folders["map"] / "config.yaml").read_text()


def test_map_of_a_csv_is_a_config_error_naming_data_memory(tmp_path):
    (tmp_path / "d.csv").write_text("a,b,y\n1,2,0\n3,4,1\n")
    config = write(tmp_path / "c.yaml", """name: c
data: {path: d.csv, targets: [y], memory: map}
model: {layers: [{units: 1, activation: sigmoid}]}
train: {loss: binary_crossentropy, epochs: 1}
""")
    code, out, err = yamlnet("run", "--config", config, "--out", tmp_path / "runs")
    assert code == 2, err
    assert "data.memory" in err and "auto or load" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()
