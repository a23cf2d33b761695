"""Sharded predict: `yamlnet predict --data 'shards/*.npy' --out DIR` writes one file per
shard, byte for byte what a predict of each file alone writes, here or on a Dask cluster;
a shard that fails is named (exit 2) and leaves no file, half-written or whole."""

import shutil

import numpy as np
import pytest
from conftest import example_run, write, yamlnet

from runner import api

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris_run(tmp_path_factory):
    """A complete iris run (a few epochs): labels, scaling, four named features."""
    return example_run(tmp_path_factory.mktemp("iris"), "iris.yaml", "iris.csv",
                       "train.epochs=5")


def rows(n, seed):
    return np.random.default_rng(seed).uniform(0.1, 8.0, (n, 4)).round(3)


def csv_shards(folder, sizes=(37, 5, 60)):
    """CSV shards with an `id` column and the features in another order than the fit's."""
    folder.mkdir(parents=True, exist_ok=True)
    order = [3, 0, 2, 1]
    for i, n in enumerate(sizes):
        X = rows(n, i)
        lines = ["id," + ",".join(COLUMNS[j] for j in order)]
        lines += [f"r{i}-{k}," + ",".join(str(X[k, j]) for j in order) for k in range(n)]
        write(folder / f"part-{i}.csv", "\n".join(lines) + "\n")
    return sorted(folder.glob("*.csv"))


def npy_shards(folder, sizes=(37, 5, 60)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(sizes):
        np.save(folder / f"part-{i}.npy", rows(n, 10 + i))
    return sorted(folder.glob("*.npy"))


def contents(folder):
    """{file name: bytes} of every file in `folder` (temporaries included)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_local_shards_equal_single_predicts(iris_run, tmp_path):
    shards = csv_shards(tmp_path / "csv") + npy_shards(tmp_path / "npy")
    code, out, err = yamlnet("predict", "--run", iris_run, "--data", "csv/*.csv",
                             "--out", "p-csv", "--keep", "id", "--batch-size", "16")
    assert code == 0, err
    assert out.splitlines() == [f"wrote p-csv/part-{i}.csv" for i in range(3)]
    code, _, err = yamlnet("predict", "--run", iris_run, "--data", "npy", "--out", "p-npy",
                           "--format", "npy")  # a folder: its data files, sorted by name
    assert code == 0, err
    expected = tmp_path / "single"
    expected.mkdir()
    for shard in shards:  # the existing single-file path, one file at a time
        if shard.suffix == ".csv":
            api.predict_run(iris_run, str(shard), out=str(expected / f"c-{shard.stem}.csv"),
                            batch_size=16, keep=["id"])
        else:
            api.predict_run(iris_run, str(shard), out=str(expected / f"n-{shard.stem}.npy"))
    for i in range(3):
        assert (tmp_path / "p-csv" / f"part-{i}.csv").read_bytes() == \
            (expected / f"c-part-{i}.csv").read_bytes()
        assert (tmp_path / "p-npy" / f"part-{i}.npy").read_bytes() == \
            (expected / f"n-part-{i}.npy").read_bytes()
        assert (tmp_path / "p-npy" / f"part-{i}_labels.npy").read_bytes() == \
            (expected / f"n-part-{i}_labels.npy").read_bytes()
    assert sorted(contents(tmp_path / "p-csv")) == [f"part-{i}.csv" for i in range(3)]
    text = (tmp_path / "p-csv" / "part-1.csv").read_text().splitlines()
    assert text[0] == "id,y0,y1,y2,label" and len(text) == 6 and text[1].startswith("r1-0,")
    labels = np.load(tmp_path / "p-npy" / "part-2_labels.npy")
    assert labels.shape == (60,) and set(labels) <= {"setosa", "versicolor", "virginica"}


def test_bad_shard_is_named_and_leaves_no_file(iris_run, tmp_path):
    csv_shards(tmp_path / "shards", sizes=(30, 50, 30))
    bad = tmp_path / "shards" / "part-1.csv"
    lines = bad.read_text().splitlines()
    lines[41] = "r1-40,1,oops,2,3"
    bad.write_text("\n".join(lines) + "\n")  # row 42: read after 40 rows were written
    (tmp_path / "out").mkdir()
    code, out, err = yamlnet("predict", "--run", iris_run, "--data", "shards", "--out", "out",
                             "--keep", "id", "--batch-size", "4")
    assert code == 2 and "Traceback" not in err, err
    assert "1 of 3 shards failed" in err and "shards/part-1.csv:42:" in err and "oops" in err
    assert out.splitlines() == ["wrote out/part-0.csv", "wrote out/part-2.csv"]
    assert sorted(contents(tmp_path / "out")) == ["part-0.csv", "part-2.csv"]
    for i in (0, 2):  # the good shards' files are complete
        assert len((tmp_path / "out" / f"part-{i}.csv").read_text().splitlines()) == 31


@pytest.mark.parametrize("args,files,words", [
    (["--data", "none/*.npy", "--out", "o"], {}, ["'none/*.npy'", "no file matches"]),
    (["--data", "empty", "--out", "o"], {"empty/notes.md": "x"}, ["empty", "no data files"]),
    (["--data", "s/*", "--out", "o"], {"s/a.npy": None, "s/b.md": "x"},
     ["s/b.md", "unknown data format '.md'"]),
    (["--data", "s/*", "--out", "o"], {"s/a.npy": None, "s/a.csv": "x\n1\n"},
     ["s/a.npy", "s/a.csv", "o/a.csv"]),
    (["--data", "s", "--out", "s"], {"s/a.csv": "x\n1\n"}, ["s/a.csv", "over the shard"]),
    (["--data", "s"], {"s/a.npy": None}, ["--out DIR", "one predictions file per shard"]),
    (["--data", "s", "--out", "o", "--format", "npy", "--keep", "id"], {"s/a.npy": None},
     ["--keep", "--format npy"]),
    (["--data", "s/a.npy", "--scheduler", "tcp://127.0.0.1:1"], {"s/a.npy": None},
     ["--scheduler", "folder or a glob"]),
    (["--data", "s/a.npy", "--out", "p.csv", "--format", "npy"], {"s/a.npy": None},
     ["--format npy", "p.csv"]),
    (["--data", "s", "--out", "f.txt"], {"s/a.npy": None, "f.txt": "x"},
     ["--out f.txt", "is a file", "folder"]),
], ids=["empty glob", "folder without data", "unknown format", "same stem", "out is the shard",
        "no --out", "keep with npy", "scheduler for one file", "format against --out",
        "out is a file"])
def test_mistakes_exit_2_before_anything_is_written(iris_run, tmp_path, args, files, words):
    for name, text in files.items():
        if text is None:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            np.save(tmp_path / name, rows(3, 0))
        else:
            write(tmp_path / name, text)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, out, err = yamlnet("predict", "--run", iris_run, *args)
    assert code == 2 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    assert out == "" and not (tmp_path / "o").exists() and not (tmp_path / "p.csv").exists()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_format_names_the_default_output(iris_run, tmp_path):
    npy_shards(tmp_path / "s", sizes=(4,))
    code, out, err = yamlnet("predict", "--run", iris_run, "--data", "s/part-0.npy",
                             "--format", "npy")
    assert code == 0, err
    made = iris_run / "predictions-part-0.npy"
    assert out.strip() == f"wrote {made}" and np.load(made).shape == (4, 3)
    made.unlink()
    (iris_run / "predictions-part-0_labels.npy").unlink()


def test_unreachable_scheduler_fails_fast(iris_run, tmp_path):
    pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    npy_shards(tmp_path / "s", sizes=(4,))
    code, _, err = yamlnet("predict", "--run", iris_run, "--data", "s", "--out", "o/deep",
                           "--scheduler", f"tcp://127.0.0.1:{port}")
    assert code == 2 and "cannot reach" in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()  # the --out folder is made once the cluster answers


@pytest.mark.slow
def test_dask_equals_local_byte_for_byte(iris_run, tmp_path, monkeypatch):
    pytest.importorskip("distributed", reason="the 'dask' extra is not installed")
    from test_sweep import dask_cluster

    csv_shards(tmp_path / "csv")
    npy_shards(tmp_path / "npy")
    write(tmp_path / "mixed" / "b.csv", "id," + ",".join(COLUMNS) + "\nz,1,2,x,4\n")
    shutil.copy(tmp_path / "csv" / "part-0.csv", tmp_path / "mixed" / "a.csv")
    runs = {"csv": ["--data", "csv/*.csv", "--keep", "id", "--batch-size", "16"],
            "npy": ["--data", "npy", "--format", "npy"],
            "mixed": ["--data", "mixed", "--keep", "id"]}
    local = {}
    for name, args in runs.items():
        local[name] = yamlnet("predict", "--run", iris_run, *args, "--out", f"local-{name}")
    assert local["csv"][0] == local["npy"][0] == 0 and local["mixed"][0] == 2, local
    assert "mixed/b.csv:2:" in local["mixed"][2]
    elsewhere = tmp_path / "cluster"  # the workers' folder
    elsewhere.mkdir()
    with dask_cluster(elsewhere) as address:
        for name, args in runs.items():
            got = yamlnet("predict", "--run", iris_run, *args, "--out", f"dask-{name}",
                          "--scheduler", address)
            assert got[0] == local[name][0] and got[2] == local[name][2], got
            assert got[1] == local[name][1].replace("local-", "dask-")
            assert contents(tmp_path / f"dask-{name}") == contents(tmp_path / f"local-{name}")
        # workers that do not see the shards' files get their bytes from the client: with
        # a stamp no file has, every worker answers "unseen", so only shipped bytes succeed
        from runner.runs import shards

        monkeypatch.setattr(shards, "_stamp", lambda path: (-1, -1))
        written = api.predict_shards(iris_run, "csv/*.csv", "shipped", scheduler=address,
                                     keep=["id"], batch_size=16)
        assert written == [f"shipped/part-{i}.csv" for i in range(3)]
        assert contents(tmp_path / "shipped") == contents(tmp_path / "local-csv")
        with pytest.raises(api.UserError, match="mixed/b.csv:2:") as caught:
            api.predict_shards(iris_run, "mixed", "shipped-mixed", scheduler=address,
                               keep=["id"])
        assert caught.value.written == ["shipped-mixed/a.csv"]
    assert contents(tmp_path / "shipped-mixed") == contents(tmp_path / "local-mixed")
    assert not list(elsewhere.iterdir())


def test_an_array_of_the_wrong_width_or_kept_columns_of_an_array_exit_2(iris_run, tmp_path):
    """A .npy has no column names: its width must be the fit's, and --keep cannot name a
    column of it; both one message, alone or among shards, with nothing written."""
    np.save(tmp_path / "narrow.npy", rows(6, 1)[:, :3])
    code, _, err = yamlnet("predict", "--run", iris_run, "--data", tmp_path / "narrow.npy",
                           "--out", tmp_path / "p.csv")
    assert code == 2 and "narrow.npy: 3 feature columns, but the run was fitted on 4" in err
    assert "Traceback" not in err and not (tmp_path / "p.csv").exists()
    shards = npy_shards(tmp_path / "shards", sizes=(4, 5))
    code, _, err = yamlnet("predict", "--run", iris_run, "--data", tmp_path / "shards",
                           "--out", tmp_path / "out", "--keep", "id")
    assert code == 2 and "Traceback" not in err
    for shard in shards:
        assert f"{shard.name}: --keep copies named columns, and this file has no column" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
