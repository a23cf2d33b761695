"""The layout is the design: imports only go downward (cli -> api -> runs -> io/engine),
and nothing imports in a circle. Parsed from the source, function-level imports too."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEAVES = {"runner", "runner.errors", "runner.vocabulary"}  # import nothing of yamlnet's
# what each layer may import, besides itself and the leaves
ALLOWED = {
    "runner.engine": set(),
    "runner.io": {"runner.engine"},
    "schemas": set(),
    "runner.runs": {"runner.engine", "runner.io", "schemas"},
}


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(source, modules):
    """The yamlnet modules that `source` imports, anywhere in the file."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
            names = [n if n in modules else node.module for n in names]
        else:
            continue
        found |= {n for n in names if n.split(".")[0] in ("runner", "schemas")}
    return found


def graph(sources=None):
    """{module: {imported modules}} of every module of runner/ and schemas/."""
    if sources is None:
        files = [p for d in ("runner", "schemas") for p in (ROOT / d).rglob("*.py")]
        sources = {module_name(p): p.read_text() for p in files}
    return {m: imported(src, set(sources)) - {m} for m, src in sources.items()}


def layer(module):
    return next((name for name in ALLOWED if module == name or module.startswith(name + ".")),
                module)


def violations(edges):
    """Imports that go against the layers, as 'a -> b' strings."""
    bad = []
    for module, targets in edges.items():
        for target in targets:
            if module in LEAVES and target not in LEAVES:
                bad.append(f"{module} -> {target}")
            if target == "runner.cli" and module != "runner.__main__":
                bad.append(f"{module} -> {target}")
            own = layer(module)
            if own in ALLOWED and target not in LEAVES and layer(target) != own \
                    and layer(target) not in ALLOWED[own]:
                bad.append(f"{module} -> {target}")
    return bad


def cycles(edges):
    """Every module that can reach itself through imports."""
    def reach(start):
        seen, todo = set(), list(edges.get(start, ()))
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo += edges.get(m, ())
        return seen
    return sorted(m for m in edges if m in reach(m))


def test_imports_go_downward():
    assert violations(graph()) == []


def test_no_import_cycle():
    edges = graph()
    packages = [m for m in edges if (ROOT / m.replace(".", "/") / "__init__.py").exists()]
    for p in packages:  # `from runner.io import x` is an edge to the package: skip those
        edges[p] = set()
    assert cycles(edges) == []


def test_the_checker_sees_a_wrong_import():
    """An engine module importing an io module, io importing runs, a library module
    importing the CLI, and a cycle are each reported."""
    edges = graph()
    wrong = {"runner.engine.network": "from runner.io import data\n",
             "runner.io.data": "from runner.runs import build\n",
             "runner.runs.sweep": "from runner import cli\n"}
    modules = set(edges)
    for module, line in wrong.items():
        mutated = dict(edges)
        mutated[module] = edges[module] | imported(line, modules)
        assert violations(mutated), module
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == ["a", "b"]


def test_the_engine_imports_only_numpy_and_the_standard_library():
    import sys

    allowed = set(sys.stdlib_module_names) | {"numpy", "runner", "threadpoolctl"}
    for path in (ROOT / "runner" / "engine").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                tops = [node.module.split(".")[0]]
            else:
                continue
            extra = {"numba"} if path.name == "kernels_jit.py" else set()  # extra 'fast'
            assert set(tops) <= allowed | extra, f"{path.name} imports {tops}"
