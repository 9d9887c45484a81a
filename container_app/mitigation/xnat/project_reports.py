"""The REST calls of a roll-up fetched from XNAT: a project's sessions, and the reports each session's
`RESOURCE_SURVEY` resource holds (where the Container Service's output handler puts what a container wrote to
/output: command.json, `session-reports`).

Calls go through `XnatClient` (bounded timeouts; GETs retried on no answer and on transient statuses).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from container_app.mitigation.xnat.client import XnatClient, quote_segment
from container_app.mitigation.xnat.errors import XnatNotFoundError
from container_app.reports.mitigation import MITIGATION_REPORT
from container_app.reports.rollup_xnat import ListedSession, parse_xnat_time
from container_app.reports.survey import SURVEY_REPORT

#: The session resource a container's reports are uploaded to (command.json's output handlers).
REPORT_RESOURCE = "RESOURCE_SURVEY"
#: The reports a roll-up reads from it, the survey first (a mitigation report joins its survey's totals).
REPORT_FILES = (SURVEY_REPORT, MITIGATION_REPORT)
#: XNAT's experiment listing gives `insert_date` by default but `last_modified` only when asked: both are
#: shortcuts of xnat:experimentData/meta (xnat-web XMLPathShortcuts, EXPERIMENT_DATA; the default columns
#: are SubjAssessmentAbst.getDefaultFields / ExperimentListResource.getDefaultFields: ID, project, date,
#: xsiType, label, insert_date).
LISTING_COLUMNS = "ID,label,project,xsiType,insert_date,last_modified"


def _rows(document: Any) -> list[dict[str, Any]]:
    try:
        rows = document["ResultSet"]["Result"]
    except (KeyError, TypeError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _is_image_session(xsi_type: str) -> bool:
    """Only image sessions are surveyed (the wrapper's context is xnat:imageSessionData; its kinds are all
    named `xnat:<modality>SessionData`); other experiments in the listing (assessments) are not sessions."""
    return not xsi_type or xsi_type.lower().endswith("sessiondata")


class ProjectReports:
    """A project's sessions and their uploaded reports, through one XNAT connection."""

    def __init__(self, client: XnatClient, zone: dt.tzinfo) -> None:
        self.client = client
        self.zone = zone

    def sessions(self, project: str) -> list[ListedSession]:
        """The project's image sessions (its own and those shared into it), as XNAT lists them, by label."""
        try:
            document = self.client.get_json(f"/data/projects/{quote_segment(project)}/experiments",
                                            {"columns": LISTING_COLUMNS}, what=f"the sessions of project {project}")
        except XnatNotFoundError as exc:
            raise XnatNotFoundError(f"XNAT has no project {project!r} (or does not show it to this user): {exc}",
                                    status=exc.status, method=exc.method, path=exc.path) from None
        found: dict[str, ListedSession] = {}
        for row in _rows(document):
            session_id = str(row.get("ID") or "")
            if not session_id or not _is_image_session(str(row.get("xsiType") or "")):
                continue
            # last_modified is empty for an object never changed since its insert; XNAT's own survey service
            # takes "changed since" the same way, for resources: coalesce(last_modified, insert_date)
            # (HibernateResourceSurveyRequestEntityService.QUERY_GENERATE_PROJECT_SURVEY_REQUESTS, xnat-web 1.8.10).
            modified = (parse_xnat_time(row.get("last_modified"), self.zone)
                        or parse_xnat_time(row.get("insert_date"), self.zone))
            found[session_id] = ListedSession(session_id, str(row.get("label") or session_id),
                                              str(row.get("project") or project), modified)
        return sorted(found.values(), key=lambda s: (s.label, s.id))

    def report_names(self, session_id: str) -> list[str] | None:
        """The report files at the top of the session's RESOURCE_SURVEY (survey first); None without the resource."""
        base = f"/data/experiments/{quote_segment(session_id)}/resources"
        labels = {str(r.get("label")) for r in _rows(self.client.get_json(base, what="the session's resources"))}
        if REPORT_RESOURCE not in labels:
            return None
        rows = _rows(self.client.get_json(f"{base}/{REPORT_RESOURCE}/files", what=f"the files of {REPORT_RESOURCE}"))
        names = set()
        for row in rows:
            name = str(row.get("Name") or "")
            uri = str(row.get("URI") or "")
            # Only the container's own /output level: a re-survey's reports lie in a subfolder.
            if name in REPORT_FILES and (not uri or uri.endswith(f"/files/{name}")):
                names.add(name)
        return [n for n in REPORT_FILES if n in names]

    def download(self, session_id: str, name: str) -> bytes:
        path = f"/data/experiments/{quote_segment(session_id)}/resources/{REPORT_RESOURCE}/files/{quote_segment(name)}"
        return self.client.get_bytes(path, what=f"downloading {name}")
