"""Read YAML safely, as YAML 1.2, remembering where every node starts.

PyYAML's composer gives a tree of nodes with positions and constructs nothing, so no
tag can run code. `read` builds plain Python values from that tree itself: strings, YAML
1.2 numbers (`1e-3` is a float; `yes` is a string), true/false, null, lists and
mappings. Aliases are expanded with a node budget (alias bombs stop early), duplicate
keys and foreign tags are reported, and `<<` merge keys are honoured.
"""

import re
from typing import NamedTuple

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

MAX_NODES = 100_000
MAX_DEPTH = 100
MAX_BYTES = 10 * 1024**2
_TAG = "tag:yaml.org,2002:"


class Where(NamedTuple):
    """A place in a source: file label, 1-based line and column, the text of that line,
    and for a file read as a base (`extends`) the files that led to it, outermost first."""

    file: str
    line: int | None = None
    column: int | None = None
    source: str = ""
    via: tuple = ()


class Marks:
    """Where each value (`values`) and each mapping key (`keys`) starts, by data path."""

    def __init__(self):
        self.values: dict[tuple, Where] = {}
        self.keys: dict[tuple, Where] = {}

    def find(self, path: tuple, at_key=False) -> Where | None:
        """The place of `path` (its key, if asked and known), else of its nearest ancestor."""
        if at_key and path in self.keys:
            return self.keys[path]
        while path not in self.values and path:
            path = path[:-1]
        return self.values.get(path)


def describe(value) -> str:
    """A value as a message shows it: "the string '2'", "the integer 3", "a list"..."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    kinds = {int: "the integer", float: "the float", str: "the string"}
    for kind, words in kinds.items():
        if isinstance(value, kind):
            return f"{words} {value!r}"
    names = {list: "a list", dict: "a mapping", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class YamlError(Exception):
    """A problem that stops reading: `where` and `message`."""

    def __init__(self, where: Where, message: str):
        super().__init__(message)
        self.where, self.message = where, message


try:  # libyaml scans and parses (about 10x faster); composing stays in Python, below
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml

    class _Parser(Reader, Scanner, Parser):
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)


class _Loader(_Parser, Composer, Resolver):
    """A YAML parser and composer with YAML 1.2 core-schema resolution and size limits."""

    yaml_implicit_resolvers: dict = {}  # replaced below, not inherited (no YAML 1.1 rules)

    def __init__(self, stream):
        _Parser.__init__(self, stream)
        Composer.__init__(self)
        Resolver.__init__(self)
        self.nodes = self.depth = 0

    def compose_node(self, parent, index):
        self.nodes, self.depth = self.nodes + 1, self.depth + 1
        try:
            if self.nodes > MAX_NODES:
                self._refuse(f"document too large (alias expansion?): over {MAX_NODES} nodes")
            if self.depth > MAX_DEPTH:
                self._refuse(f"document nested too deeply (over {MAX_DEPTH} levels)")
            return Composer.compose_node(self, parent, index)
        finally:
            self.depth -= 1

    def _refuse(self, problem):
        raise _Refused(problem=problem, problem_mark=self.peek_event().start_mark)


class _Refused(yaml.MarkedYAMLError):
    """A limit was hit while composing."""


for _tag, _pattern in [
    ("null", r"~|null|Null|NULL|"),
    ("bool", r"(?i:true|false)"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"),
    ("float", r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?\.(inf|Inf|INF)"
              r"|\.(nan|NaN|NAN)"),
]:
    _Loader.add_implicit_resolver(_TAG + _tag, re.compile(rf"(?:{_pattern})\Z"), None)


def _number(tag: str, text: str):
    if tag == "int":
        if text[:2] in ("0o", "0x"):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text)
    if text.lstrip("+-").lower() in (".inf", ".nan"):
        return float(text.replace(".", "", 1))
    return float(text)


class _Builder:
    """Builds Python values from nodes, recording marks and the problems that do not stop
    reading, as (path, Where, message); `poisoned` holds the paths whose value was dropped."""

    def __init__(self, where):
        self.where, self.marks, self.problems, self.poisoned = where, Marks(), [], set()
        self.count, self.open = 0, set()

    def problem(self, path, node, message, dropped=False):
        self.problems.append((path, self.where(node.start_mark), message))
        if dropped:
            self.poisoned.add(path)

    def build(self, node, path=()):
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlError(self.where(node.start_mark),
                            f"document too large (alias expansion?): over {MAX_NODES} nodes")
        self.marks.values[path] = self.where(node.start_mark)
        tag = node.tag.removeprefix(_TAG)
        allowed = {ScalarNode: ("str", "null", "bool", "int", "float"),
                   SequenceNode: ("seq",), MappingNode: ("map",)}[type(node)]
        if tag not in allowed:
            shown = "!!" + tag if node.tag.startswith(_TAG) else node.tag
            return self.problem(path, node, f"tag '{shown}' is not allowed: a config holds only "
                                "strings, numbers, true/false, null, lists and mappings", True)
        if isinstance(node, ScalarNode):
            return self._scalar(node, tag, path)
        if id(node) in self.open:
            raise YamlError(self.where(node.start_mark), "recursive alias: a node contains itself")
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
            return self._mapping(node, path)
        finally:
            self.open.discard(id(node))

    def _scalar(self, node, tag, path):
        if tag == "str":
            return node.value
        if tag == "null":
            return None
        if tag == "bool" and node.value.lower() in ("true", "false"):
            return node.value.lower() == "true"
        try:
            return _number(tag, node.value)
        except ValueError:
            return self.problem(path, node, f"{node.value!r} is not a valid {tag}", True)

    def _mapping(self, node, path):
        """A dict; `<<: *base` (or a list of aliases) supplies keys not given explicitly."""
        merged, out, first = {}, {}, {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(path, key_node, "a key must be a plain string, not a list or mapping")
            elif key_node.value == "<<" and not key_node.style:  # plain, not quoted
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    value = self.build(source, path)
                    if not isinstance(value, dict):
                        self.problem(path, source, "'<<' merges mappings only")
                        continue
                    merged.update({k: v for k, v in value.items() if k not in merged})
            elif key_node.value in first:
                line = first[key_node.value].line
                self.problem(path + (key_node.value,), key_node, f"duplicate key "
                             f"'{key_node.value}' (first given on line {line})")
            else:
                key = key_node.value
                first[key] = self.marks.keys[path + (key,)] = self.where(key_node.start_mark)
                out[key] = self.build(value_node, path + (key,))
        self.marks.values[path] = self.where(node.start_mark)
        return {**{k: v for k, v in merged.items() if k not in out}, **out}


def read(text: str, where) -> tuple[object, Marks, list, set]:
    """Parse one YAML document. `where(mark)` turns a yaml Mark (or None) into a `Where`.

    Returns (data, marks, problems, poisoned); problems are (path, Where, message) that
    still let the rest be checked. Raises YamlError for anything that stops reading."""
    try:
        node = Composer.get_single_node(_Loader(text))
        builder = _Builder(where)
        data = None if node is None else builder.build(node)
    except yaml.MarkedYAMLError as e:
        text = ", ".join(filter(None, [e.context, e.problem])).replace("\t", "\\t")
        text = text if isinstance(e, _Refused) else f"invalid YAML: {text}"
        mark, opened = e.problem_mark or e.context_mark, e.context_mark
        unclosed = any(w in (e.context or "") for w in ("flow", "quoted")) or (
            "end of stream" in (e.problem or ""))
        if unclosed and opened and e.problem_mark and opened.line < e.problem_mark.line:
            text += f" (the bracket or quote opened on line {opened.line + 1}, column " \
                    f"{opened.column + 1})"
        raise YamlError(where(mark), text) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position)
        column = e.position - (text.rfind("\n", 0, e.position) + 1)
        raise YamlError(where(yaml.Mark("", e.position, line, column, None, None)),
                        f"character {chr(e.character)!r} is not allowed in YAML") from None
    except RecursionError:
        raise YamlError(where(None), "document nested too deeply") from None
    return data, builder.marks, builder.problems, builder.poisoned


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting every string that `read` (YAML 1.2) or a YAML 1.1
    reader would take for something else (`1e3`, `0o17`, `tRuE`), so a dumped config
    reads back to the same values."""


_Dumper.yaml_implicit_resolvers = {
    first: list(rules) for first, rules in yaml.SafeDumper.yaml_implicit_resolvers.items()}
for _first, _rules in _Loader.yaml_implicit_resolvers.items():
    _Dumper.yaml_implicit_resolvers.setdefault(_first, []).extend(_rules)


def dump(data) -> str:
    """YAML text of plain data (a resolved config) that `read` turns back into `data`."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
