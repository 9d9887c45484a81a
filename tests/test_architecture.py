"""The package's shape as contracts: no import cycles, a pure core, modules of a readable size.

The layers themselves (cli > mitigation, demo > reports > survey > support > core) are import-linter's
contract in pyproject.toml, which `.ci/run` checks with `lint-imports`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "container_app"

#: What core/ may import besides itself: computation only. pydicom's data dictionary and UID helpers are
#: data; everything that reads files (dcmread, filereader, fileset) is not.
CORE_ALLOWED = frozenset({
    "__future__", "array", "bisect", "collections", "dataclasses", "enum", "functools", "html", "itertools",
    "math", "operator", "re", "string", "sys", "typing", "unicodedata", "pydicom.datadict", "pydicom.uid",
})
#: Names that reach the outside world even without an import.
CORE_FORBIDDEN_CALLS = frozenset({"open", "__import__", "exec", "eval", "input", "print"})

#: "No module over about 400 lines": the package, the benchmark, the stand-in and container/.
MAX_LINES = 410
SIZED = ("container_app", "benchmarks", "tests/xnat_standin", "container")


def _strongly_connected(graph: dict[str, set[str]]) -> Iterator[list[str]]:
    """Tarjan's algorithm, iterative: the import cycles of the package (function-level imports included)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
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
                    yield sorted(component)


def test_no_module_imports_itself_round_a_cycle() -> None:
    graph = grimp.build_graph("container_app")
    # A package's __init__ is imported by its submodules' import machinery, not by choice: leave it out.
    modules = {m for m in graph.modules if not (PACKAGE / (m.replace(".", "/")) / "__init__.py").exists()}
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m) if d in modules} for m in modules}
    assert list(_strongly_connected(edges)) == []


def test_the_cycle_finder_finds_cycles() -> None:
    """The check above must be able to fail."""
    assert list(_strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})) == [["a", "b", "c"]]
    assert list(_strongly_connected({"a": {"b"}, "b": set()})) == []


def _core_violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom):
            continue  # relative: inside the package, judged by the layers contract
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in CORE_FORBIDDEN_CALLS):
            found.append(f"line {node.lineno}: calls {node.func.id}()")
        for name in names:
            if name.startswith("container_app."):
                if not name.startswith("container_app.core"):
                    found.append(f"line {node.lineno}: imports {name}")
            elif name not in CORE_ALLOWED and name.split(".")[0] not in CORE_ALLOWED:
                found.append(f"line {node.lineno}: imports {name}")
    return found


@pytest.mark.parametrize("path", sorted((PACKAGE / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_is_pure(path: Path) -> None:
    assert _core_violations(path.read_text("utf-8")) == []


def test_the_purity_check_can_fail() -> None:
    assert _core_violations("import os\nfrom pydicom import dcmread\nfrom pydicom.datadict import keyword_for_tag\n"
                            "from container_app.survey import pipeline\nopen('x')\n") == [
        "line 1: imports os", "line 2: imports pydicom", "line 4: imports container_app.survey",
        "line 5: calls open()"]


def test_no_module_is_over_about_400_lines() -> None:
    long = {}
    for folder in SIZED:
        for path in sorted((REPO / folder).rglob("*.py")):
            lines = len(path.read_text("utf-8").splitlines())
            if lines > MAX_LINES:
                long[str(path.relative_to(REPO))] = lines
    assert long == {}
