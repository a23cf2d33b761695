"""Compare runs: one row per run folder with only the config keys that differ between
the runs, their final metrics, status, epochs and seconds; seeds and folds of one
experiment can be grouped into mean and standard deviation.

    found = runs(["runs/xor_sweep"])                       # [run folder]
    c = compare(found, filters={"status": "complete"}, sort="-val_accuracy", group=True)
    c.columns, c.rows                                        # what `yamlnet compare` prints

A folder with a run.json is a run; one whose run.json or config.yaml is missing or
damaged is refused (UserError naming the file), never shown as a row of blanks.
"""

import json
import os
from dataclasses import dataclass

import numpy as np

from runner.errors import UserError, did_you_mean
from schemas.yamlread import YamlError, describe, read

TAIL = ("status", "epochs", "seconds")  # the last columns of every row
REPLICAS = ("seed", "data.fold")  # what --group averages over


def runs(paths):
    """The run folders under `paths` (run folders, sweep folders <out>/<name>, or --out
    folders), each once, in path order. UserError for a path that holds no run."""
    found = []
    for path in paths:
        if not os.path.isdir(path):
            raise UserError(f"{path}: no such folder (give run folders, sweep folders or an "
                            "--out folder)")
        here = [path] if _is_run(path) else _below(path, 2)
        if not here:
            raise UserError(f"{path}: no run folder (with a run.json) in it or below it")
        found += [f for f in here if f not in found]
    return found


def _is_run(path):
    return os.path.isfile(os.path.join(path, "run.json"))


def _below(path, depth):
    """Run folders up to `depth` levels under `path`, sorted by name (hidden ones left out)."""
    found = []
    for name in sorted(os.listdir(path)):
        child = os.path.join(path, name)
        if name.startswith(".") or not os.path.isdir(child):
            continue
        if _is_run(child):
            found.append(child)
        elif depth > 1:
            found += _below(child, depth - 1)
    return found


def flatten(tree, prefix=""):
    """{dotted key: value} of a config tree: mappings and lists of mappings (layers) are
    walked; any other list is one value."""
    flat = {}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, dict) or (isinstance(value, list) and value
                                       and all(isinstance(v, dict) for v in value)):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def record(folder):
    """What a run folder tells: {"run": folder, dotted config keys..., metrics...,
    status, epochs, seconds}. UserError when its run.json is not an object with a status
    (and metrics, if any, a mapping) or its config.yaml is not a mapping."""
    info = _info(os.path.join(folder, "run.json"))
    config = _config(os.path.join(folder, "config.yaml"))
    metrics = dict(info.get("metrics") or {})
    epochs = metrics.pop("epochs", None)
    metrics.pop("best_epoch", None)
    return {"run": folder, "config": flatten(config), "metrics": metrics,
            "status": info["status"], "epochs": epochs, "seconds": info.get("seconds")}


def _info(path):
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except OSError as e:
        raise _damaged(path, f"cannot be read ({e.strerror})") from None
    except ValueError as e:
        raise _damaged(path, f"not valid JSON ({e})") from None
    if not isinstance(info, dict):
        raise _damaged(path, f"holds {describe(info)}, not an object")
    if not isinstance(info.get("status"), str):
        raise _damaged(path, 'no "status" (complete, failed, ...)')
    if info.get("metrics") is not None and not isinstance(info["metrics"], dict):
        raise _damaged(path, f'"metrics" is {describe(info["metrics"])}, not an object')
    return info


def _config(path):
    """config.yaml read as configs are (YAML 1.2: `seed: 2020-01-01` is text, not a date)."""
    try:
        with open(path, encoding="utf-8") as f:
            config = read(f.read(), lambda mark: mark)[0]
    except OSError as e:
        raise _damaged(path, f"cannot be read ({e.strerror})") from None
    except YamlError as e:
        raise _damaged(f"{path}:{e.where.line + 1}" if e.where else path, e.message) from None
    except ValueError as e:
        raise _damaged(path, f"not valid YAML ({e})") from None
    if not isinstance(config, dict):
        what = "is empty" if config is None else f"holds {describe(config)}"
        raise _damaged(path, f"{what}, not a config (a mapping)")
    return config


def _damaged(path, what):
    return UserError(f"{path}: {what}; compare reads run folders as yamlnet run leaves them "
                     "(run.json an object with a status, config.yaml a mapping): move or "
                     "delete this folder, or compare other paths")


@dataclass
class Comparison:
    """The table of `yamlnet compare`: `columns` in order, `rows` as {column: value}.
    keys: the config keys that differ; metrics: the metric columns. Grouped rows hold
    (mean, std) pairs for their metrics, epochs and seconds, and `runs`, their count."""

    columns: list
    rows: list
    keys: list
    metrics: list
    grouped: bool = False


def compare(found, filters=None, sort=None, group=False):
    """The Comparison of the run folders `found`: rows kept when every {key: text} of
    `filters` matches (a config key, a metric, status, epochs or seconds), sorted by
    `sort` (a column; "-column" for descending), with `group` one row per experiment
    over its seeds and folds."""
    records = [record(f) for f in found]
    for key, want in (filters or {}).items():
        if records and not any(_has(r, key) for r in records):
            known = dict.fromkeys(k for r in records for k in (*r["config"], *r["metrics"]))
            raise UserError(f"--filter {key}: no run has that key"
                            f"{did_you_mean(key, [*known, 'run', *TAIL])} (give a config key, "
                            f"dotted, a metric, or one of run, {', '.join(TAIL)})")
        records = [r for r in records if _has(r, key) and _matches(_value(r, key), want)]
    configs = [r["config"] for r in records]
    every = list(dict.fromkeys(k for c in configs for k in c))
    keys = [k for k in every if len({_text(c.get(k)) for c in configs}) > 1]
    metrics = list(dict.fromkeys(m for r in records for m in r["metrics"]))
    rows = [{"run": r["run"], **{k: r["config"].get(k) for k in keys},
             **{m: r["metrics"].get(m) for m in metrics}, **{t: r[t] for t in TAIL}}
            for r in records]
    if group:
        keys = [k for k in keys if k not in REPLICAS]
        rows = _grouped(rows, keys, metrics)
        columns = [*keys, *metrics, *TAIL, "runs"]
    else:
        columns = ["run", *keys, *metrics, *TAIL]
    if sort is not None:
        rows = _sorted(rows, sort, columns)
    return Comparison(columns, rows, keys, metrics, group)


def _has(record, key):
    return key in record["config"] or key in record["metrics"] or key in (*TAIL, "run")


def _value(record, key):
    for part in (record["config"], record["metrics"], record):
        if key in part:
            return part[key]


def _text(value):
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _matches(value, want):
    """Whether a value matches the text of a --filter: as text, or as the same number."""
    if _text(value) == want or str(value) == want:
        return True
    try:
        return isinstance(value, (int, float)) and float(want) == value
    except ValueError:
        return False


def _grouped(rows, keys, metrics):
    """One row per distinct value of `keys`: (mean, std) of each number over its runs,
    the statuses counted ("complete" when all are)."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(_text(row[k]) for k in keys), []).append(row)
    out = []
    for members in groups.values():
        row = {k: members[0][k] for k in keys}
        for column in (*metrics, "epochs", "seconds"):
            values = [m[column] for m in members if isinstance(m[column], (int, float))]
            row[column] = (float(np.mean(values)), float(np.std(values))) if values else None
        statuses = [m["status"] for m in members]
        row["status"] = statuses[0] if len(set(statuses)) == 1 else ", ".join(
            f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        row["runs"] = len(members)
        out.append(row)
    return out


def _sorted(rows, sort, columns):
    """Rows sorted by column `sort` ("-column": descending); rows without a value last."""
    key, descending = (sort[1:], True) if sort.startswith("-") else (sort, False)
    if key not in columns:
        what = f"{key!r} is not a column{did_you_mean(key, columns)}" if key else "no column given"
        raise UserError(f"--sort {sort!r}: {what} (one of: {', '.join(columns)}; -COLUMN sorts "
                        "descending)")

    def number(value):
        return value[0] if isinstance(value, tuple) else value

    present = [r for r in rows if r.get(key) is not None]
    numeric = all(isinstance(number(r[key]), (int, float)) for r in present)
    present.sort(key=lambda r: number(r[key]) if numeric else _text(r[key]), reverse=descending)
    return present + [r for r in rows if r.get(key) is None]
