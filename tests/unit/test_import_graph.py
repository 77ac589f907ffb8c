"""No module of the package imports one that imports it back, directly or around a longer circle.

The graph is read from the source with :mod:`ast`, so every import counts: at module level, inside a
function (a lazy import is still a dependency) and under ``if TYPE_CHECKING:`` (a circle of types is
still a circle of modules). ``from package import name`` is an edge to the submodule ``name`` when
there is one, else to the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import airflow_provider_veo

PACKAGE = airflow_provider_veo.__name__
ROOT = Path(airflow_provider_veo.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> Iterator[str]:
    """The package's own modules that the file at ``path`` imports."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` where c is not a module of ours
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    files = {module_name(path): path for path in ROOT.rglob("*.py")}
    return {name: set(imported_modules(path, set(files))) for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_one_that_imports_it_back() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.testing.emulator.forms" in graph and len(graph) > 30, "the walk found the package"
    assert circles(graph) == []


def test_the_check_finds_a_circle() -> None:
    """The check can fail: two modules that import each other, or three in a ring, are found."""
    graph = {
        "a": {"b"},
        "b": {"a", "c"},
        "c": {"d"},
        "d": {"c"},
        "e": {"f"},
        "f": {"g"},
        "g": {"e"},
        "h": {"a"},
    }
    assert sorted(circles(graph)) == [["a", "b"], ["c", "d"], ["e", "f", "g"]]
