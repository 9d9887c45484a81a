"""A survey report read as untrusted input: the checks beyond its schema, before any change is planned.

A report is a file on disk, and inside XNAT a resource that project members can edit. Its schema says
each field has the right type; these checks say its paths cannot steer a change anywhere it should not
go: every path plain and ROOT-relative, every file inside its resource, every expected name one safe
component, every catalog inside its resource, no path named twice, and every file a finding names is
one of the resource's files. Pure: a document in, the problems found out (empty when it can be used).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from container_app.core.naming import unsafe_name_reason

#: Enough problems to show what is wrong; a report with more is refused just the same.
MAX_PROBLEMS_SHOWN = 10


def path_problem(path: object) -> str | None:
    """Why `path` is not a plain ROOT-relative path (as the survey writes them), or None."""
    if not isinstance(path, str):
        return "is not text"
    if path == ".":
        return None
    if path.startswith("/"):
        return "is absolute"
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "has an empty, '.' or '..' component"
    if "\0" in path:
        return "holds a NUL character"
    return None


def _inside(resource_path: str, path: str) -> bool:
    return resource_path == "." or path.startswith(resource_path + "/")


def _resource_problems(resource: Mapping[str, Any]) -> Iterator[str]:
    where = resource.get("path")
    problem = path_problem(where)
    if problem:
        yield f"resource {where!r}: its path {problem}"
        return
    assert isinstance(where, str)
    files: set[str] = set()
    for file in resource.get("files", []):
        path = file.get("path")
        problem = path_problem(path) or (None if _inside(where, path) else "is not inside its resource")
        if problem:
            yield f"resource {where}: file {path!r} {problem}"
            continue
        if path in files:
            yield f"resource {where}: file {path!r} is listed twice"
        files.add(path)
        expected = file.get("expectedName")
        if expected is not None and unsafe_name_reason(expected):
            yield f"resource {where}: the expected name of {path!r} is unsafe ({unsafe_name_reason(expected)})"
    xnat = resource.get("xnat") or {}
    for path, expected in (xnat.get("mismatchedFiles") or {}).items():
        if path not in files:
            yield f"resource {where}: mismatched file {path!r} is not one of its files"
        elif unsafe_name_reason(expected):
            yield f"resource {where}: the expected name of {path!r} is unsafe ({unsafe_name_reason(expected)})"
    for group in resource.get("duplicateGroups", []):
        for path, expected in (group.get("members") or {}).items():
            if path not in files:
                yield f"resource {where}: duplicate {path!r} is not one of its files"
            elif unsafe_name_reason(expected):
                yield f"resource {where}: the expected name of {path!r} is unsafe ({unsafe_name_reason(expected)})"
    catalog = (resource.get("identity") or {}).get("catalogPath")
    if catalog is not None:
        problem = path_problem(catalog) or (None if _inside(where, catalog) else "is not inside its resource")
        if problem:
            yield f"resource {where}: its catalog {catalog!r} {problem}"
        elif catalog in files:
            yield f"resource {where}: its catalog {catalog!r} is also listed as a file"


def survey_report_problems(report: Mapping[str, Any]) -> list[str]:
    """What makes a (schema-valid) survey report unusable for a mitigation; at most MAX_PROBLEMS_SHOWN + 1."""
    problems: list[str] = []
    resources: set[str] = set()
    every_file: set[str] = set()
    for resource in report.get("resources", []):
        where = resource.get("path")
        if where in resources:
            problems.append(f"resource {where!r} is listed twice")
        resources.add(where)
        for file in resource.get("files", []):
            if file.get("path") in every_file:
                problems.append(f"file {file.get('path')!r} is listed in two resources")
            every_file.add(file.get("path"))
        for problem in _resource_problems(resource):
            problems.append(problem)
            if len(problems) > MAX_PROBLEMS_SHOWN:
                return problems
    return problems
