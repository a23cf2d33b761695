"""Plain-text tables for the terminal: the one formatter of `summary`, sweep rankings
and `compare`."""

import csv
import io
import json


def table(head, body, right=(), rule=False) -> list[str]:
    """Lines of aligned columns, two spaces apart: `head` and each row of `body` are
    sequences of cells (turned into text); columns whose index is in `right` are
    right-aligned, the others left-aligned; with `rule`, a line of dashes under `head`."""
    rows = [[str(c) for c in head]] + [[str(c) for c in r] for r in body]
    widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
    lines = ["  ".join(c.rjust(w) if j in right else c.ljust(w)
                       for j, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]
    if rule:
        lines.insert(1, "-" * len(lines[0]))
    return lines


def ranking(ranked, metric, mode, count="seeds") -> str:
    """A sweep's ranking [(values, mean, std, n)] as text: rank, swept values, mean ± std
    of the metric, and `count` the runs averaged (seeds, or runs over seeds and folds)."""
    if not ranked:
        return f"no complete trial reports {metric}"
    keys = list(ranked[0][0])
    head = ["rank", *keys, f"{metric} ({mode})", "± std", count]
    body = [[i, *(v[k] for k in keys), f"{m:.6g}", f"{s:.2g}", n]
            for i, (v, m, s, n) in enumerate(ranked, start=1)]
    return "\n".join(table(head, body))


def comparison(c, fmt="table") -> str:
    """A Comparison (runner/runs/compare.py) as text: `table` (aligned columns), `csv`,
    `json` (a list with one object per row) or `markdown`. Grouped numbers are
    "mean ± std" in a table or markdown, {"mean", "std"} in JSON, and in CSV a column and
    its `<column>_std`."""
    if fmt == "json":
        rows = [{k: {"mean": v[0], "std": v[1]} if isinstance(v, tuple) else v
                 for k, v in row.items()} for row in c.rows]
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        columns = [name for k in c.columns
                   for name in ([k, f"{k}_std"] if c.grouped and _paired(c, k) else [k])]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in c.rows:
            cells = []
            for k in c.columns:
                v = row.get(k)
                if c.grouped and _paired(c, k):
                    cells += list(v) if v is not None else ["", ""]
                else:
                    cells.append("" if v is None else v)
            writer.writerow(cells)
        return buffer.getvalue().rstrip("\n")
    body = [[_cell(row.get(k)) for k in c.columns] for row in c.rows]
    if fmt == "markdown":
        lines = [c.columns, ["---"] * len(c.columns), *body]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    return "\n".join(table(c.columns, body, rule=True))


def _paired(c, column):
    return column in c.metrics or column in ("epochs", "seconds")


def _cell(value):
    if value is None:
        return "–"
    if isinstance(value, tuple):
        return f"{value[0]:.6g} ± {value[1]:.2g}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict, bool)):
        return json.dumps(value)
    return str(value)
