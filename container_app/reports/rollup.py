"""Project roll-up: many survey or mitigation reports (one per session, as a bulk launch over a project
produces) combined into XNAT's summary fields per project and per session.

`build_rollup` turns documents into the roll-up document; `run_rollup` does what
`xnat-resource-survey rollup REPORT... --output OUT` asks: reads the reports and writes `rollup.json`
(validated against `rollup-report.schema.json`), `rollup.csv` and `rollup.html` into OUT.

Reports are reduced to one small entry per resource as they are read, so the command holds one report
at a time. A resource is counted once: reports of the same resource (same survey run and path, or same
project, session, scan and label) replace one another, the latest run winning; a mitigation report adds
its mitigation totals to those of its survey (it carries the survey's runId).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from container_app import __version__
from container_app.core.errors import ReportError
from container_app.reports import rollup_xnat
from container_app.reports.html.templating import TOOL, environment
from container_app.reports.html.view import (
    after_status,
    count,
    mapping,
    mitigation_counts,
    sequence,
    status_class,
    text,
    worst_status,
)
from container_app.reports.rollup_inputs import find_reports, load_report, referenced_survey
from container_app.reports.schemas import ROLLUP_SCHEMA, validate
from container_app.support import logs
from container_app.support.fsutil import SaveFile
from container_app.support.time import iso, now_utc

log = logs.get_logger("xnat_resource_survey")

ROLLUP_JSON = "rollup.json"
ROLLUP_CSV = "rollup.csv"
ROLLUP_HTML = "rollup.html"

SURVEY_FIELDS = ("totalEntries", "totalUids", "totalDuplicates", "totalBadFiles", "totalMismatchedFiles")
MITIGATION_FIELDS = ("totalMovedFiles", "totalRemovedFiles", "totalFileErrors")
#: Ours, not XNAT's: folders a survey could not list (their resources are ERROR), from each resource's `folder`.
UNREADABLE_FOLDERS = "unreadableFolders"
SUMMARY_FIELDS = SURVEY_FIELDS + MITIGATION_FIELDS + (UNREADABLE_FOLDERS,)
#: `detail` is only filled on the rows of a roll-up fetched from XNAT (never surveyed, stale, fetch problems).
CSV_COLUMNS = ("level", "project", "session", "status", "resources", "mitigatedResources", *SUMMARY_FIELDS, "detail")
MAX_HTML_SESSIONS = 2000  # session rows per project in rollup.html; the JSON and CSV have them all


# --- reducing reports --------------------------------------------------------------------------------


@dataclass
class _Part:
    """What one report says about one resource: its counts, status and when it was made."""

    counts: dict[str, int]
    status: str
    stamp: str


@dataclass
class _Resource:
    root: str
    path: str
    origin: str  # the survey run it comes from (a mitigation report carries its survey's runId)
    project: str | None = None
    session: str | None = None
    survey: _Part | None = None
    mitigation: _Part | None = None

    @property
    def status(self) -> str:
        if self.mitigation is not None:
            return self.mitigation.status
        return self.survey.status if self.survey is not None else "UNKNOWN"


@dataclass
class RollupBuilder:
    """Accumulates reports one at a time; `result()` is the roll-up document."""

    resources: list[_Resource] = field(default_factory=list)
    by_origin: dict[tuple[str, str, str], _Resource] = field(default_factory=dict)
    by_identity: dict[tuple[str | None, ...], _Resource] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    xnat: dict[str, Any] | None = None  # the `xnat` field of a roll-up fetched from XNAT (rollup_xnat)

    def add(self, document: Mapping[str, Any], source: str | None = None, *, project: str | None = None,
            session: str | None = None) -> None:
        """Add a survey or mitigation report (already loaded; see `load_report` for checking one).

        `project` and `session` name the XNAT session the report was fetched from: a container of a bulk
        launch sees its session at /input, so its report's identities name neither.
        """
        kind = document.get("reportType")
        source = source or f"report {len(self.inputs) + 1}"
        if kind not in ("survey", "mitigation"):
            raise ReportError(f"{source} is not a survey or mitigation report (reportType {kind!r})")
        root = text(document.get("root"))
        origin = text(document.get("runId")) or source
        stamp = text(document.get("finishedAt") or document.get("startedAt") or document.get("runId"))
        resources = [r for r in sequence(document.get("resources")) if isinstance(r, Mapping)]
        dry_run = kind == "mitigation" and document.get("dryRun") is True
        self.inputs.append({"source": source, "reportType": kind, "runId": document.get("runId") or None,
                            "root": root or None, "dryRun": dry_run, "resources": len(resources)})
        if dry_run:
            self.warnings.append(f"{source}: a dry run changes nothing; its plan is not counted")
            return
        replaced = 0
        for resource in resources:
            entry = self._entry(root, origin, resource, project, session)
            if kind == "survey":
                xnat = mapping(resource.get("xnat"))
                counts = {k: count(xnat.get(k)) for k in SURVEY_FIELDS}
                counts[UNREADABLE_FOLDERS] = count(mapping(resource.get("folder")).get("unreadable"))
                part = _Part(counts, text(resource.get("requestStatus")) or "UNKNOWN", stamp)
                replaced += _merge(entry, "survey", part)
            else:
                part = _Part(mitigation_counts(mapping(resource.get("xnat"))), after_status(resource), stamp)
                replaced += _merge(entry, "mitigation", part)
        if replaced:
            self.warnings.append(f"{source}: {replaced} resources were also in another {kind} report; "
                                 "the latest run of each is counted")

    def _entry(self, root: str, origin: str, resource: Mapping[str, Any], known_project: str | None = None,
               known_session: str | None = None) -> _Resource:
        """The resource's entry: the same survey run and path, or else the same project, session, scan and label.

        Sessions launched in bulk are each mounted at the same ROOT (`/input`) with the same relative paths,
        so a root and path alone do not tell resources apart: the survey run (`runId`, which a mitigation
        report shares with its survey) does, and the identity joins reports of one session from several runs.
        """
        path = text(resource.get("path"))
        identity = mapping(resource.get("identity"))
        project = known_project or _name(identity.get("project"))
        session = known_session or _name(identity.get("session"))
        by_origin = (origin, root, path)
        by_identity: tuple[str | None, ...] | None = None
        if session is not None:
            scan, label = _name(identity.get("scanId")), _name(identity.get("resourceLabel"))
            by_identity = (project, session, scan, label) if scan and label else (project, session, root, path)
        entry = self.by_origin.get(by_origin) or (self.by_identity.get(by_identity) if by_identity else None)
        if entry is None:
            entry = _Resource(root=root, path=path, origin=origin)
            self.resources.append(entry)
        entry.project = entry.project or project
        entry.session = entry.session or session
        self.by_origin.setdefault(by_origin, entry)
        if by_identity is not None:
            self.by_identity.setdefault(by_identity, entry)
        return entry

    def result(self) -> dict[str, Any]:
        """The roll-up document (valid against `rollup-report.schema.json`)."""
        runs: dict[tuple[str, str], set[str]] = {}  # survey runs per project and root, of unnamed sessions
        for entry in self.resources:
            if entry.session is None:
                runs.setdefault((entry.project or entry.root, entry.root), set()).add(entry.origin)
        sessions: dict[tuple[str, str], list[_Resource]] = {}
        for entry in self.resources:
            project = entry.project or entry.root
            session = entry.session
            if session is None:  # the report's root stands in, with the run when several runs share the root
                session = entry.root if len(runs[(project, entry.root)]) == 1 else f"{entry.root} (run {entry.origin})"
            sessions.setdefault((project, session), []).append(entry)
        no_survey = sum(1 for e in self.resources if e.survey is None)
        warnings = list(self.warnings)
        if no_survey:
            warnings.append(f"{no_survey} mitigated resources have no survey report among the inputs: "
                            "their survey totals are counted as 0")
        projects: dict[str, list[dict[str, Any]]] = {}
        project_members: dict[str, list[_Resource]] = {}
        for (project, session), members in sorted(sessions.items()):
            summary = _summary(members)
            projects.setdefault(project, []).append({
                "project": project, "session": session,
                "identifiedBy": "identity" if any(m.session for m in members) else "root",
                "roots": sorted({m.root for m in members}), **summary,
            })
            project_members.setdefault(project, []).extend(members)
        project_docs = []
        for project, session_docs in projects.items():
            members = project_members[project]
            project_docs.append({
                "project": project,
                "identifiedBy": "identity" if any(m.project for m in members) else "root",
                "sessionCount": len(session_docs), **_summary(members), "sessions": session_docs,
            })
        document: dict[str, Any] = {
            "reportType": "rollup",
            "schemaVersion": "1.0",
            "tool": {"name": "xnat-resource-survey", "version": __version__},
            "createdAt": iso(now_utc()),
            "inputs": self.inputs,
            "warnings": warnings,
            "totals": {**_summary(self.resources), "projects": len(project_docs),
                       "sessions": len(sessions)},
            "projects": project_docs,
        }
        if self.xnat is not None:
            document["xnat"] = self.xnat
        return document


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _merge(entry: _Resource, kind: str, part: _Part) -> int:
    """Set the survey or mitigation part of a resource; the later run wins. 1 if one was replaced."""
    earlier: _Part | None = getattr(entry, kind)
    if earlier is None or part.stamp >= earlier.stamp:
        setattr(entry, kind, part)
    return 0 if earlier is None else 1


def _summary(members: Sequence[_Resource]) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    mitigated = 0
    for member in members:
        if member.survey is not None:
            totals.update(member.survey.counts)
        if member.mitigation is not None:
            mitigated += 1
            totals.update(member.mitigation.counts)
        statuses[member.status] += 1
    return {
        "status": worst_status(statuses) if statuses else "CONFORMING",
        "resources": len(members),
        "mitigatedResources": mitigated,
        "statusCounts": dict(sorted(statuses.items())),
        **{k: totals.get(k, 0) for k in SUMMARY_FIELDS},
    }


def build_rollup(reports: Sequence[Mapping[str, Any]], sources: Sequence[str] | None = None) -> dict[str, Any]:
    """Combine survey and/or mitigation reports into a project roll-up (see `rollup-report.schema.json`)."""
    builder = RollupBuilder()
    for index, document in enumerate(reports):
        builder.add(document, sources[index] if sources is not None and index < len(sources) else None)
    return builder.result()


# --- writing -----------------------------------------------------------------------------------------


def write_rollup(out_dir: str, document: Mapping[str, Any]) -> dict[str, str]:
    """Validate the roll-up and write `rollup.json`, `rollup.csv` and `rollup.html` into OUT atomically."""
    validate(document, ROLLUP_SCHEMA)
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in (ROLLUP_JSON, ROLLUP_CSV, ROLLUP_HTML)}
    # All three or none: an exception in the block leaves every earlier roll-up file as it was.
    with (SaveFile(paths[ROLLUP_JSON]) as json_file, SaveFile(paths[ROLLUP_CSV], newline="") as csv_file,
          SaveFile(paths[ROLLUP_HTML]) as html_file):
        json.dump(document, json_file, ensure_ascii=False, indent=1)
        json_file.write("\n")
        _write_csv(csv_file, document)
        for chunk in environment().get_template("rollup.html.j2").generate(**_html_context(document)):
            html_file.write(chunk)
    return paths


def _write_csv(handle: IO[str], document: Mapping[str, Any]) -> None:
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)

    def row(level: str, project: str, session: str, summary: Mapping[str, Any]) -> list[Any]:
        return [level, project, session, summary["status"], summary["resources"], summary["mitigatedResources"],
                *(summary[k] for k in SUMMARY_FIELDS), ""]

    writer.writerow(row("all", "", "", document["totals"]))
    for project in document["projects"]:
        writer.writerow(row("project", project["project"], "", project))
        for session in project["sessions"]:
            writer.writerow(row("session", project["project"], session["session"], session))
    writer.writerows(rollup_xnat.csv_rows(document, len(CSV_COLUMNS)))


def _html_context(document: Mapping[str, Any]) -> dict[str, Any]:
    columns = list(zip(SUMMARY_FIELDS, ("entries", "UIDs", "duplicate groups", "bad files", "mismatched files",
                                         "moved files", "removed files", "file errors", "unreadable folders"),
                       strict=True))
    projects = []
    for project in document["projects"]:
        sessions = project["sessions"]
        projects.append({**project, "status_class": status_class(project["status"]),
                         "session_rows": [{**s, "status_class": status_class(s["status"])}
                                          for s in sessions[:MAX_HTML_SESSIONS]],
                         "sessions_hidden": max(0, len(sessions) - MAX_HTML_SESSIONS)})
    totals = document["totals"]
    return {
        "tool": TOOL, "created": document["createdAt"], "totals": totals,
        "overall_class": status_class(totals["status"]), "columns": columns, "projects": projects,
        "inputs": document["inputs"], "warnings": document["warnings"], **rollup_xnat.html_context(document),
    }


# --- the run -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RollupSummary:
    """What a roll-up run wrote and found: enough for the command to pick its exit code and log its line."""

    json_path: str
    csv_path: str
    html_path: str
    report_count: int  # reports read, including surveys found beside mitigation reports
    totals: Mapping[str, Any]  # the roll-up document's `totals`
    warnings: tuple[str, ...]

    @property
    def status(self) -> str:
        """The worst request status over every resource counted."""
        return str(self.totals["status"])

    def log_fields(self) -> dict[str, Any]:
        """The fields of the `rollup written` log line."""
        return {"output": self.json_path, "csv": self.csv_path, "html": self.html_path,
                "reports": self.report_count,
                **{k: v for k, v in self.totals.items() if k != "statusCounts"}}


def run_rollup(report_paths: Sequence[str], output: str) -> RollupSummary:
    """Read the reports (files, or folders searched for them), then write the roll-up's files into OUTPUT.

    A mitigation report's survey report is read too when it can be found. Logs each report read and each
    warning; the caller logs the `rollup written` line from the summary (`RollupSummary.log_fields`).
    """
    paths = find_reports(report_paths)
    builder = RollupBuilder()
    seen = {os.path.realpath(p) for p in paths}
    queue = list(paths)
    while queue:
        path = queue.pop(0)
        document = load_report(path)
        builder.add(document, path)
        log.info("report read", report=path, report_type=document["reportType"],
                 resources=len(sequence(document.get("resources"))))
        if document["reportType"] == "mitigation":
            survey = referenced_survey(path, document)
            if survey is None:
                builder.warnings.append(f"{path}: its survey report was not found; give it as a REPORT too")
            elif os.path.realpath(survey) not in seen:
                seen.add(os.path.realpath(survey))
                queue.append(survey)
        del document  # one report in memory at a time
    return finish_rollup(builder, output)


def finish_rollup(builder: RollupBuilder, output: str) -> RollupSummary:
    """Write the builder's roll-up into OUTPUT and log its warnings (shared with the roll-up fetched from XNAT)."""
    rollup = builder.result()
    written = write_rollup(output, rollup)
    for warning in rollup["warnings"]:
        log.warning("rollup", note=warning)
    return RollupSummary(json_path=written[ROLLUP_JSON], csv_path=written[ROLLUP_CSV],
                         html_path=written[ROLLUP_HTML], report_count=len(rollup["inputs"]),
                         totals=rollup["totals"], warnings=tuple(rollup["warnings"]))

