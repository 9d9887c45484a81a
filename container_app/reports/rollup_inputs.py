"""The reports a roll-up reads: files and folders from the command line, each checked against its
schema as it is loaded, and the survey report a mitigation report was made from."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from container_app.core.errors import ReportError, ReportValidationError
from container_app.reports.html.view import text
from container_app.reports.mitigation import MITIGATION_REPORT
from container_app.reports.schemas import MITIGATION_SCHEMA, SURVEY_SCHEMA, load_json_object, load_schema, validate
from container_app.reports.survey import SURVEY_REPORT

SEARCH_DEPTH = 3  # how deep a folder given as REPORT is searched for reports


def find_reports(arguments: Iterable[str]) -> list[str]:
    """Report files from the command line: files as given; folders searched for the reports they hold."""
    found: list[str] = []
    for argument in arguments:
        if os.path.isfile(argument):
            found.append(argument)
        elif os.path.isdir(argument):
            inside = _reports_in(argument)
            if not inside:
                raise ReportError(f"{argument} holds no {SURVEY_REPORT} or {MITIGATION_REPORT} "
                                  f"(searched {SEARCH_DEPTH} folders deep)")
            found.extend(inside)
        else:
            raise ReportError(f"report {argument} does not exist")
    unique: dict[str, str] = {}
    for path in found:
        unique.setdefault(os.path.realpath(path), path)
    return list(unique.values())


def _reports_in(folder: str) -> list[str]:
    reports: list[str] = []
    base_depth = folder.rstrip(os.sep).count(os.sep)
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if current.rstrip(os.sep).count(os.sep) - base_depth >= SEARCH_DEPTH:
            dirs[:] = []
        reports.extend(os.path.join(current, n) for n in (SURVEY_REPORT, MITIGATION_REPORT) if n in files)
    return reports


def load_report(path: str) -> dict[str, Any]:
    """Read a survey or mitigation report and check it against its schema; ReportError if it cannot be used."""
    return _checked(load_json_object(path), path)


def parse_report_bytes(data: bytes, source: str) -> dict[str, Any]:
    """`load_report` for a report's bytes (one fetched from XNAT); `source` names it in messages."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{source} is not a JSON report: {exc}") from exc
    if not isinstance(document, dict):
        raise ReportError(f"{source} is not a report: its JSON is not an object")
    return _checked(document, source)


def _checked(document: dict[str, Any], path: str) -> dict[str, Any]:
    kind = document.get("reportType")
    schema = {"survey": SURVEY_SCHEMA, "mitigation": MITIGATION_SCHEMA}.get(kind) if isinstance(kind, str) else None
    if schema is None:
        raise ReportError(f"{path} is not a survey or mitigation report (reportType {kind!r})")
    if _schema_shipped(schema):
        try:
            validate(document, schema)
        except ReportValidationError as exc:
            raise ReportError(f"{path} is not a valid {kind} report: {exc}") from exc
    elif not isinstance(document.get("resources"), list):
        raise ReportError(f"{path} is not a valid {kind} report: it has no list of resources")
    return document


def _schema_shipped(name: str) -> bool:
    try:
        load_schema(name)
    except FileNotFoundError:
        return False
    return True


def referenced_survey(mitigation_path: str, document: Mapping[str, Any]) -> str | None:
    """The survey report a mitigation report was made from, if it can be found beside it or where it says."""
    folder = os.path.dirname(os.path.abspath(mitigation_path))
    named = text(document.get("surveyReport"))
    candidates = []
    if named:
        if not os.path.isabs(named):
            candidates.append(os.path.join(folder, named))
        candidates.append(os.path.join(folder, os.path.basename(named)))
        if os.path.isabs(named):
            candidates.append(named)
    candidates.append(os.path.join(folder, SURVEY_REPORT))
    return next((c for c in candidates if os.path.isfile(c)), None)
