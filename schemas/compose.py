"""Compose a config from the files it extends: `extends: base.yaml` (or a list).

A file's bases are read first (each may extend others), merged in the order listed
(later wins), and the file's own keys go on top: mappings merge key by key; anything
else (a list, a scalar, null) replaces the base's value whole. Every value keeps the
`Where` of the file that wrote it, so the merged tree's marks point into several files:
an error is reported in the file that holds the mistake (with `via`, the chain of
files that led there), and a path is taken relative to the folder of the file that
wrote it. `extends` itself is consumed here: it never reaches the validated config.
"""

import os
import re
import stat
from typing import NamedTuple

from schemas.yamlread import MAX_BYTES, MAX_NODES, Marks, Where, YamlError, describe, read

KEY = "extends"
MAX_LEVELS = 10  # a file, its base, the base's base...: at most this many levels of bases
MAX_FILES = 64  # files read for one config, bases included (a base listed twice counts twice)


class Composed(NamedTuple):
    """A config merged from its files: data, marks, problems that do not stop reading
    ((path, Where, message), as `read` gives them), the paths whose value was dropped,
    the folder of every file read (by label, in the order read), and the start of the
    top file."""

    data: object
    marks: Marks
    problems: list
    dropped: set
    folders: dict
    top: Where


class _Budget:
    """What one config and all its bases may take together."""

    def __init__(self):
        self.files, self.bytes, self.nodes = [], 0, 0


def compose(file: str) -> Composed:
    """Read `file` and every file it extends, merged; YamlError for anything that stops
    reading (a file that cannot be read, a cycle, a base that is not a mapping...)."""
    budget = _Budget()
    try:
        return _file(file, (), budget)
    except OSError as e:
        raise YamlError(Where(file), f"cannot read: {e.strerror or e}") from None


def compose_data(data, marks: Marks, label: str, folder: str) -> Composed:
    """A config given as data (`label` names it in messages) composed with the files it
    extends, which are taken relative to `folder`."""
    own = Composed(data, marks, [], set(), {label: folder}, Where(label))
    return _extend(own, label, (), _Budget())


def _file(file, chain, budget) -> Composed:
    text, where = _read(file, chain, budget)
    data, marks, problems, dropped = read(text, where)
    budget.nodes += len(marks.values)
    if budget.nodes > MAX_NODES:
        raise YamlError(where(None), f"document too large: with the files it extends, over "
                        f"{MAX_NODES} nodes")
    own = Composed(data, marks, problems, dropped, {file: os.path.dirname(file)}, where(None))
    return _extend(own, file, chain, budget)


def _read(file: str, via: tuple, budget: _Budget):
    """The text of a config file and a function turning yaml marks into `Where`s (each
    carrying `via`). OSError when the file cannot be opened; YamlError when it is too
    large or not UTF-8."""
    budget.files.append(file)
    if via and not stat.S_ISREG(os.stat(file).st_mode):  # a pipe or a device would block
        raise OSError(0, "not a regular file")
    limit = MAX_BYTES - budget.bytes
    with open(file, "rb") as f:
        raw = f.read(limit + 1)
    budget.bytes += len(raw)
    if len(raw) > limit:
        whole = "" if not via else " with the files it extends"
        raise YamlError(Where(file, 1, 1, "", via), f"document too large:{whole} over 10 MB")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise YamlError(Where(file, line, None, "", via), "the file is not UTF-8 text") from None
    lines = re.split(r"\r\n|[\r\n\x85\u2028\u2029]", text)

    def where(mark):
        if mark is None:
            return Where(file, 1, 1, lines[0], via)
        return Where(file, mark.line + 1, mark.column + 1,
                     lines[min(mark.line, len(lines) - 1)], via)

    return text, where


def _extend(own: Composed, file: str, chain: tuple, budget: _Budget) -> Composed:
    """`own` (the contents of `file`) over the merge of the bases it names."""
    data = own.data
    if not isinstance(data, dict) or KEY not in data:
        return own
    given, refused = data.pop(KEY), any(_under(p, {(KEY,)}) for p in own.dropped)
    entries = [] if refused else _entries(given, own.marks)  # refused: a tag, reported
    _forget(own.marks, {(KEY,)})
    chain, folder = chain + (file,), own.folders[file]
    merged = Composed({}, Marks(), [], set(), {}, own.top)
    for ref, where in entries:
        base = ref if os.path.isabs(ref) else os.path.normpath(os.path.join(folder, ref))
        seen = [os.path.realpath(f) for f in chain]
        if os.path.realpath(base) in seen:
            cycle = chain[seen.index(os.path.realpath(base)):] + (base,)
            raise YamlError(where, f"{KEY}: a cycle: {' → '.join(cycle)}")
        if len(chain) > MAX_LEVELS:
            raise YamlError(where, f"{KEY}: {base} would be level {len(chain)} of bases; "
                            f"at most {MAX_LEVELS} levels are followed")
        if len(budget.files) >= MAX_FILES:
            raise YamlError(where, f"{KEY}: more than {MAX_FILES} files in all, counting "
                            "the bases of bases")
        try:
            found = _file(base, chain, budget)
        except OSError as e:
            raise YamlError(where, f"{KEY}: cannot read {base}: {e.strerror or e}") from None
        if not isinstance(found.data, dict):
            what = "is empty" if found.data is None else f"holds {describe(found.data)}"
            raise YamlError(where, f"{KEY}: {base} {what}; a base is a mapping of config keys")
        merged = merge(merged, found)
    merged = merge(merged, own)
    rest = {k: v for k, v in merged.folders.items() if k != file}
    return merged._replace(folders={file: folder, **rest})  # the files in the order read


def _entries(given, marks: Marks) -> list[tuple[str, Where]]:
    """The (file name, where it is written) pairs of an `extends` value."""
    at = marks.find((KEY,))
    items = given if isinstance(given, list) else [given]
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            where = marks.find((KEY, i)) if isinstance(given, list) else at
            what = "a file name" if isinstance(given, list) else \
                "a file name or a list of file names"
            raise YamlError(where or at, f"{KEY}: expected {what}, got {describe(item)}")
    if isinstance(given, list):
        return [(item, marks.find((KEY, i)) or at) for i, item in enumerate(items)]
    return [(given, at)]


def merge(base: Composed, own: Composed) -> Composed:
    """`own` over `base`: mappings merge key by key, anything else replaces the base's
    value whole, and with it the base's marks under that key."""
    gone = set()

    def walk(old: dict, new: dict, path: tuple) -> dict:
        out = dict(old)
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(old.get(key), dict):
                out[key] = walk(old[key], value, path + (key,))
            else:
                if key in old:
                    gone.add(path + (key,))
                out[key] = value
        return out

    data = walk(base.data, own.data, ())
    marks = Marks()
    marks.values, marks.keys = dict(base.marks.values), dict(base.marks.keys)
    _forget(marks, gone)
    marks.values.update(own.marks.values)
    marks.keys.update(own.marks.keys)
    dropped = {p for p in base.dropped if not _under(p, gone)} | own.dropped
    return Composed(data, marks, base.problems + own.problems, dropped,
                    {**base.folders, **own.folders}, own.top)


def _under(path: tuple, prefixes: set) -> bool:
    return any(path[:n] in prefixes for n in range(1, len(path) + 1))


def _forget(marks: Marks, prefixes: set):
    """Drop the marks of every path under one of `prefixes`."""
    if prefixes:
        for table in (marks.values, marks.keys):
            for path in [p for p in table if _under(p, prefixes)]:
                del table[path]


def extend_schema(schema: dict) -> dict:
    """The JSON Schema of a config (`schema`, from the models) with `extends` at the top.
    A file that extends others may leave out keys that its bases give, so the required
    keys of the top level and of each section apply only to a file without `extends`."""
    defs, props, needed = schema["$defs"], schema["properties"], {}
    for key, prop in props.items():
        refs = [prop.get("$ref")] + [b.get("$ref") for b in prop.get("anyOf", [])]
        for ref in filter(None, refs):  # the model of a section: "#/$defs/Data"
            required = defs[ref.rsplit("/", 1)[-1]].pop("required", None)
            if required:
                needed[key] = {"required": required}
    props[KEY] = {
        "title": "Extends",
        "description": "Files this config is based on, relative to its folder; merged in "
                       "order (later wins), then this file's keys on top: mappings merge "
                       "key by key, lists and scalars are replaced whole.",
        "anyOf": [{"type": "string", "minLength": 1},
                  {"type": "array", "items": {"type": "string", "minLength": 1}}],
    }
    schema["if"] = {"required": [KEY]}
    schema["else"] = {"required": schema.pop("required", []), "properties": needed}
    return schema
