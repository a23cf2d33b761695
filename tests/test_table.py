"""runner/io/table.py: delimited files as raw columns, checked against the csv module and
Python's float() on real files; dialects, NA cells, quotes, bad cells, streaming."""

import csv
import math
import random

import numpy as np
import pytest
from conftest import CONFIGS

from runner.errors import DataError
from runner.io.table import (
    DEFAULT_NA,
    from_columns,
    iter_table,
    needed,
    numbers,
    parse_numbers,
    read_header,
    read_table,
    refuse_missing,
)

NAMES = ["city", "temp", "rain", "code"]
ROWS = [  # the cells of one small table; "" and NA are missing by default
    ["Oslo", "12.5", "3", "A1"],
    ["Rio de Janeiro", "-0.25", "", "B2"],
    ["Zürich", "NA", "17", "C3"],
    ["東京", "1e3", "0.125", "NA"],
    ["Lima", "7", "42", " D4 "],
]


def write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding, newline="")
    return path


def dialect(rows, delimiter=",", header=True, decimal=".", eol="\n"):
    """The text of ROWS-like cells in a dialect (numbers re-written with `decimal`)."""
    def cell(v):
        return v.replace(".", decimal) if decimal != "." and _is_number(v) else v
    lines = ([delimiter.join(NAMES)] if header else []) + [
        delimiter.join(cell(v) for v in row) for row in rows]
    return eol.join(lines) + eol


def _is_number(v):
    try:
        float(v)
        return True
    except ValueError:
        return False


def expected(rows, na=DEFAULT_NA):
    """values and missing of each column, computed from the cells themselves."""
    cols = list(zip(*rows))
    return ({n: [v.strip() for v in c] for n, c in zip(NAMES, cols)},
            {n: [v.strip() in na for v in c] for n, c in zip(NAMES, cols)})


VARIANTS = {
    "comma": dict(),
    "semicolon": dict(delimiter=";"),
    "tab": dict(delimiter="\t"),
    "pipe": dict(delimiter="|"),
    "semicolon-decimal-comma": dict(delimiter=";", decimal=","),
    "crlf": dict(eol="\r\n"),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_dialects_give_the_same_columns(tmp_path, name):
    opts = VARIANTS[name]
    path = write(tmp_path / "t.csv", dialect(ROWS, **opts))
    t = read_table(path, decimal=opts.get("decimal", "."))
    values, missing = expected(ROWS)
    assert t.names == NAMES
    for n in NAMES:
        assert t.values[n].tolist() == [v.replace(".", opts.get("decimal", ".")) if n in (
            "temp", "rain") and _is_number(v) else v for v in values[n]]
        assert t.missing[n].tolist() == missing[n]
    assert t.rows.tolist() == [2, 3, 4, 5, 6]
    X = numbers(t, ["temp", "rain"])
    want = [[float(r[1]) if r[1] not in ("", "NA") else math.nan,
             float(r[2]) if r[2] not in ("", "NA") else math.nan] for r in ROWS]
    np.testing.assert_array_equal(X, np.array(want))
    assert read_header(path, decimal=opts.get("decimal", "."))[1] == opts.get("delimiter", ",")


def test_without_a_header_columns_are_positions(tmp_path):
    path = write(tmp_path / "t.csv", "\n\n" + dialect(ROWS, header=False, delimiter="|"))
    t = read_table(path, columns=[3, "1"], header=False)
    assert t.names == ["0", "1", "2", "3"] and list(t.values) == ["3", "1"]
    values, missing = expected(ROWS)
    assert t.values["1"].tolist() == values["temp"] and t.missing["3"].tolist() == missing["code"]
    assert t.rows.tolist() == [3, 4, 5, 6, 7]  # rows are file lines, blank ones counted


def test_bom_blank_lines_and_no_final_newline(tmp_path):
    text = dialect(ROWS).replace("\nRio", "\n\n   \nRio")
    path = write(tmp_path / "t.csv", text.rstrip("\n"), encoding="utf-8-sig")
    t = read_table(path)
    assert t.names == NAMES and len(t) == len(ROWS)
    assert t.values["city"].tolist() == [r[0] for r in ROWS]
    assert t.rows.tolist() == [2, 5, 6, 7, 8]


def test_na_values_can_be_chosen(tmp_path):
    path = write(tmp_path / "t.csv", "a,b\nNA,1\n?,2\n,3\nnull,4\n")
    default = read_table(path)
    assert default.missing["a"].tolist() == [True, False, True, True]
    custom = read_table(path, na_values=["?"])
    assert custom.missing["a"].tolist() == [False, True, False, False]
    assert custom.values["a"].tolist() == ["NA", "?", "", "null"]


def test_quoted_fields_may_hold_the_delimiter(tmp_path):
    rows = [["Smith, John", "1,5", 'say "hi"'], ["plain", "2", ""], [" padded ", "3", "x;y"]]
    path = tmp_path / "q.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
        w.writerow(["name", "n", "note"])
        w.writerows(rows)
    t = read_table(path)
    with open(path, newline="") as f:
        parsed = list(csv.reader(f))[1:]
    for j, name in enumerate(t.names):
        assert t.values[name].tolist() == [r[j].strip() for r in parsed]
    assert t.values["name"][0] == "Smith, John" and t.values["note"][0] == 'say "hi"'


def test_a_quoted_field_may_not_span_lines(tmp_path):
    path = write(tmp_path / "q.csv", 'a,b\n1,"two\nlines"\n3,4\n')
    with pytest.raises(DataError, match="spans lines") as e:
        read_table(path)
    assert e.value.row == 2


@pytest.mark.parametrize("quoted", [False, True])
def test_ragged_rows_name_the_row(tmp_path, quoted):
    q = '"x"' if quoted else "x"
    path = write(tmp_path / "r.csv", f"a,b,c\n1,2,3\n\n4,5\n6,7,8,9\n{q},y,z\n")
    with pytest.raises(DataError) as e:
        read_table(path)
    assert e.value.row == 4 and "expected 3 columns, found 2" in str(e.value)
    assert "2 rows have the wrong number of columns" in str(e.value)


def test_header_mistakes_and_unknown_columns(tmp_path):
    with pytest.raises(DataError, match="duplicate column name 'a'"):
        read_table(write(tmp_path / "d.csv", "a,b,a\n1,2,3\n"))
    with pytest.raises(DataError, match="column 2 of the header has no name"):
        read_table(write(tmp_path / "e.csv", "a,,c\n1,2,3\n"))
    with pytest.raises(DataError, match="no column 'tmep'; did you mean 'temp'"):
        read_table(write(tmp_path / "t.csv", dialect(ROWS)), columns=["tmep"])
    with pytest.raises(DataError, match="only a header"):
        read_table(write(tmp_path / "h.csv", "a,b\n\n"))
    with pytest.raises(DataError, match="empty file"):
        read_table(write(tmp_path / "z.csv", ""))


def test_bad_numbers_are_reported_together(tmp_path):
    lines = ["x,y"] + [f"{i},{i}" for i in range(20)]
    lines[3] = "abc,2"  # row 4
    lines[6] = "5,1.2.3"  # row 7
    lines[9] = "x9,inf"  # row 10: two bad cells
    lines[12] = "--1,7"  # row 13
    lines[15] = "1_000,8"  # row 16
    lines[18] = "9,1e"  # row 19
    path = write(tmp_path / "b.csv", "\n".join(lines) + "\n")
    t = read_table(path)
    with pytest.raises(DataError) as e:
        numbers(t, ["x", "y"])
    msg = str(e.value)
    assert e.value.row == 4
    assert "not a number in 7 cells (first 5)" in msg
    assert ("row 4 column 'x': 'abc'; row 7 column 'y': '1.2.3'; row 10 column 'x': 'x9'; "
            "row 10 column 'y': 'inf'; row 13 column 'x': '--1'") in msg
    assert "1_000" not in msg  # beyond the first five


def test_decimal_comma(tmp_path):
    path = write(tmp_path / "d.csv", "a;b\n1,5;2\n-0,25;3\n1.5;4\n")
    t = read_table(path, decimal=",")
    np.testing.assert_array_equal(numbers(t, ["b"])[:, 0], [2, 3, 4])
    with pytest.raises(DataError, match="row 4 column 'a': '1.5'"):
        numbers(t, ["a"])
    np.testing.assert_array_equal(numbers(t.take([0, 1]), ["a"])[:, 0], [1.5, -0.25])


def random_numbers(rng, n):
    """Texts of numbers in many spellings."""
    out = []
    for _ in range(n):
        kind = rng.randrange(6)
        x = rng.uniform(-1e6, 1e6) * 10.0 ** rng.randrange(-8, 3)
        if kind == 0:
            out.append(str(rng.randrange(-10**15, 10**15)))
        elif kind == 1:
            out.append(repr(x))  # up to 17 significant digits, may have an exponent
        elif kind == 2:
            out.append(f"{x:.{rng.randrange(0, 12)}f}")
        elif kind == 3:
            out.append(f"{x:.6g}")
        elif kind == 4:
            out.append(rng.choice(["+", "-", ""]) + rng.choice(["0", "00"]) + "." + str(rng.randrange(10**9)))
        else:
            out.append(f"{x:.3e}".replace("e", rng.choice("eE")))
    return out


def test_parse_numbers_equals_float_exactly():
    rng = random.Random(5)
    texts = random_numbers(rng, 5000) + ["5.", ".5", "-0", "+7", "007", "123456789012345",
                                         "1234567890123456789", "0.1", "-.0"]
    x, bad = parse_numbers(np.array(texts))
    assert not bad.any()
    want = np.array([float(t) for t in texts])
    assert np.array_equal(x, want) and np.array_equal(np.signbit(x), np.signbit(want))


def test_parse_numbers_flags_what_float_refuses_or_is_not_finite():
    texts = ["1.2.3", "abc", "1e", "--1", "1_000", "inf", "-Infinity", "nan", "1,5", "+", "-", ".",
             "1 2", "0x10", "١٢٣x", "1.5"]
    x, bad = parse_numbers(np.array(texts))
    assert bad.tolist() == [True] * 15 + [False] and x[-1] == 1.5
    assert np.isnan(x[:-1]).all()


def test_streaming_blocks_join_to_the_whole(tmp_path):
    rng = random.Random(0)
    rows = [[rng.choice(["a", "bb", " c ", "", "NA", "dé"]), *random_numbers(rng, 2)] for _ in range(3000)]
    text = "k,u,v\n" + "".join(",".join(r) + ("\n\n" if i % 97 == 0 else "\n") for i, r in enumerate(rows))
    path = write(tmp_path / "s.csv", text)
    whole = read_table(path)
    parts = list(iter_table(path, ["v", "k"], block_chars=4096))
    assert len(parts) > 10 and max(len(p) for p in parts) < 4096 // 4
    assert np.concatenate([p.rows for p in parts]).tolist() == whole.rows.tolist()
    for name in ("v", "k"):
        assert np.concatenate([p.values[name] for p in parts]).tolist() == whole.values[name].tolist()
        assert np.concatenate([p.missing[name] for p in parts]).tolist() == whole.missing[name].tolist()
    with open(path, newline="") as f:  # the second computation: the csv module
        parsed = [r for r in csv.reader(f) if r][1:]
    assert whole.values["k"].tolist() == [r[0].strip() for r in parsed]
    np.testing.assert_array_equal(numbers(whole, ["u"])[:, 0], [float(r[1]) for r in parsed])


def test_random_tables_match_the_cells_written(tmp_path):
    rng = random.Random(1)
    alphabet = "ab Zé東0123456789.-_ "
    for delimiter in [",", ";", "\t", "|"] * 3:
        n_cols = rng.randrange(1, 6)
        rows = [["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 9 if j else 300)))
                 if rng.random() > 0.01 else "x" * 200 for j in range(n_cols)] for _ in range(400)]
        rows = [r for r in rows if n_cols > 1 or r[0].strip()]  # a blank line is no row
        header = delimiter.join(f"c{j}" for j in range(n_cols))
        path = write(tmp_path / "r.csv", header + "\n" + "".join(delimiter.join(r) + "\n" for r in rows))
        t = read_table(path, delimiter=delimiter if n_cols == 1 else None)
        for j in range(n_cols):
            assert t.values[f"c{j}"].tolist() == [r[j].strip() for r in rows]


def test_long_cells_and_wide_unicode(tmp_path):
    long = "é" * 500
    path = write(tmp_path / "l.csv", "a,b\n" + "".join(f"x{i},{long if i == 7 else i}\n" for i in range(50)))
    t = read_table(path)
    assert t.values["b"][7] == long and t.values["b"][8] == "8" and t.values["a"][49] == "x49"


def test_penguins_match_an_independent_reading():
    t = read_table(CONFIGS / "penguins.csv")
    with open(CONFIGS / "penguins.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert t.names == ["species", "island", "bill_length_mm", "bill_depth_mm",
                       "flipper_length_mm", "body_mass_g", "sex", "year"]
    assert len(t) == len(rows) == 344
    for name in t.names:
        assert t.values[name].tolist() == [r[name] for r in rows]
        assert t.missing[name].tolist() == [r[name] == "NA" for r in rows]
    num = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
    want = [[float(r[n]) if r[n] != "NA" else math.nan for n in num] for r in rows]
    np.testing.assert_array_equal(numbers(t, num), np.array(want))
    assert sum(t.missing["sex"]) == 11


def test_refuse_missing_lists_the_missing_cells(tmp_path):
    t = read_table(write(tmp_path / "m.csv", "a,b,c\n1,NA,x\n,2,\n3,4,null\n"))
    refuse_missing(t, ["c"][:0])  # no column, nothing to refuse
    with pytest.raises(DataError) as e:
        refuse_missing(t, ["a", "b"], "fill them")
    assert e.value.row == 2
    assert str(e.value).endswith("missing value in 2 cells: row 2 column 'b': 'NA'; "
                                 "row 3 column 'a': ''; fill them")


def test_needed_tells_a_plain_csv_from_other_dialects(tmp_path):
    plain = write(tmp_path / "p.csv", "a,b\n1,2\n")
    semi = write(tmp_path / "s.csv", "a;b\n1,5;2\n")
    assert not needed(plain) and not needed(plain, {"delimiter": ","})
    assert needed(semi) and needed(plain, {"header": False}) and needed(plain, {"decimal": ","})
    assert needed(plain, {"na_values": ["?"]}) and needed(plain, {"delimiter": "|"})


def test_from_columns_builds_a_table_of_in_memory_cells():
    t = from_columns("y.npy", {"y": np.array([2, 4, 4]), "s": ["a", "?", "b"]}, 5, na_values=["?"])
    assert t.names == ["y", "s"] and t.values["y"].tolist() == ["2", "4", "4"]
    assert t.rows.tolist() == [5, 6, 7] and t.missing["s"].tolist() == [False, True, False]
    assert not t.missing["y"].any() and numbers(t, ["y"])[:, 0].tolist() == [2, 4, 4]
