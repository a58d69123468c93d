"""The package's modules import each other without cycles.

Every import counts: at the top of a module, inside a function (lazy), and under
TYPE_CHECKING, since each one says that a module needs another. A cycle means two modules that
cannot be understood, tested or changed apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

import dispatch_kernel

ROOT = Path(dispatch_kernel.__file__).resolve().parent
PACKAGE = "dispatch_kernel"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # `from x import y` needs x.y when y is a module, else x itself
                submodules = [f"{prefix}.{alias.name}" for alias in node.names]
                targets = [t for t in submodules if t in modules]
                if len(targets) < len(submodules):
                    targets.append(prefix)
            for target in targets:
                if target.startswith(PACKAGE) and target in modules and target != name:
                    graph[name].add(target)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph (a list that starts and ends with the same module), if any."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_imports_of_every_kind():
    graph = _graph()
    assert "dispatch_kernel.functions" in graph["dispatch_kernel.core"]  # at the top
    assert "dispatch_kernel.events.manager" in graph["dispatch_kernel.core"]  # lazy, and TYPE_CHECKING
    assert "dispatch_kernel.runtime.encoding" in graph["dispatch_kernel.model"]


def test_no_module_of_the_package_is_part_of_an_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_a_cycle_would_be_found():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
