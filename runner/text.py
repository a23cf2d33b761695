"""Plain-text tables for the terminal: the one formatter of `summary` and sweep rankings."""


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
