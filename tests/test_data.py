"""Data files: round trips against values the test wrote itself, every data error with its
row, streaming in bounded memory, label encoding and scaling against numpy."""

import csv
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from runner.errors import DataError
from runner.io import data, digests, readers


def write_csv(path, header, rows, newline="\n"):
    with open(path, "w", newline="") as f:
        csv.writer(f, lineterminator=newline).writerows([header, *rows])
    return str(path)


def line_of(path, text):
    """1-based line number of the first line of `path` that is `text`."""
    with open(path) as f:
        return next(i for i, line in enumerate(f, 1) if line.strip() == text)


def raises(match, fn, *args, **kwargs):
    with pytest.raises(DataError) as info:
        fn(*args, **kwargs)
    assert match in str(info.value), str(info.value)
    return info.value


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of a few lines, so that block boundaries fall inside small files."""
    monkeypatch.setattr(readers, "BLOCK_BYTES", 40)


# ----------------------------------------------------------------------------- CSV


def test_csv_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((50, 4)) * 10.0 ** rng.integers(-5, 6, (50, 4))
    text = [[repr(float(v)) for v in r] for r in values]  # shortest exact decimal
    path = write_csv(tmp_path / "d.csv", ["a", "b", "c", "y"], text)
    ds = data.load(path, targets="y", dtype="float64")
    assert ds.X.dtype == np.float64 and ds.X.flags.c_contiguous
    assert np.array_equal(ds.X, values[:, :3]) and np.array_equal(ds.Y, values[:, 3:])
    assert (ds.feature_names, ds.target_names) == (["a", "b", "c"], ["y"])
    ds = data.load(path, features=["c", "a"], targets=["y", "b"])  # order as asked
    assert ds.X.dtype == np.float32 and ds.X.flags.c_contiguous
    assert np.array_equal(ds.X, values[:, [2, 0]].astype(np.float32))
    assert np.array_equal(ds.Y, values[:, [3, 1]].astype(np.float32))
    assert data.load(path).Y is None and data.load(path).X.shape == (50, 4)


def test_csv_quotes_blank_lines_crlf_labels(tmp_path, small_blocks):
    rows = [["1.5", "2", "setosa"], ["-3", "4e2", "a,b"], ["5", "6", 'say "hi"']] * 4
    path = write_csv(tmp_path / "q.csv", ["x1", "x2", "kind"], rows, newline="\r\n")
    with open(path, "a", newline="") as f:
        f.write("\r\n  \r\n7,8,setosa\r\n\r\n")
    ds = data.load(path, targets="kind", labels=True)
    expect = np.array([[float(a), float(b)] for a, b, _ in rows] + [[7, 8]], np.float32)
    assert np.array_equal(ds.X, expect) and ds.Y is None
    assert ds.labels.tolist() == [r[2] for r in rows] + ["setosa"]
    assert np.array_equal(np.concatenate([c.copy() for c in data.stream(
        path, batch_size=5, exclude=["kind"])]), expect)


def test_csv_labels_as_written_and_stripped(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("\ufeffx,y\n1, 0\n2,1.0\n3, setosa \n", encoding="utf-8")  # with a BOM
    assert data.load(path, targets=["y"], labels=True).labels.tolist() == ["0", "1.0", "setosa"]
    raises("non-numeric value 'setosa' in column y", data.load, path, targets="y")


def test_csv_many_blocks_match_one_block(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    values = rng.integers(-1000, 1000, (300, 3)) / 8
    path = write_csv(tmp_path / "m.csv", ["a", "b", "c"], values.tolist())
    whole = data.load(path, targets="c")
    monkeypatch.setattr(readers, "BLOCK_BYTES", 30)
    parts = data.load(path, targets="c")
    assert np.array_equal(whole.X, values[:, :2]) and np.array_equal(parts.X, whole.X)
    assert np.array_equal(parts.Y, whole.Y)


CSV_TEXT = "x1,x2,y\n0,0,0\n0,1,1\n1,0,1\n1,1,0\n0.5,0.5,1\n"


@pytest.mark.parametrize("bad_line, message, kwargs", [
    ("1,0\n", "expected 3 columns, found 2", {}),
    ("1,0,1,1\n", "expected 3 columns, found 4", {}),
    ("1,0,1,1\n", "expected 3 columns, found 4", {"features": ["x1"]}),  # a subset of columns
    ("1,0\n", "expected 3 columns, found 2", {"features": ["x2"], "targets": None}),
    ("abc,0,1\n", "non-numeric value 'abc' in column x1", {}),
    ("1,,1\n", "empty value in column x2", {}),
    ("1,nan,1\n", "non-finite value 'nan' in column x2", {}),
    ("1,0,-inf\n", "non-finite value '-inf' in column y", {}),
    ("1e39,0,1\n", "value '1e39' in column x1 is out of range for float32", {}),
])
@pytest.mark.parametrize("blocks", [False, True])
def test_csv_row_errors(tmp_path, monkeypatch, bad_line, message, kwargs, blocks):
    if blocks:
        monkeypatch.setattr(readers, "BLOCK_BYTES", 20)
    lines = CSV_TEXT.splitlines(True)
    path = tmp_path / "bad.csv"
    path.write_text("".join(lines[:4] + [bad_line] + lines[4:]))
    kwargs = {"targets": "y", **kwargs}
    err = raises(message, data.load, path, **kwargs)
    assert err.row == 5 == line_of(path, bad_line.strip())
    assert str(err) == f"{path}:5: {message}"
    chunks = data.stream(path, features=kwargs.get("features"), batch_size=2, exclude=["y"])
    if "column y" not in message:
        raises(f"{path}:5: {message}", list, chunks)


def test_csv_float64_keeps_what_float32_cannot(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("x\n1e39\n")
    assert data.load(path, dtype="float64").X[0, 0] == 1e39


@pytest.mark.parametrize("text, kwargs, message, row", [
    ("x1,x2,y\n0,1,1\n", {"targets": "z"}, "no column 'z'", 1),
    ("x1,x2,y\n0,1,1\n", {"targets": "yy"}, "no column 'yy'; did you mean 'y'? "
     "(columns: x1, x2, y)", 1),
    ("x1,x2,y\n0,1,1\n", {"features": ["X1"]}, "no column 'X1'; did you mean 'x1'?", 1),
    ("x1,x2,x1\n0,1,1\n", {}, "duplicate column name 'x1' (columns 1 and 3)", 1),
    ("x1,,y\n0,1,1\n", {}, "column 2 of the header has no name", 1),
    ("x1,x2,y\n0,1,1\n", {"features": ["x1", "y"], "targets": "y"},
     "column 'y' is both a feature and a target", None),
    ("x1,x2,y\n0,1,1\n", {"features": ["x1", "x1"]}, "column 'x1' is listed twice", None),
    ("x1,x2\n0,1\n", {"targets": ["x1", "x2"]}, "no feature columns", None),
    ("x1,x2,y\n", {"targets": "y"}, "no data rows (the file has only a header)", None),
    ("x1,x2,y\n\n\n", {"targets": "y"}, "no data rows", None),
    ("", {}, "empty file", None),
    ("\n1,2\n", {}, "the first line must be a header", 1),
    ("x1,x2,y\n0,1,a\n", {"targets": ["x1", "y"], "labels": True},
     "class labels must be one target column, got 2: x1, y", None),
])
def test_csv_file_errors(tmp_path, text, kwargs, message, row):
    path = tmp_path / "f.csv"
    path.write_text(text)
    err = raises(message, data.load, path, **kwargs)
    assert err.row == row and str(err).startswith(str(path))


def test_missing_file_and_unknown_format(tmp_path):
    raises(f"{tmp_path / 'nope.csv'}: no such file", data.load, tmp_path / "nope.csv")
    raises("no such file", data.stream, tmp_path / "nope.npy", batch_size=3)  # eagerly
    (tmp_path / "d.dat").write_text("x\n1\n")
    raises("unknown data format '.dat'; valid: .csv, .npy, .npz, .tsv, .txt", data.load,
           tmp_path / "d.dat")
    raises("targets_path is only for .npy", data.load, tmp_path / "d.csv", targets_path="t.npy")


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"x,y\n1,caf\xe9\n")
    raises("not UTF-8 text", data.load, path, targets="y", labels=True)


# ----------------------------------------------------------------------------- npy / npz


def test_npy_round_trip_orders_and_dtypes(tmp_path, small_blocks):
    X = np.arange(60, dtype=np.float64).reshape(20, 3) / 7
    for i, a in enumerate([X, np.asfortranarray(X), X.astype(">f8"), (X * 7).astype(np.int16)]):
        np.save(tmp_path / f"x{i}.npy", a)
        for dtype in ("float32", "float64"):
            ds = data.load(tmp_path / f"x{i}.npy", dtype=dtype)
            assert ds.X.dtype == dtype and ds.X.flags.c_contiguous
            assert np.array_equal(ds.X, np.asarray(a, dtype)), (i, dtype)
            got = np.concatenate([c.copy() for c in data.stream(tmp_path / f"x{i}.npy",
                                                                batch_size=6, dtype=dtype)])
            assert np.array_equal(got, ds.X)
    assert data.load(tmp_path / "x0.npy").feature_names == ["x0", "x1", "x2"]
    np.save(tmp_path / "v.npy", X[:, 0])
    assert data.load(tmp_path / "v.npy").X.shape == (20, 1)  # 1-D: one feature column


def test_npy_targets_path(tmp_path):
    X, y = np.ones((5, 2)), np.arange(5.0)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "y2.npy", np.stack([y, -y], 1))
    ds = data.load(tmp_path / "x.npy", targets_path=tmp_path / "y.npy")
    assert np.array_equal(ds.Y, y[:, None]) and ds.target_names == ["y0"]
    ds = data.load(tmp_path / "x.npy", targets_path=tmp_path / "y2.npy", dtype="float64")
    assert np.array_equal(ds.Y, np.stack([y, -y], 1)) and ds.target_names == ["y0", "y1"]
    assert data.load(tmp_path / "x.npy", targets_path=tmp_path / "y.npy",
                     labels=True).labels.tolist() == ["0", "1", "2", "3", "4"]
    np.save(tmp_path / "y6.npy", np.arange(6.0))
    raises("6 rows of targets for 5 rows of features", data.load, tmp_path / "x.npy",
           targets_path=tmp_path / "y6.npy")


def test_npz_keys_and_labels(tmp_path):
    X = np.arange(12.0).reshape(4, 3)
    np.savez(tmp_path / "d.npz", x=X, y=np.array([3, 1, 10, 1]),
             name=np.array(["b", "a", "b", "c"]), f=np.array([1.0, 2.0, 2.0, 0.0]),
             h=np.array([0.5, 1, 1, 1]), r=X[:, :2])
    path = tmp_path / "d.npz"
    ds = data.load(path, targets="r")
    assert np.array_equal(ds.X, X) and np.array_equal(ds.Y, X[:, :2])
    assert ds.feature_names == ["x0", "x1", "x2"] and ds.target_names == ["r0", "r1"]
    assert data.load(path, targets="y", labels=True).labels.tolist() == ["3", "1", "10", "1"]
    assert data.load(path, targets=["name"], labels=True).labels.tolist() == ["b", "a", "b", "c"]
    assert data.load(path, targets="f", labels=True).labels.tolist() == ["1", "2", "2", "0"]
    raises("row 1: labels must be integers or strings, found 0.5", data.load, path,
           targets="h", labels=True)
    raises("array 'name': targets must be numbers (found dtype <U1)", data.load, path,
           targets="name")
    raises("no array 'z' (arrays: x, y, name, f, h, r)", data.load, path, features="z")
    raises("no array 'xx'; did you mean 'x'?", data.load, path, targets="xx")
    raises("a .npz takes one array name", data.load, path, features=["x", "y"])
    info = data.inspect(path, features="x", targets="r")
    assert (info.n_rows, info.n_features, info.n_targets) == (4, 3, 2)
    assert np.array_equal(np.concatenate([c.copy() for c in data.stream(path, batch_size=3)]), X)


def test_compressed_npz_streams(tmp_path, small_blocks):
    X = np.random.default_rng(6).standard_normal((500, 3))
    np.savez_compressed(tmp_path / "c.npz", x=X, y=X[:, 0] > 0)
    ds = data.load(tmp_path / "c.npz", targets="y", labels=True, dtype="float64")
    assert np.array_equal(ds.X, X)
    assert ds.labels.tolist() == ["1" if v > 0 else "0" for v in X[:, 0]]
    chunks = [c.copy() for c in data.stream(tmp_path / "c.npz", batch_size=7, dtype="float64")]
    assert len(chunks) == 72 and np.array_equal(np.concatenate(chunks), X)


def test_array_errors(tmp_path):
    bad = np.ones((6, 3))
    bad[4, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    err = raises(f"{tmp_path / 'nan.npy'}: row 5: non-finite value nan in column x2",
                 data.load, tmp_path / "nan.npy")
    raises("row 5: non-finite value nan in column x2", list,
           data.stream(tmp_path / "nan.npy", batch_size=2))
    assert err.row is None
    bad[4, 2] = -np.inf
    np.savez(tmp_path / "inf.npz", x=np.ones((6, 3)), y=bad)
    raises("array 'y': row 5: non-finite value -inf in column y2", data.load,
           tmp_path / "inf.npz", targets="y")
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 4)))
    raises("expected a 1-D or 2-D array (rows, columns), got a 3-D array of shape (2, 3, 4)",
           data.load, tmp_path / "cube.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    raises("pickled/object arrays are refused", data.load, tmp_path / "obj.npy")
    raises("pickled/object arrays are refused", data.inspect, tmp_path / "obj.npy")
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    raises("features must be numbers (found dtype <U1)", data.load, tmp_path / "text.npy")
    raises("features must be numbers", data.stream, tmp_path / "text.npy", batch_size=1)
    np.save(tmp_path / "empty.npy", np.ones((0, 3)))
    raises("no data rows (the array has 0 rows)", data.load, tmp_path / "empty.npy")
    (tmp_path / "fake.npy").write_text("x,y\n1,2\n")
    raises("file is not a valid .npy array", data.load, tmp_path / "fake.npy")
    (tmp_path / "fake.npz").write_text("x,y\n1,2\n")
    raises("not a valid .npz file", data.load, tmp_path / "fake.npz")
    np.save(tmp_path / "cut.npy", np.ones((100, 3)))
    blob = (tmp_path / "cut.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(blob[:-8])
    raises("truncated: shape (100, 3) of float64 needs 2400 bytes, found 2392", data.load,
           tmp_path / "cut.npy")
    np.save(tmp_path / "ok.npy", np.ones((3, 2)))
    raises("a .npy has no column names", data.load, tmp_path / "ok.npy", features=["a"])
    raises("a .npy has no column names", data.load, tmp_path / "ok.npy", targets="y")


# ----------------------------------------------------------------------------- inspect


def test_inspect_reads_only_headers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,y\n1,2,3,4\nnot,even,numbers\n")
    info = data.inspect(path, targets="y")
    assert info == data.Info(None, ["a", "b", "c"], 3, ["y"], 1)
    assert data.inspect(path, features=["c"]).target_names == []
    np.save(tmp_path / "x.npy", np.zeros((7, 5), np.float32))
    np.save(tmp_path / "y.npy", np.zeros((7, 2)))
    info = data.inspect(tmp_path / "x.npy", targets_path=tmp_path / "y.npy")
    assert (info.n_rows, info.n_features, info.n_targets) == (7, 5, 2)


# ----------------------------------------------------------------------------- stream


@pytest.mark.parametrize("n, batch", [(10, 3), (9, 3), (10, 1), (10, 100)])
def test_stream_chunks_concatenate_to_the_file(tmp_path, small_blocks, n, batch):
    X = np.arange(n * 3, dtype=np.float32).reshape(n, 3) - 4.5
    np.save(tmp_path / "x.npy", X)
    path = write_csv(tmp_path / "x.csv", ["a", "b", "y", "c"],
                     np.insert(X, 2, -1, axis=1).tolist())
    for source, kw in [(tmp_path / "x.npy", {}), (path, {"exclude": ("y", "absent")})]:
        chunks = [c.copy() for c in data.stream(source, batch_size=batch, **kw)]
        sizes = [len(c) for c in chunks]
        assert sizes == [batch] * (n // batch) + ([n % batch] if n % batch else [])
        assert all(c.flags.c_contiguous and c.dtype == np.float32 for c in chunks)
        assert np.array_equal(np.concatenate(chunks), X)


def test_stream_header_only_and_bad_batch(tmp_path):
    (tmp_path / "h.csv").write_text("a,b\n")
    chunks = data.stream(tmp_path / "h.csv", batch_size=4)
    raises("no data rows", list, chunks)
    with pytest.raises(ValueError, match="batch_size"):
        data.stream(tmp_path / "h.csv", batch_size=0)


@pytest.mark.slow
def test_stream_large_npy_in_bounded_memory(tmp_path):
    """2,000,000 x 100 float32 (800 MB) streamed: peak RSS grows by far less than the file."""
    path, n = tmp_path / "big.npy", 2_000_000
    make = f"""
import numpy as np
m = np.lib.format.open_memmap({str(path)!r}, mode="w+", dtype=np.float32, shape=({n}, 100))
for s in range(0, {n}, 100_000):
    m[s:s + 100_000] = (np.arange(s, s + 100_000) % 997)[:, None] + np.arange(100)
m.flush()
"""
    subprocess.run([sys.executable, "-c", make], check=True)
    run = f"""
import json, resource
from runner.io import data
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows, total = 0, 0.0
for X in data.stream({str(path)!r}, batch_size=4096):
    rows += len(X)
    total += float(X[:, 99].sum(dtype="float64"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(rows=rows, total=total, growth_mb=(after - before) / 1024)))
"""
    out = json.loads(subprocess.run([sys.executable, "-c", run], check=True,
                                    capture_output=True, text=True).stdout)
    assert out["rows"] == n
    assert out["total"] == float(((np.arange(n) % 997) + 99).sum())
    assert out["growth_mb"] < 200, out


# ----------------------------------------------------------------------------- labels


def test_encode_labels_order_and_one_hot():
    labels = np.array(["10", "9", "2", "9", "10"])
    classes, Y = data.encode_labels(labels)
    assert classes.tolist() == ["2", "9", "10"]  # numerically, not "10" < "2" < "9"
    assert Y.dtype == np.float32
    assert np.array_equal(Y, [[0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert data.encode_labels(["-1.5", "0", "-10"])[0].tolist() == ["-10", "-1.5", "0"]
    classes, Y = data.encode_labels(["b", "a", "B", "10", "9"], dtype="float64")
    assert classes.tolist() == ["10", "9", "B", "a", "b"] and Y.dtype == np.float64
    assert np.array_equal(Y.argmax(1), [4, 3, 2, 0, 1])


def test_encode_labels_with_trained_classes():
    classes, Y = data.encode_labels(["setosa", "virginica"], classes=["virginica", "setosa", "x"])
    assert classes.tolist() == ["virginica", "setosa", "x"]
    assert np.array_equal(Y, [[0, 1, 0], [1, 0, 0]])
    err = raises("label 'oak' is not one of the classes of the trained run (a, b)",
                 data.encode_labels, ["a", "b", "b", "oak", "elm"], classes=["a", "b"],
                 path="v.csv", first_row=2)
    assert err.row == 5 and str(err).startswith("v.csv:5: ")


# ----------------------------------------------------------------------------- scaling


def columns_with_zero_spread(rng):
    X = rng.standard_normal((1000, 4)) * [1, 100, 1e-3, 1] + [0, 5, -3, 0]
    X[:, 3] = 7.25  # zero std and zero range
    return X


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_scaler_matches_numpy(dtype):
    X = columns_with_zero_spread(np.random.default_rng(2)).astype(dtype)
    X64 = X.astype(np.float64)
    s = data.Scaler.fit("standard", X)
    mean, std = X64.mean(0), X64.std(0)
    assert np.allclose(s.arrays()["scale.mean"], mean, rtol=1e-12, atol=1e-12)
    assert np.allclose(s.arrays()["scale.std"], std, rtol=1e-12, atol=1e-12)
    Z = X.copy()
    s.apply(Z)
    assert Z.dtype == dtype
    expect = (X64 - mean) / np.where(std == 0, 1, std)
    assert np.allclose(Z, expect, atol=1e-6 if dtype == "float32" else 1e-12)
    assert np.all(Z[:, 3] == 0)
    m = data.Scaler.fit("minmax", X)
    Z = X.copy()
    m.apply(Z)
    lo, hi = X64.min(0), X64.max(0)
    assert np.allclose(Z, (X64 - lo) / np.where(hi == lo, 1, hi - lo), atol=1e-6)
    assert Z[:, :3].min() == 0 and np.allclose(Z[:, :3].max(0), 1)
    Z = X.copy()
    data.Scaler.fit("none", X).apply(Z)
    assert np.array_equal(Z, X)


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_fit_stream_equals_fit(kind):
    X = columns_with_zero_spread(np.random.default_rng(3))
    cuts = [0, 1, 7, 300, 301, 999, 1000]
    chunks = (X[a:b] for a, b in zip(cuts, cuts[1:], strict=False))
    full = data.Scaler.fit(kind, X).arrays()
    streamed = data.Scaler.fit_stream(kind, chunks).arrays()
    assert full.keys() == streamed.keys() and len(full) == 2
    for key in full:
        assert np.allclose(streamed[key], full[key], rtol=1e-12, atol=1e-12), key


def test_scaler_arrays_round_trip():
    X = columns_with_zero_spread(np.random.default_rng(4)).astype(np.float32)
    for kind, keys in [("standard", {"scale.mean", "scale.std"}),
                       ("minmax", {"scale.min", "scale.max"}), ("none", set())]:
        s = data.Scaler.fit(kind, X)
        assert set(s.arrays()) == keys
        back = data.Scaler.from_arrays({"layers.0.W": np.ones(2), **s.arrays()})
        assert back.kind == kind
        A, B = X.copy(), X.copy()
        s.apply(A)
        back.apply(B)
        assert np.array_equal(A, B)
    with pytest.raises(data.UserError, match="scale.mean and scale.std"):
        data.Scaler.from_arrays({"scale.mean": np.zeros(2)})


def test_file_sha256(tmp_path):
    blob = np.random.default_rng(5).bytes(3 * (1 << 20) + 17)  # blocks of 1 MiB and a tail
    (tmp_path / "b.bin").write_bytes(blob)
    assert digests.file_sha256(tmp_path / "b.bin") == hashlib.sha256(blob).hexdigest()
