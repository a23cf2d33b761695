"""Parquet files (the optional extra `parquet`, with pyarrow) as raw columns, one row
group at a time, which runner/io/table.py wraps in its Tables, so that typed columns,
streaming forward passes and predictions treat them as they treat delimited text: each
cell as its text, nulls (and float NaN) missing. Rows are counted from 1."""

import os
from collections.abc import Iterator

import numpy as np

from runner.errors import DataError, did_you_mean


def _parquet(path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(path, "reading .parquet files needs the 'parquet' extra: "
                        "pip install 'yamlnet[parquet]'") from None
    try:
        return pq.ParquetFile(path)
    except FileNotFoundError:
        raise DataError(path, "no such file") from None
    except (OSError, ValueError) as e:
        raise DataError(path, f"not a readable Parquet file ({e})") from None


def read_header(path, **dialect) -> tuple[list[str], None]:
    """(column names, None): the schema's names; the delimited-text settings do not apply."""
    return list(_parquet(os.fspath(path)).schema_arrow.names), None


def _texts(column, na_values):
    """A pyarrow column -> (values (n,) str, missing (n,) bool); a text cell is missing
    when null or one of na_values, a number when null or NaN."""
    import pyarrow as pa

    missing = column.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_floating(column.type):
        x = column.to_numpy(zero_copy_only=False)
        missing = missing | np.isnan(x)
        values = np.where(missing, "", x.astype(str))
    elif pa.types.is_boolean(column.type):
        x = column.fill_null(False).to_numpy(zero_copy_only=False)
        values = np.where(missing, "", np.where(x, "true", "false"))
    else:
        values = np.array(["" if v is None else str(v) for v in column.to_pylist()], dtype=str)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            missing = missing | np.isin(np.char.strip(values), list(na_values))
    return np.asarray(values, dtype=str), np.asarray(missing, bool)


def iter_columns(path, columns=None, na_values=()) -> Iterator[tuple]:
    """(names, values, missing, rows) per row group of a Parquet file: every column name,
    {column: (n,) str} and {column: (n,) bool} of `columns` (all by default), the row
    numbers (n,); `na_values` as for delimited text."""
    path = os.fspath(path)
    f = _parquet(path)
    names = list(f.schema_arrow.names)
    wanted = names if columns is None else [str(c) for c in columns]
    for name in wanted:
        if name not in names:
            raise DataError(path, f"no column {name!r}{did_you_mean(name, names)} "
                            f"(columns: {', '.join(names)})", column=name)
    first = 1
    for i in range(f.num_row_groups):
        group = f.read_row_group(i, columns=wanted)
        if not group.num_rows:
            continue
        values, missing = {}, {}
        for name in wanted:
            values[name], missing[name] = _texts(group.column(name), na_values)
        yield names, values, missing, np.arange(first, first + group.num_rows)
        first += group.num_rows
    if first == 1:
        raise DataError(path, "no data rows")
