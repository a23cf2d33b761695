"""runner/io/preprocess.py: the column plan, checked against hand computations on real
files (penguins.csv among them) and, with the 'bench' extra, scikit-learn's
ColumnTransformer; label coding and target scaling."""

import csv
import json
import math
import statistics

import numpy as np
import pytest
from conftest import CONFIGS

from runner.errors import DataError
from runner.io import preprocess
from runner.io.table import numbers, read_table

PENGUINS = CONFIGS / "penguins.csv"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


def table(tmp_path, text, name="t.csv", **options):
    path = tmp_path / name
    path.write_text(text)
    return read_table(path, **options)


def penguin_rows():
    with open(PENGUINS, newline="") as f:
        return list(csv.DictReader(f))


def column(rows, name):
    return [None if r[name] == "NA" else float(r[name]) for r in rows]


def test_penguins_encoding_matches_a_hand_computation():
    specs = {
        "island": {"type": "categorical", "missing": "error"},
        "bill_length_mm": {"type": "numeric", "missing": "mean", "scale": "standard"},
        "bill_depth_mm": {"type": "numeric", "missing": "median", "scale": "minmax"},
        "flipper_length_mm": {"type": "numeric", "missing": "constant", "value": 200.0},
        "sex": {"type": "binary", "missing": "drop_row"},
        "year": {"type": "categorical", "max_categories": 2},
    }
    t = read_table(PENGUINS)
    state, enc = preprocess.fit_transform(specs, t, "float64")
    rows = [r for r in penguin_rows() if r["sex"] != "NA"]  # drop_row comes first
    assert enc.kept.tolist() == [r["sex"] != "NA" for r in penguin_rows()]
    bl = column(rows, "bill_length_mm")
    mean = statistics.fmean(v for v in bl if v is not None)
    bl = [mean if v is None else v for v in bl]
    mu, sd = statistics.fmean(bl), statistics.pstdev(bl)
    bd = column(rows, "bill_depth_mm")
    med = statistics.median(v for v in bd if v is not None)
    bd = [med if v is None else v for v in bd]
    lo, hi = min(bd), max(bd)
    islands = sorted({r["island"] for r in rows})
    years = [r["year"] for r in rows]
    counts = {y: years.count(y) for y in sorted(set(years))}
    top = max(counts, key=lambda y: (counts[y], -int(y)))  # the most frequent year
    want = []
    for r, b, d in zip(rows, bl, bd):
        flipper = 200.0 if r["flipper_length_mm"] == "NA" else float(r["flipper_length_mm"])
        want.append([float(r["island"] == i) for i in islands]
                    + [(b - mu) / sd, (d - lo) / (hi - lo), flipper, float(r["sex"] == "male")]
                    + [float(r["year"] == top), float(r["year"] != top)])
    np.testing.assert_allclose(enc.X, np.array(want), rtol=1e-12, atol=1e-12)
    assert enc.names == [f"island={i}" for i in islands] + [
        "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "sex=male", f"year={top}",
        "year=(other)"]
    assert state["width"] == enc.X.shape[1] == len(want[0]) and state["rows"] == len(rows)
    assert [p["width"] for p in preprocess.plan(state)] == [len(islands), 1, 1, 1, 1, 2]
    assert enc.X.flags.c_contiguous and enc.X.dtype == np.float64


@pytest.mark.torch
def test_training_matrix_equals_scikit_learn_column_transformer(tmp_path):
    pytest.importorskip("sklearn", reason="scikit-learn is in the 'bench' extra")
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    rows = penguin_rows()
    cats = ["species", "island", "sex", "year"]
    specs = {c: {"type": "categorical", "missing": "category", "unknown": "ignore"} for c in cats}
    imputers = ["mean", "median", "mean", "median"]
    scalers = ["standard", "standard", "minmax", "standard"]
    for name, imp, sc in zip(NUMERIC, imputers, scalers):
        specs[name] = {"type": "numeric", "missing": imp, "scale": sc}
    # scikit-learn's input, parsed by the csv module: NaN for missing cells
    A = np.empty((len(rows), len(specs)), object)
    for j, name in enumerate(specs):
        for i, r in enumerate(rows):
            v = r[name]
            A[i, j] = np.nan if v == "NA" else int(v) if name == "year" else (
                float(v) if name in NUMERIC else v)
    sk = {"standard": StandardScaler, "minmax": MinMaxScaler}
    ct = ColumnTransformer(
        [(c, OneHotEncoder(handle_unknown="ignore", sparse_output=False), [j]) for j, c in enumerate(cats)]
        + [(n, make_pipeline(SimpleImputer(strategy=imp), sk[sc]()), [len(cats) + j])
           for j, (n, imp, sc) in enumerate(zip(NUMERIC, imputers, scalers))])
    train = np.arange(len(rows)) % 3 != 0
    want = ct.fit_transform(A[train]).astype(np.float64)
    t = read_table(PENGUINS)
    state, enc = preprocess.fit_transform(specs, t.take(train), "float64")
    assert enc.X.shape == want.shape
    np.testing.assert_allclose(enc.X, want, rtol=0, atol=1e-12)
    X32 = preprocess.transform(state, t.take(train), "float32").X
    np.testing.assert_allclose(X32, want.astype(np.float32), rtol=2**-23, atol=2**-24)
    # replayed on the held-out rows (their unseen categories, if any, all zeros)
    held = preprocess.transform(json.loads(json.dumps(state)), t.take(~train), "float64").X
    np.testing.assert_allclose(held, ct.transform(A[~train]), rtol=0, atol=1e-12)


def test_state_is_json_and_columns_are_matched_by_name(tmp_path):
    specs = {"b": {"type": "numeric", "missing": "mean", "scale": "standard"},
             "c": {"type": "categorical", "missing": "category", "unknown": "ignore"},
             "f": {"type": "binary"}}
    train = table(tmp_path, "a,b,c,f\n1,2.5,x,yes\n2,,y,no\n3,4.0,,yes\n4,8,x,no\n")
    state = preprocess.fit(specs, train)
    assert json.loads(json.dumps(state)) == state
    assert state["columns"][1]["categories"] == ["x", "y"]
    assert state["columns"][2]["values"] == ["no", "yes"]
    shuffled = table(tmp_path, "f;extra;c;b\nno;0;y;8\nyes;0;x;2.5\nyes;0;;\nno;1;z;4\n", "p.csv")
    X = preprocess.transform(json.loads(json.dumps(state)), shuffled, "float64").X
    mean = (2.5 + 4.0 + 8) / 3
    filled = [2.5, mean, 4.0, 8]
    mu, sd = statistics.fmean(filled), statistics.pstdev(filled)
    want = [[(8 - mu) / sd, 0, 1, 0, 0], [(2.5 - mu) / sd, 1, 0, 0, 1],
            [(mean - mu) / sd, 0, 0, 1, 1], [(4 - mu) / sd, 0, 0, 0, 0]]  # z is unseen: zeros
    np.testing.assert_allclose(X, want, rtol=1e-12)


def test_category_order_missing_and_other_columns(tmp_path):
    t = table(tmp_path, "n,s\n10,b\n9,a\n100,B\n9,a\n,b\n9,é\n")
    state = preprocess.fit({"n": {"type": "categorical", "missing": "category"},
                            "s": {"type": "categorical", "max_categories": 3}}, t)
    n, s = state["columns"]
    assert n["categories"] == ["9", "10", "100"]  # numbers in numeric order
    assert s["categories"] == ["a", "b"] and s["other"] == ["B", "é"]  # a:2, b:2 kept
    names = [name for p in preprocess.plan(state) for name in p["encoded"]]
    assert names == ["n=9", "n=10", "n=100", "n=(missing)", "s=a", "s=b", "s=(other)"]
    lexical = preprocess.fit({"s": {"type": "categorical"}}, table(tmp_path, "s\n9\n10\nx\n", "l.csv"))
    assert lexical["columns"][0]["categories"] == ["10", "9", "x"]
    # without missing cells in the training rows, there is no (missing) column and a
    # missing cell is an unknown value (as in scikit-learn)
    spec = {"type": "categorical", "missing": "category", "unknown": "ignore"}
    full = preprocess.fit({"s": spec}, table(tmp_path, "s\nu\nv\n", "m.csv"))
    X = preprocess.transform(full, table(tmp_path, "s\nNA\nv\n", "q.csv"), "float64").X
    np.testing.assert_array_equal(X, [[0, 0], [0, 1]])
    strict = preprocess.fit({"s": {**spec, "unknown": "error"}}, table(tmp_path, "s\nu\n", "k.csv"))
    with pytest.raises(DataError, match="not seen in training .* row 2 column 's': 'NA'"):
        preprocess.transform(strict, table(tmp_path, "s\nNA\n", "r.csv"))


def test_ties_for_max_categories_keep_the_earlier(tmp_path):
    t = table(tmp_path, "s\n" + "".join(f"{v}\n" for v in "aaaaabbbcccde"))
    col = preprocess.fit({"s": {"type": "categorical", "max_categories": 3}}, t)["columns"][0]
    assert col["categories"] == ["a", "b"] and col["other"] == ["c", "d", "e"]
    X = preprocess.transform({**preprocess.fit({"s": {"type": "categorical", "max_categories": 3}}, t)},
                             t, "float64").X
    assert X[:, 2].tolist() == [float(v in "cde") for v in "aaaaabbbcccde"]


def test_unknown_categories_and_missing_cells_are_errors_naming_the_cells(tmp_path):
    state = preprocess.fit({"c": {"type": "categorical"}}, table(tmp_path, "c\nx\ny\n"))
    with pytest.raises(DataError) as e:
        preprocess.transform(state, table(tmp_path, "c\nx\nzz\ny\nww\n", "p.csv"))
    assert e.value.row == 3
    assert "category not seen in training (column 'c') in 2 cells: row 3 column 'c': 'zz'; " \
           "row 5 column 'c': 'ww'; set unknown: ignore" in str(e.value)
    with pytest.raises(DataError) as e:
        preprocess.fit({"a": {"type": "numeric"}, "c": {"type": "categorical"}},
                       table(tmp_path, "a,c\n1,x\nNA,y\n3,\n", "m.csv"))
    assert e.value.row == 3 and "missing value in 2 cells: row 3 column 'a': 'NA'; row 4 column " \
                                "'c': ''" in str(e.value)
    with pytest.raises(DataError, match="no column 'cc'; did you mean 'c'"):
        preprocess.fit({"cc": {"type": "categorical"}}, table(tmp_path, "c\nx\n", "n.csv"))


def test_drop_row_drops_first_and_fits_on_the_rest(tmp_path):
    t = table(tmp_path, "a,b\n1,x\n100,\n3,y\nNA,x\n5,y\n")
    specs = {"a": {"type": "numeric", "missing": "drop_row", "scale": "standard"},
             "b": {"type": "categorical", "missing": "drop_row"}}
    state, enc = preprocess.fit_transform(specs, t, "float64")
    assert enc.kept.tolist() == [True, False, True, False, True]
    assert t.rows[~enc.kept].tolist() == [3, 5]
    col = state["columns"][0]
    assert col["mean"] == 3.0 and col["std"] == math.sqrt(8 / 3)  # of 1, 3, 5 only
    np.testing.assert_allclose(enc.X[:, 0], [(v - 3) / math.sqrt(8 / 3) for v in (1, 3, 5)])


def test_zero_spread_divides_by_one(tmp_path):
    t = table(tmp_path, "a,b\n4,7\n4,7\n")
    _, enc = preprocess.fit_transform({"a": {"type": "numeric", "scale": "standard"},
                                       "b": {"type": "numeric", "scale": "minmax"}}, t, "float64")
    np.testing.assert_array_equal(enc.X, [[0, 0], [0, 0]])


@pytest.mark.parametrize("cells, values, codes", [
    ("0 1 1 0", [0, 1], [0, 1, 1, 0]),
    ("4 2 2 4.0", [2, 4], [1, 0, 0, 1]),
    ("yes no no", ["no", "yes"], [1, 0, 0]),
    ("True false TRUE", ["false", "true"], [1, 0, 1]),
])
def test_binary_columns(tmp_path, cells, values, codes):
    t = table(tmp_path, "b\n" + "\n".join(cells.split()) + "\n")
    state, enc = preprocess.fit_transform({"b": {"type": "binary"}}, t, "float64")
    assert state["columns"][0]["values"] == values
    assert enc.X[:, 0].tolist() == codes


def test_binary_refuses_other_counts_and_unknown_values(tmp_path):
    with pytest.raises(DataError, match="binary column 'b' has 3 distinct values.*categorical"):
        preprocess.fit({"b": {"type": "binary"}}, table(tmp_path, "b\nx\ny\nz\n"))
    state = preprocess.fit({"b": {"type": "binary"}}, table(tmp_path, "b\n0\n1\n", "o.csv"))
    with pytest.raises(DataError, match="value other than 0 and 1 .* row 3 column 'b': '2'"):
        preprocess.transform(state, table(tmp_path, "b\n1\n2\n", "p.csv"))


# ----------------------------------------------------------------------------- targets


@pytest.mark.parametrize("cells, values", [
    ("0 1 1 0", [0, 1]),
    ("2 4 4 2", [2, 4]),
    ("-1 1 1", [-1, 1]),
    ("yes no yes", ["no", "yes"]),
    ("M F F", ["F", "M"]),
])
def test_labels_are_coded_in_sorted_order(tmp_path, cells, values):
    cells = cells.split()
    t = table(tmp_path, "y\n" + "\n".join(cells) + "\n")
    state = preprocess.fit_labels(t, "y")
    assert state["values"] == values and json.loads(json.dumps(state)) == state
    Y = preprocess.encode_labels(state, t)
    assert Y.shape == (len(cells), 1) and Y.dtype == np.float32
    assert Y[:, 0].tolist() == [float(c == str(values[1])) for c in cells]
    assert preprocess.decode_labels(state, Y * 0.8 + 0.1).tolist() == cells


def test_labels_refuse_other_than_two_classes_with_advice(tmp_path):
    with pytest.raises(DataError) as e:
        preprocess.fit_labels(table(tmp_path, "y\n1\n2\n3\n2\n"), "y")
    assert "3 distinct values (1, 2, 3)" in str(e.value)
    assert "categorical_crossentropy with 3 softmax units" in str(e.value)
    with pytest.raises(DataError) as e:
        preprocess.fit_labels(table(tmp_path, "y\na\nb\nc\nd\n", "s.csv"), "y")
    assert "4 distinct values" in str(e.value) and "4 softmax units" in str(e.value)
    with pytest.raises(DataError) as e:
        preprocess.fit_labels(table(tmp_path, "y\n0.5\n1.5\n2.25\n", "c.csv"), "y")
    assert "non-integer numbers (3 distinct values)" in str(e.value)
    assert "mse with an identity output" in str(e.value)
    with pytest.raises(DataError, match="1 distinct value .*needs exactly two"):
        preprocess.fit_labels(table(tmp_path, "y\n1\n1\n", "o.csv"), "y")
    with pytest.raises(DataError, match="missing value in 1 cell: row 3 .*needs its target"):
        preprocess.fit_labels(table(tmp_path, "y\n1\nNA\n0\n", "m.csv"), "y")


def test_unknown_label_at_encoding(tmp_path):
    state = preprocess.fit_labels(table(tmp_path, "y\n2\n4\n"), "y")
    with pytest.raises(DataError, match="row 4 column 'y': '3'"):
        preprocess.encode_labels(state, table(tmp_path, "y\n2\n4\n3\n", "p.csv"))


@pytest.mark.parametrize("kind", preprocess.TARGET_SCALES)
def test_target_scaling_round_trips(tmp_path, kind):
    rng = np.random.default_rng(3)
    Y = np.column_stack([rng.lognormal(3, 1, 200), rng.uniform(0.5, 9, 200)])
    t = table(tmp_path, "u,v\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in Y))
    parsed = numbers(t, ["u", "v"])
    np.testing.assert_array_equal(parsed, Y)
    state = preprocess.fit_target_scale(kind, parsed, ["u", "v"], t.path)
    assert json.loads(json.dumps(state)) == state
    Z = preprocess.encode_targets(state, parsed, "float64")
    expect = {"none": Y, "log": np.log(Y), "standard": (Y - Y.mean(0)) / Y.std(0),
              "minmax": (Y - Y.min(0)) / (Y.max(0) - Y.min(0))}[kind]
    np.testing.assert_allclose(Z, expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(preprocess.decode_targets(state, Z), Y, rtol=1e-13)
    Z32 = preprocess.encode_targets(state, parsed)
    assert Z32.dtype == np.float32
    np.testing.assert_allclose(preprocess.decode_targets(state, Z32), Y, rtol=1e-5)


def test_log_scaling_refuses_non_positive_targets(tmp_path):
    Y = np.array([[3.0], [0.0], [2.0], [-1.5]])
    with pytest.raises(DataError) as e:
        preprocess.fit_target_scale("log", Y, ["y"], "t.csv")
    assert "2 target values are not above 0 (column 'y': 0)" in str(e.value)
    assert str(e.value).startswith("t.csv: ")
