"""`xnat-resource-survey rollup --xnat-project ID --output OUT`: the roll-up of a project after a bulk launch.

A bulk launch runs one container per session, each uploading its reports to the session's `RESOURCE_SURVEY`.
This lists the project's sessions in XNAT, fetches each session's survey and mitigation reports, and adds
them to the roll-up one session at a time (a session's reports are dropped before the next is fetched, so
memory does not grow with the project), then writes the roll-up as `rollup --output` does from files, with
the `xnat` field: the sessions never surveyed, the reports older than the session's last modification and
the sessions whose reports could not be fetched, with the error. A session that cannot be fetched is not
counted and the roll-up still completes; only the project listing itself failing stops the run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import structlog

from container_app.core.errors import ReportError
from container_app.mitigation.xnat.client import XnatClient
from container_app.mitigation.xnat.errors import XnatRequestError
from container_app.mitigation.xnat.project_reports import REPORT_RESOURCE, ProjectReports
from container_app.reports.rollup import RollupBuilder, RollupSummary, finish_rollup
from container_app.reports.rollup_inputs import parse_report_bytes
from container_app.reports.rollup_xnat import FetchProblem, ListedSession, XnatFindings
from container_app.support.progress import RunProgress

log = structlog.get_logger("xnat_resource_survey")

#: How long after a report a session may change in XNAT before the report counts as older than the session.
#: The container's own upload of its reports changes the session: XNAT saves the session to add the
#: RESOURCE_SURVEY resource (DefaultCatalogService.insertResourceCatalog, SaveItemHelper.authorizedSave on the
#: session), which sets its last_modified minutes after the report's finishedAt.
DEFAULT_GRACE = dt.timedelta(minutes=60)


@dataclass(frozen=True, slots=True)
class XnatRollupRequest:
    project: str
    output: str
    grace: dt.timedelta = DEFAULT_GRACE
    zone: dt.tzinfo = dt.UTC  # XNAT's own zone: its listings' dates carry none


@dataclass(frozen=True, slots=True)
class XnatRollupOutcome:
    summary: RollupSummary
    sessions: int
    never_surveyed: int
    stale_reports: int
    fetch_problems: int

    def log_fields(self) -> dict[str, Any]:
        return {**self.summary.log_fields(), "sessions_listed": self.sessions, "never_surveyed": self.never_surveyed,
                "stale_reports": self.stale_reports, "fetch_problems": self.fetch_problems}


def run_xnat_rollup(client: XnatClient, request: XnatRollupRequest,
                    progress: RunProgress | None = None) -> XnatRollupOutcome:
    """List the project's sessions, fetch and add each one's reports, write the roll-up into OUTPUT.

    `progress` (a person's terminal) counts the sessions rolled up; the log has a line per session anyway.
    """
    reports = ProjectReports(client, request.zone)
    sessions = reports.sessions(request.project)  # nothing to roll up without it: its error stops the run
    log.info("sessions listed", project=request.project, sessions=len(sessions))
    if progress is not None:
        progress.set_total(len(sessions))
    findings = XnatFindings(client.host, request.project, request.grace, sessions_listed=len(sessions))
    builder = RollupBuilder()
    for index, session in enumerate(sessions, 1):
        outcome, fetched, stale = _one_session(reports, builder, findings, request.project, session)
        log.info("session rolled up", session=session.id, label=session.label, outcome=outcome, reports=fetched,
                 stale=stale, n=index, of=len(sessions))
        if progress is not None:
            progress.advance()
    builder.xnat = findings.document()
    if findings.never_surveyed:
        builder.warnings.append(f"{len(findings.never_surveyed)} sessions have no reports in {REPORT_RESOURCE}: "
                                "never surveyed (xnat.neverSurveyed)")
    if findings.stale:
        builder.warnings.append(f"{len(findings.stale)} reports are older than their session's last modification "
                                "in XNAT: survey those sessions again (xnat.staleReports)")
    if findings.problems:
        builder.warnings.append(f"the reports of {len(findings.problems)} sessions could not be fetched and are not "
                                "counted (xnat.fetchProblems)")
    summary = finish_rollup(builder, request.output)
    return XnatRollupOutcome(summary, len(sessions), len(findings.never_surveyed), len(findings.stale),
                             len(findings.problems))


def _one_session(reports: ProjectReports, builder: RollupBuilder, findings: XnatFindings, project: str,
                 session: ListedSession) -> tuple[str, int, int]:
    """Fetch, check and add one session's reports: all of them or none. (outcome, reports added, stale ones)."""
    documents: list[tuple[str, dict[str, Any]]] = []
    try:
        names = reports.report_names(session.id)
        if not names:
            findings.never_surveyed.append(session)
            return "never surveyed", 0, 0
        for name in names:
            source = f"{session.label}/{REPORT_RESOURCE}/{name}"
            documents.append((name, parse_report_bytes(reports.download(session.id, name), source)))
    except XnatRequestError as exc:
        # Every XNAT error of one session is that session's problem, a 401/403 included (a session shared
        # from a project this user cannot read); the message names the call and status, never a file name.
        findings.problems.append(FetchProblem(session, str(exc), exc.status))
        return "fetch problem", 0, 0
    except ReportError as exc:
        findings.problems.append(FetchProblem(session, str(exc), None))
        return "fetch problem", 0, 0
    findings.sessions_with_reports += 1
    for name, document in documents:
        builder.add(document, f"{session.label}/{REPORT_RESOURCE}/{name}", project=project, session=session.label)
        findings.reports_fetched += 1
    # Only the session's latest report is judged: a mitigation changes the session after its own survey,
    # which is then older than the session by design.
    name, latest = max(documents, key=lambda d: str(d[1].get("finishedAt") or d[1].get("startedAt") or ""))
    stale = findings.check_age(session, name, latest)
    return "fetched", len(documents), int(stale)
