"""No import cycles inside ``gpen_video/``, read statically from the source (nothing imported).

Two graphs are checked:

* **module level** — the imports a module runs when it is imported (top level, class bodies,
  ``try``/``if`` blocks). A cycle here can fail at import time depending on which module comes
  first. This is the architecture rule.
* **everything** — also the imports inside functions (the lazy ones that keep ``--help`` fast
  and optional dependencies optional). A cycle here does not fail at import, but it is the same
  design fault (two modules that each need the other: e.g. an engine builder that imports the
  backend that runs it), so it is held to the same rule.

Imports under ``if TYPE_CHECKING:`` are annotations only and are not counted. An edge goes to
the module imported (``from gpen_video.faces.align import x`` → ``gpen_video.faces.align``;
``from gpen_video.faces import align`` → ``gpen_video.faces.align``); the parent package's
``__init__`` that Python runs first is not counted as an edge (a package importing its own
submodules is not a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gpen_video"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return ((isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
            or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _targets(node: ast.Import | ast.ImportFrom, package: str) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    base = node.module or ""
    if node.level:
        parts = package.split(".")[:len(package.split(".")) - (node.level - 1)]
        base = ".".join(parts + ([node.module] if node.module else []))
    return {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}


def imports_of(path: Path, *, in_functions: bool) -> set[str]:
    """The ``gpen_video`` modules ``path`` imports (module level; also in functions if asked)."""
    return imports_in(path.read_text(encoding="utf-8"), _module_name(path),
                      is_package=path.name == "__init__.py", in_functions=in_functions)


def imports_in(source: str, me: str, *, is_package: bool, in_functions: bool) -> set[str]:
    """The ``gpen_video`` modules that ``source`` (the text of module ``me``) imports."""
    package = me if is_package else me.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if in_functions:
                    visit(node.body)
                continue
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(_targets(node, package))
            for name in ("body", "orelse", "finalbody"):
                visit(getattr(node, name, None) or [])
            for handler in getattr(node, "handlers", None) or []:
                visit(handler.body)
            for case in getattr(node, "cases", None) or []:
                visit(case.body)

    visit(ast.parse(source).body)
    return {m for m in found if m in MODULES and m != me}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), each
    returned as one cycle through it: ``[a, b, …, a]``."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(_one_cycle(graph, set(component)))
    return components


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the first module of ``component`` (breadth-first)."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    return paths[node] + [start]
                if child not in paths:
                    paths[child] = paths[node] + [child]
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover


@pytest.mark.parametrize("in_functions", [False, True], ids=["module-level", "with-functions"])
def test_no_import_cycles(in_functions: bool) -> None:
    graph = {name: imports_of(path, in_functions=in_functions) for name, path in MODULES.items()}
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" → ".join(c) for c in cycles)


def test_the_walker_sees_a_cycle_and_skips_type_checking() -> None:
    """The checker itself: a planted cycle is found and named; TYPE_CHECKING imports are not
    edges; function-level imports count only when asked; relative imports resolve."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from gpen_video.options import RunOptions\n"
              "from . import align\n"
              "class C:\n    from gpen_video.errors import UsageError\n"
              "def f():\n    from gpen_video.media import sink\n")
    me = "gpen_video.faces.types"
    assert imports_in(source, me, is_package=False, in_functions=False) == {
        "gpen_video.faces.align", "gpen_video.errors"}
    assert imports_in(source, me, is_package=False, in_functions=True) == {
        "gpen_video.faces.align", "gpen_video.errors", "gpen_video.media.sink"}
