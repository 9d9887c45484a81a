"""The package's shape as contracts: a pure core, and modules of a readable size.

The layers (cli > mitigation, demo > reports > survey > support > core) and the absence of import cycles
are import-linter's contracts in pyproject.toml, which `.ci/run` checks with `lint-imports`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "container_app"

#: What core/ may import besides itself: computation only. pydicom's data dictionary and UID helpers are
#: data; everything that reads files (dcmread, filereader, fileset) is not.
CORE_ALLOWED = frozenset({
    "__future__", "array", "bisect", "collections", "dataclasses", "enum", "functools", "html", "itertools",
    "math", "operator", "re", "string", "sys", "typing", "unicodedata", "pydicom.datadict", "pydicom.uid",
    "xml.parsers.expat",  # parses bytes in memory (core.catalog_text)
})
#: Names that reach the outside world even without an import.
CORE_FORBIDDEN_CALLS = frozenset({"open", "__import__", "exec", "eval", "input", "print"})

#: "No module over about 400 lines": the package, the benchmark, the stand-in and container/.
MAX_LINES = 410
SIZED = ("container_app", "benchmarks", "tests/xnat_standin", "container")


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
