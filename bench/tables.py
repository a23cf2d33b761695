"""Tables: loading and encoding a raw CSV with yamlnet (runner.io.table + preprocess)
against pandas.read_csv + scikit-learn's ColumnTransformer, on one generated file.

    .venv/bin/python bench/tables.py [--rows 50000] [--repeats 15]

The file has 3 categorical and 7 numeric columns, about 3% of cells missing. Both sides
load, fit and encode (missing category / mean imputation, one-hot / standard scaling);
the contenders run in turns, so that a slow spell of the machine falls on both alike,
and the medians are compared. The acceptance bound is a ratio of at most 2. For
information, a numeric-only CSV is also loaded by the new reader and `runner.io.data.load`.
pandas and scikit-learn are bench-only dependencies.
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

CATEGORIES = (["red", "green", "blue", "yellow", "black"], [f"city {i}" for i in range(40)],
              ["a", "b"])
NUMERIC = 7


def write_table(path, n, seed=0, missing=0.03):
    """A CSV of n rows: cat0..cat2 (categories, empty when missing), num0..num6 (%.6g)."""
    rng = np.random.default_rng(seed)
    cols = []
    for cats in CATEGORIES:
        cols.append(np.array(cats, object)[rng.integers(0, len(cats), n)])
    for k in range(NUMERIC):
        cols.append(np.char.mod("%.6g", rng.normal(100 * k, 10 + k, n)).astype(object))
    for c in cols:
        c[rng.random(n) < missing] = ""
    names = [f"cat{k}" for k in range(len(CATEGORIES))] + [f"num{k}" for k in range(NUMERIC)]
    with open(path, "w") as f:
        f.write(",".join(names) + "\n")
        f.writelines(",".join(row) + "\n" for row in zip(*cols))
    return names


def yamlnet(path):
    from runner.io import preprocess, table

    t = table.read_table(path)
    specs = {name: ({"type": "categorical", "missing": "category", "unknown": "ignore"}
                    if name.startswith("cat") else
                    {"type": "numeric", "missing": "mean", "scale": "standard"})
             for name in t.names}
    return preprocess.fit_transform(specs, t, "float64")[1].X


def sklearn(path):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    df = pd.read_csv(path)
    cats = [c for c in df.columns if c.startswith("cat")]
    nums = [c for c in df.columns if c.startswith("num")]
    ct = ColumnTransformer([
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
        ("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), nums)])
    return ct.fit_transform(df)


def numeric_new(path):
    from runner.io import table

    t = table.read_table(path)
    return table.numbers(t, t.names)


def numeric_old(path):
    from runner.io import data

    return data.load(path).X


def race(contenders, path, repeats):
    """Median seconds of each contender, run in turns (after one warm-up each)."""
    times = {name: [] for name in contenders}
    for r in range(repeats + 1):
        for name, f in contenders.items():
            started = time.perf_counter()
            f(path)
            if r:
                times[name].append(time.perf_counter() - started)
    return {name: float(np.median(t)) for name, t in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "table.csv")
        write_table(path, args.rows)
        ours, theirs = yamlnet(path), sklearn(path)
        assert ours.shape == theirs.shape and np.allclose(ours, theirs, atol=1e-9), "encodings differ"
        t = race({"yamlnet": yamlnet, "pandas+sklearn": sklearn}, path, args.repeats)
        print(f"load + encode, {args.rows:,} rows (3 categorical, {NUMERIC} numeric columns), "
              f"median of {args.repeats}:")
        print(f"  yamlnet         {t['yamlnet'] * 1e3:8.1f} ms")
        print(f"  pandas+sklearn  {t['pandas+sklearn'] * 1e3:8.1f} ms")
        print(f"  ratio           {t['yamlnet'] / t['pandas+sklearn']:8.2f}  (bound: 2)")

        rng = np.random.default_rng(1)
        np.savetxt(path, rng.normal(size=(args.rows, 10)), fmt="%.6g", delimiter=",",
                   header=",".join(f"x{j}" for j in range(10)), comments="")
        assert np.allclose(numeric_new(path), numeric_old(path)[:, :10], rtol=1e-6)
        t = race({"table": numeric_new, "data.load": numeric_old}, path, args.repeats)
        print(f"numeric-only CSV load, {args.rows:,} x 10, median of {args.repeats}:")
        print(f"  runner.io.table  {t['table'] * 1e3:8.1f} ms")
        print(f"  data.load        {t['data.load'] * 1e3:8.1f} ms")
        print(f"  ratio            {t['table'] / t['data.load']:8.2f}")


if __name__ == "__main__":
    main()
