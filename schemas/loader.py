"""Load a config: YAML with positions, `--set` overrides, validation, located errors.

`load_config` reads a file with the files it extends (schemas/compose.py), applies
overrides (`model.layers.0.units=16`), validates, checks the sweep, then takes every
path relative to the folder of the file that wrote it. Any problem, from YAML syntax to
a cross-field rule, becomes a `Problem` with file, line, column, dotted path and a
message saying what is allowed (and, in a base, the files that led there); all of them
are raised at once in one `ConfigError`.
"""

import copy
import os
import re
from dataclasses import asdict, dataclass

from pydantic import ValidationError

from runner.vocabulary import PATH_KEYS
from schemas.compose import KEY as EXTENDS
from schemas.compose import Composed, compose, compose_data
from schemas.config import Config
from schemas.messages import Issue, describe, dotted, explain, suggest
from schemas.yamlread import Marks, Where, YamlError, read

_SHORTHAND = ("activation", "init", "bias_init", "optimizer")  # strings that stand for {name: ...}
_NOT_SWEPT = {"name": "a sweep keeps one name", "seed": "list seeds in sweep.seeds instead",
              "sweep": "a sweep cannot sweep itself"}


SHOWN = 100  # at most this many characters of the offending source line are shown


@dataclass(frozen=True)
class Problem:
    """One config error; line and column are 1-based (None when unknown)."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    source: str = ""
    via: tuple = ()  # in a base: the files that extend it, from the one loaded

    def __str__(self):
        plain = self.line is None or self.file.startswith("--set ")
        head = self.file if plain else f"{self.file}:{self.line}"
        head += f":{self.column}" if self.column and not plain else ""
        text = f"{head}: {self.path}: {self.message}" if self.path else f"{head}: {self.message}"
        text += f" (via {' → '.join(self.via)})" if self.via else ""
        if not self.source:
            return text
        source, column = self.source.replace(chr(9), " "), self.column
        if len(source) > SHOWN:  # a window of a very long line, around the column
            start = max(0, min((column or 1) - 1 - SHOWN // 2, len(source) - SHOWN))
            source, column = source[start:start + SHOWN], (column - start if column else None)
        caret = " " * (column - 1) + "^" if column else ""
        return f"{text}\n    {source}\n    {caret}".rstrip()


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists every reason, each located."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(self.problems)

    def __str__(self):
        return "\n".join(map(str, self.problems))

    def to_json(self) -> list[dict]:
        keep = ("file", "line", "column", "path", "message")
        return [{k: v for k, v in asdict(p).items() if k in keep or (k == "via" and v)}
                for p in self.problems]


def _problem(where: Where, path, message) -> Problem:
    path = path if isinstance(path, str) else dotted(path)
    return Problem(where.file, where.line, where.column, path, message, where.source,
                   tuple(where.via))


# ---- dotted paths ------------------------------------------------------------------

class PathError(LookupError):
    """A dotted path that does not fit the data."""


def _parts(path: str) -> list[str]:
    parts = path.split(".") if isinstance(path, str) else [""]
    if "" in parts:
        raise PathError(f"{path!r} is not a dotted path like model.layers.0.units")
    return parts


def _step(node, parts, i, done):
    """The key or index that parts[i:] starts with in `node`, and the next position."""
    if isinstance(node, dict):
        for j in range(len(parts), i, -1):  # the longest existing key: sweep keys hold dots
            if ".".join(parts[i:j]) in node:
                return ".".join(parts[i:j]), j
        return parts[i], i + 1
    where = dotted(done) or "the config"
    if isinstance(node, list):
        if parts[i].isdigit() and int(parts[i]) < len(node):
            return int(parts[i]), i + 1
        valid = f"valid: 0..{len(node) - 1}" if node else "the list is empty"
        raise PathError(f"{where} has no item {parts[i]} ({valid})")
    raise PathError(f"{where} is {describe(node)}, it has no key '{parts[i]}'")


_ABSENT = object()


def get_path(data, path: str, default=_ABSENT):
    """The value at a dotted path (`model.layers.0.units`); when it is absent, `default`
    if given, else PathError saying what is there instead."""
    parts, node, i, done = _parts(path), data, 0, []
    try:
        while i < len(parts):
            key, i = _step(node, parts, i, done)
            if isinstance(node, dict) and key not in node:
                raise PathError(f"{dotted(done) or 'the config'} has no key '{key}'"
                                f"{suggest(key, node)} (keys: {', '.join(map(str, node))})")
            node = node[key]
            done.append(key)
    except PathError:
        if default is _ABSENT:
            raise
        return default
    return node


def set_path(data, path: str, value) -> tuple:
    """Set the value at a dotted path, creating missing mappings; returns the path as a tuple.

    A string shorthand on the way (`activation: leaky_relu`) becomes `{name: ...}`; a list
    index must exist (PathError names the valid range)."""
    return _set(data, path, value)[0]


def _set(data, path, value):
    """set_path, also returning where new mappings start (None if nothing was created)."""
    parts, node, i, done, created = _parts(path), data, 0, [], None
    while True:
        key, i = _step(node, parts, i, done)
        done.append(key)
        new = isinstance(node, dict) and node.get(key) is None
        if new and created is None:
            created = len(done)
        if i == len(parts):
            node[key] = value
            return tuple(done), created
        if new and parts[i].isdigit():
            raise PathError(f"{dotted(done)} is not a list; set it whole: {dotted(done)}=[...]")
        if new:
            node[key] = {}
        elif isinstance(node[key], str) and key in _SHORTHAND:
            node[key] = {"name": node[key]}
        node = node[key]


# ---- loading -----------------------------------------------------------------------

def load_config(path, overrides=()) -> Config:
    """Read (with the files it extends), override, validate and resolve a config file;
    raise ConfigError on problems."""
    file = os.fspath(path)
    try:
        composed = compose(file)
    except YamlError as e:
        raise ConfigError([_problem(e.where, "", e.message)]) from None
    data = composed.data
    if not isinstance(data, dict):
        what = "the file is empty" if data is None else f"the file holds {describe(data)}"
        raise ConfigError([_problem(composed.top, "", f"{what}; a config is a mapping with at "
                                    "least data: and model:")])
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.splitext(os.path.basename(file))[0])
    data.setdefault("name", stem if re.match(r"[A-Za-z0-9_]", stem) else "_" + stem)
    return _finish(composed, overrides, os.path.dirname(file))


def locate(path, dotted: str, message: str, overrides=()) -> Problem:
    """A Problem placed at `dotted` in the config file `path`, in the base that wrote it,
    or in the `--set` override that did (or at its nearest ancestor written there), for
    errors found later, e.g. a data file that does not exist."""
    file = os.fspath(path)
    try:
        composed = compose(file)
    except YamlError:
        return Problem(file, None, None, dotted, message)
    marks = composed.marks
    for text in [overrides] if isinstance(overrides, str) else overrides:
        _override(composed.data, marks, text)
    parts = tuple(int(p) if p.isdigit() else p for p in dotted.split("."))
    return _problem(marks.find(parts) or Where(file), dotted, message)


def load_config_dict(data: dict, source="<dict>", base_dir=".", overrides=()) -> Config:
    """Validate a config given as a dict (no positions: problems name `source`); the
    files it extends, and its paths, are taken relative to `base_dir`."""
    if not isinstance(data, dict):
        raise ConfigError([Problem(source, None, None, "", f"expected a mapping, got "
                                   f"{describe(data)}")])
    marks = Marks()
    marks.values[()] = Where(source)
    try:
        composed = compose_data(copy.deepcopy(data), marks, source, base_dir)
    except YamlError as e:
        raise ConfigError([_problem(e.where, "", e.message)]) from None
    return _finish(composed, overrides, base_dir)


def _finish(composed: Composed, overrides, base_dir) -> Config:
    """Apply the overrides to a composed config, validate it, check its sweep and
    resolve its paths; `base_dir` is the folder of the config loaded (for overrides)."""
    data, marks, dropped = composed.data, composed.marks, composed.dropped
    problems = [_problem(w, p, m) for p, w, m in composed.problems]
    overrides = [overrides] if isinstance(overrides, str) else list(overrides)
    for text in overrides:
        problems += _override(data, marks, text)
    config = None
    try:
        config = Config.model_validate(data)
    except ValidationError as e:
        issues = [i for i in explain(e, data) if not any(i.where[: len(d)] == d for d in dropped)]
        problems += [_locate(i, marks) for i in issues]
    if config is not None and config.sweep is not None:
        problems += [_locate(i, marks) for i in _sweep_issues(config)]
    if problems:  # the loaded file, its bases as read, then the overrides in order
        order = {f: n for n, f in enumerate([*composed.folders] + [f"--set {t}" for t in
                                                                   overrides])}
        raise ConfigError(sorted(problems, key=lambda p: (order.get(p.file, 0), p.line or 0,
                                                          p.column or 0)))

    def folder(path: tuple) -> str:
        """The folder of the file that wrote the value at `path` (an override: base_dir)."""
        where = marks.find(path)
        return composed.folders.get(where.file, base_dir) if where else base_dir

    return _resolve(config, folder)


def _locate(issue: Issue, marks: Marks) -> Problem:
    return _problem(marks.find(issue.where, issue.at_key), issue.path, issue.message)


def _override(data, marks: Marks, text: str) -> list[Problem]:
    """Apply one `KEY=VALUE`; its nodes are then located in the override itself."""
    label = f"--set {text}"
    key, eq, value_text = text.partition("=")
    at_key = Where(label, 1, 7, label)
    if not eq or not key.strip():
        return [_problem(at_key, "", "expected KEY=VALUE, e.g. model.layers.0.units=16")]
    if key.strip().split(".")[0] == EXTENDS:
        return [_problem(at_key, key.strip(), f"'{EXTENDS}' is read before the overrides; "
                         "write it in the config file")]
    offset = len("--set ") + len(key) + 1

    def where(mark):
        return Where(label, 1, offset + (mark.column if mark else 0) + 1, label)

    try:
        value, value_marks, problems, _ = read(value_text, where)
    except YamlError as e:
        return [_problem(e.where, key.strip(), e.message)]
    if problems:
        return [_problem(w, key.strip() + "".join(f".{p}" for p in path), m)
                for path, w, m in problems]
    try:
        path, created = _set(data, key.strip(), value)
    except PathError as e:
        return [_problem(at_key, key.strip(), str(e))]
    for table in (marks.values, marks.keys):
        for old in [p for p in table if p[: len(path)] == path]:
            del table[old]
    marks.values.update({path + p: w for p, w in value_marks.values.items()})
    marks.keys.update({path + p: w for p, w in value_marks.keys.items()})
    marks.keys[path] = at_key
    for n in range(created or len(path), len(path)):
        marks.values[path[:n]] = at_key  # mappings the override created
    return []


def _sweep_issues(config: Config) -> list[Issue]:
    """Every swept path must exist in the resolved config, every value must validate there."""
    base = config.model_dump(mode="json")
    del base["sweep"]
    sweep, entries, issues = config.sweep, [], []
    for key, values in (sweep.grid or {}).items():
        at = ("sweep", "grid", key)
        entries.append((key, at, [(v, at + (i,), "") for i, v in enumerate(values)]))
    for key, space in (sweep.random.space if sweep.random else {}).items():
        at = ("sweep", "random", "space", key)
        kind = next(k for k in ("choice", "uniform", "loguniform") if getattr(space, k) is not None)
        roles = ("low", "high") if kind != "choice" else ()
        entries.append((key, at, [(v, at + (kind, i), f"{kind} {roles[i]}" if roles else "")
                                  for i, v in enumerate(getattr(space, kind))]))
    for key, at, values in entries:
        why = _NOT_SWEPT.get(key.split(".")[0])
        if why is None:
            try:
                get_path(base, key)
            except PathError as e:
                why = f"it is not in the config: {e}"
        if why is not None:
            issues.append(Issue(dotted(at), at, True, f"'{key}' cannot be swept: {why}"))
            continue
        for value, where, role in values:
            trial = copy.deepcopy(base)
            set_path(trial, key, value)
            try:
                Config.model_validate(trial)
            except ValidationError as e:
                message = "; ".join(i.message if i.path == key else
                                    f"with {value!r}, {i.path}: {i.message}"
                                    for i in explain(e, trial))
                if role:  # a bound of uniform/loguniform
                    message = f"{role} {value!r}: {message}"
                    if "an integer" in message:
                        message += " (uniform and loguniform draw floats; use choice for integers)"
                issues.append(Issue(dotted(at), where, False, message))
    return issues


def _resolve(config: Config, folder) -> Config:
    """Take each path of `config` (and each swept path value) relative to `folder(at)`,
    the folder of the file that wrote the value at data path `at`."""

    def fix(p, at):
        if not isinstance(p, str) or os.path.isabs(p):
            return p
        return os.path.normpath(os.path.join(folder(at), p))

    for key in PATH_KEYS:
        section, field = key.split(".")
        part = getattr(config, section)
        if part is not None:
            setattr(part, field, fix(getattr(part, field), (section, field)))
    sweep = config.sweep
    for key in PATH_KEYS if sweep else ():
        if sweep.grid and key in sweep.grid:
            at = ("sweep", "grid", key)
            sweep.grid[key] = [fix(v, at + (i,)) for i, v in enumerate(sweep.grid[key])]
        space = sweep.random.space.get(key) if sweep.random else None
        if space is not None and space.choice is not None:
            at = ("sweep", "random", "space", key, "choice")
            space.choice = [fix(v, at + (i,)) for i, v in enumerate(space.choice)]
    return config
