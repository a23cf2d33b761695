"""Turn pydantic validation errors into friendly messages, each tied to a place in the data.

A pydantic `loc` mixes keys of the data with labels that are not in it (the tag of a
discriminated union, the branch of a plain union, a missing key). `explain` walks the
data along the loc, keeps what exists, and words each error for a person: what was
received and what is allowed, with a did-you-mean for near misses.
"""

import re
from types import UnionType
from typing import Annotated, NamedTuple, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from runner import vocabulary
from runner.errors import did_you_mean
from schemas.config import Config
from schemas.yamlread import describe

_NOUNS = {
    "activation": "an activation", "init": "an initializer", "bias_init": "an initializer",
    "optimizer": "an optimizer", "loss": "a loss", "metrics": "a metric", "dtype": "a dtype",
    "scale": "a scaling", "format": "a format", "mode": "a mode", "type": "a column type",
    "missing": "a missing-value rule", "unknown": "an unknown-category rule",
    "delimiter": "a delimiter", "decimal": "a decimal mark", "target_scale": "a target scaling",
    "memory": "a memory mode",
}
_ALIASES = {  # field -> the aliases a did-you-mean may offer
    field: tuple(vocabulary.aliases(table))
    for field, table in (("activation", vocabulary.ACTIVATIONS), ("init", vocabulary.INITIALIZERS),
                         ("bias_init", vocabulary.INITIALIZERS), ("loss", vocabulary.LOSSES),
                         ("optimizer", vocabulary.OPTIMIZERS))
}
_TYPES = {
    "int_type": "an integer", "float_type": "a number", "string_type": "a string",
    "bool_type": "true or false", "list_type": "a list", "dict_type": "a mapping",
    "model_type": "a mapping", "model_attributes_type": "a mapping",
    "finite_number": "a finite number", "string_too_short": "a non-empty string",
}
_BOUNDS = {
    "greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<=",
}


class Issue(NamedTuple):
    """One problem: the dotted path shown, the data path to locate it at, the message."""

    path: str
    where: tuple
    at_key: bool
    message: str


suggest = did_you_mean  # "; did you mean 'relu'?" or ""


def dotted(path) -> str:
    return ".".join(map(str, path))


def explain(error: ValidationError, data) -> list[Issue]:
    """One Issue per problem in `error`, located in `data` (the validated input), in order."""
    units = {}  # the errors of one union node are reported together, at its first error
    for i, err in enumerate(error.errors(include_url=False)):
        found, labels = _walk(data, err["loc"])
        own = err["type"] == "config" or (err["type"] == "missing" and labels == [len(found)])
        in_union = labels and not own
        units.setdefault(("union", err["loc"][: labels[0]]) if in_union else i, []).append(
            (err, found))
    issues = []
    for key, members in units.items():
        err, found = members[0]
        if isinstance(key, tuple):
            issues += _union(key[1], members, data)
        elif err["type"] == "config":  # cross-field problems: (relative loc, message) pairs
            issues += [_at(data, found + tuple(rel), msg) for rel, msg in err["ctx"]["problems"]]
        else:
            issues.append(_issue(err, found, data))
    return issues


def _union(prefix, branches, data) -> list[Issue]:
    """The errors of the branches of one union: those of the branch the input entered, or
    one "expected A or B" when none got further than the node itself."""
    node = _walk(data, prefix)[0]
    deeper = [(e, f) for e, f in branches if f != node]
    if deeper or len(branches) == 1:
        at = {}  # the branches that failed at one place deeper: "expected A or B" there
        for e, f in deeper or branches:
            at.setdefault(f, []).append((e, f))
        issues = []
        for m in at.values():
            if len(m) > 1 and all(e["type"].endswith("_type") for e, _ in m):
                issues.append(_either(m, data))
            else:
                issues += [_issue(e, f, data) for e, f in m]
        return issues
    limits = [(e, f) for e, f in branches if not e["type"].endswith("_type")]
    if any(e["type"] in _BOUNDS or e["type"].startswith("too_") for e, _ in limits):
        branches = limits  # the type matched and a limit failed: say only that
    return [_either(branches, data) if len(branches) > 1 else _issue(*branches[0], data)]


def _walk(data, loc) -> tuple[tuple, list[int]]:
    """Split `loc` into the path that exists in `data` and the positions of the other parts."""
    found, labels, node = [], [], data
    for i, part in enumerate(loc):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            labels.append(i)
            continue
        found.append(part)
    return tuple(found), labels


def _get(data, path):
    for part in path:
        data = data[part]
    return data


def _at(data, path: tuple, message: str) -> Issue:
    """An Issue for `path`, located at its deepest part that exists in `data`."""
    where, _ = _walk(data, path)
    return Issue(dotted(path), where, False, message)


def _expected(err) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        bound = int(bound) if isinstance(bound, float) and bound.is_integer() else bound
        return f"a value {_BOUNDS[kind]} {bound}"
    if kind == "literal_error":
        return " or ".join(re.findall(r"'[^']*'", ctx["expected"]))
    if kind in ("too_short", "too_long"):
        size = ctx.get("min_length", ctx.get("max_length"))
        return f"{'at least' if kind == 'too_short' else 'at most'} {size} item{'s' * (size != 1)}"
    return _TYPES.get(kind, err["msg"].removeprefix("Input should be "))


def _either(members, data) -> Issue:
    err, found = members[0]
    wanted = list(dict.fromkeys(_expected(e) for e, _ in members))
    wanted = " or ".join([", ".join(wanted[:-1]), wanted[-1]] if len(wanted) > 2 else wanted)
    got = describe(_get(data, found))
    return Issue(dotted(found), found, False, f"expected {wanted}, got {got}")


def _issue(err, found: tuple, data) -> Issue:
    kind, ctx, value, loc = err["type"], err.get("ctx") or {}, err["input"], err["loc"]
    field = next((p for p in reversed(found) if isinstance(p, str)), None)
    if kind == "missing":
        return Issue(dotted(found), found, True, f"missing required key '{loc[-1]}'")
    if kind == "extra_forbidden":
        allowed = _fields_at(loc[:-1]) + (["extends"] if len(loc) == 1 else [])  # compose.py
        return Issue(dotted(found), found, True, f"unknown key '{loc[-1]}'"
                     f"{suggest(loc[-1], allowed)} (allowed: {', '.join(allowed)})")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        names = re.findall(r"'([^']*)'", ctx.get("expected_tags", "")) or _tags_at(loc)
        one_of = f"(one of: {', '.join(names)})"
        node = _get(data, found)
        key = re.sub(r"\W", "", ctx.get("discriminator", "name")) or "name"
        if kind == "union_tag_not_found":
            return Issue(dotted(found), found, False, f"missing required key '{key}' {one_of}")
        where = found + (key,) if isinstance(node, dict) and key in node else found
        tag = node.get(key) if isinstance(node, dict) else node
        return Issue(dotted(found), where, False, _not_one_of(tag, names, key if key != "name"
                                                              else field))
    if kind == "model_attributes_type" and field in _NOUNS:
        return Issue(dotted(found), found, False, f"expected {_NOUNS[field]} name or a mapping "
                     f"with a 'name' key, got {describe(value)}")
    if kind == "literal_error":
        names = re.findall(r"'([^']*)'", ctx["expected"])
        return Issue(dotted(found), found, False, _not_one_of(value, names, field))
    if kind == "string_pattern_mismatch" and loc == ("name",):
        message = (f"{value!r} is not a valid name: use letters, digits, '_', '.' and '-', "
                   "not starting with '.' or '-'")
    elif kind in _BOUNDS or kind in ("too_short", "too_long"):
        got = f"{len(value)}" if kind.startswith("too") else repr(value)
        message = f"expected {_expected(err)}, got {got}"
    elif kind in _TYPES:
        message = f"expected {_TYPES[kind]}, got {describe(value)}"
    else:
        message = err["msg"].removeprefix("Value error, ")
    return Issue(dotted(found), found, False, message)


def _not_one_of(value, names, field) -> str:
    """"'relux' is not an activation; did you mean 'relu'? (one of: ...)"."""
    shown = [n if n.isidentifier() else "'" + n + "'" for n in names]
    one_of = f"(one of: {', '.join(shown)})"
    if not isinstance(value, str):
        return f"expected {_NOUNS.get(field, 'a name')} name, got {describe(value)} {one_of}"
    hint = suggest(value, names + list(_ALIASES.get(field, ())))
    return f"{value!r} is not {_NOUNS.get(field, 'allowed')}{hint} {one_of}"


def _strip(tp):
    """The type under Annotated[...] and Optional[...]."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return tp


def _model_at(loc, tp=Config):
    """The model class that validates the mapping at pydantic `loc`, or None."""
    for i, part in enumerate(loc):
        tp = _strip(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            tp = tp.model_fields[part].annotation if part in tp.model_fields else None
        elif get_origin(tp) in (Union, UnionType):
            members = get_args(tp)
            tagged = [m for m in members if part in _tags(m)]  # a discriminated union
            if tagged:
                tp = tagged[0]
                continue
            for member in members:  # a plain union: `part` labels a member, or is inside one
                found = _model_at(loc[i + 1:], member) or _model_at(loc[i:], member)
                if found:
                    return found
            return None
        elif get_origin(tp) in (list, dict):
            tp = get_args(tp)[-1]
        else:
            return None
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _tags(model) -> tuple:
    """The literal values of a model's discriminator field (`name` or `type`)."""
    fields = getattr(model, "model_fields", {})
    field = fields.get("name") or fields.get("type")
    return get_args(field.annotation) if field else ()


def _fields_at(loc) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def _tags_at(loc) -> list[str]:
    model = _model_at(loc[:-1]) if loc else None
    field = model.model_fields.get(loc[-1]) if model else None
    return [t for m in get_args(_strip(field.annotation)) for t in _tags(m)] if field else []
