"""Imports run one way — ``verification`` -> {``figures``, ``certs``, ``pruning``} -> ``rmt`` — and never in a circle.

Every ``import`` / ``from ... import`` of every project module counts, including those inside functions
(a local import hides a circle, it does not remove it); only ``if TYPE_CHECKING:`` blocks are exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: Layer of each top-level package: a module may import its own package and lower layers only.
LAYERS = {"rmt": 0, "certs": 1, "pruning": 1, "figures": 2, "verification": 3}


def _module_files() -> dict[str, Path]:
    files = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def _imported(name: str, node: ast.AST, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = name.split(".") if is_package else name.split(".")[:-1]
    module = (node.module if not node.level
              else ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).strip("."))
    return [module] + [f"{module}.{alias.name}" for alias in node.names]


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body, TYPE_CHECKING blocks excepted)."""
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        exempt = {id(n) for block in ast.walk(tree)
                  if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                  for n in ast.walk(block)}
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in exempt:
                for target in _imported(name, node, path.name == "__init__.py"):
                    while target not in files and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in files and target != name:
                        deps.add(target)
        graph[name] = deps
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for name, deps in graph.items():
        top = name.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            if other != top and LAYERS[other] >= LAYERS[top]:
                out.append(f"{name} -> {dep}")
    return sorted(out)


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_module_imports_upward():
    assert upward_imports(import_graph(_module_files())) == []


def test_no_import_circle():
    assert import_cycles(import_graph(_module_files())) == []


def test_the_checks_catch_an_upward_import_and_a_circle():
    """Known-bad: a figures module importing verification, and a two-module circle."""
    graph = {"figures.a": {"verification.b"}, "verification.b": {"certs.c"}, "certs.c": {"certs.d"},
             "certs.d": {"certs.c"}}
    assert upward_imports(graph) == ["figures.a -> verification.b"]
    assert import_cycles(graph) == [["certs.c", "certs.d"]]
