"""What a roll-up fetched from XNAT (`rollup --xnat-project ID`) adds to the roll-up document: the project's
sessions as XNAT lists them, and the three lists an admin needs after a bulk launch: the sessions never
surveyed, the reports older than the session's last modification, and the sessions whose reports could not
be fetched (with the error).

Records and their JSON, CSV and HTML forms only; the fetching is `mitigation.xnat.project_rollup`'s.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: XNAT's listing dates: XFT writes timestamps in the server's own zone, with no zone given
#: ("2019-03-05 16:46:37.103", the shape of NRG's experiment-listing fixtures). A report's own stamps are ISO UTC.
_XNAT_TIME = re.compile(r"(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(\.\d+)?")


def parse_xnat_time(text: object, zone: dt.tzinfo) -> dt.datetime | None:
    """A listing date as an aware moment (in XNAT's `zone`), or None when there is none or it cannot be read."""
    if not isinstance(text, str) or not text.strip():
        return None
    match = _XNAT_TIME.fullmatch(text.strip())
    if match is None:
        return None
    fraction = (match.group(3) or ".0")[1:7].ljust(6, "0")
    try:
        naive = dt.datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}.{fraction}")
    except ValueError:
        return None
    return naive.replace(tzinfo=zone)


def parse_report_time(text: object) -> dt.datetime | None:
    """A report's `finishedAt` (ISO 8601 with Z or an offset), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ListedSession:
    """One row of XNAT's experiment listing of the project."""

    id: str  # XNAT's experiment ID (accession number)
    label: str
    project: str  # the session's own project (another one for a session shared into this project)
    modified: dt.datetime | None  # last_modified, else insert_date (as XNAT's own survey service takes it)


@dataclass(frozen=True, slots=True)
class StaleReport:
    session: ListedSession
    report: str  # the report's file name in RESOURCE_SURVEY
    report_type: str
    finished: dt.datetime


@dataclass(frozen=True, slots=True)
class FetchProblem:
    session: ListedSession
    error: str
    status: int | None  # XNAT's HTTP status, None when XNAT did not answer


@dataclass
class XnatFindings:
    """Filled one session at a time while the reports are fetched; `document()` is the roll-up's `xnat` field."""

    host: str
    project: str
    grace: dt.timedelta
    sessions_listed: int = 0
    sessions_with_reports: int = 0
    reports_fetched: int = 0
    never_surveyed: list[ListedSession] = field(default_factory=list)
    stale: list[StaleReport] = field(default_factory=list)
    problems: list[FetchProblem] = field(default_factory=list)

    def check_age(self, session: ListedSession, report: str, document: Mapping[str, Any]) -> bool:
        """Record the report as stale when XNAT says the session changed after it (past the grace); True if so."""
        finished = parse_report_time(document.get("finishedAt") or document.get("startedAt"))
        if finished is None or session.modified is None or session.modified <= finished + self.grace:
            return False
        self.stale.append(StaleReport(session, report, str(document.get("reportType")), finished))
        return True

    def document(self) -> dict[str, Any]:
        def who(s: ListedSession) -> dict[str, Any]:
            return {"id": s.id, "label": s.label, "project": s.project, "lastModified": _iso(s.modified)}

        return {
            "host": self.host, "project": self.project, "modifiedGraceMinutes": self.grace.total_seconds() / 60,
            "sessionsListed": self.sessions_listed, "sessionsWithReports": self.sessions_with_reports,
            "reportsFetched": self.reports_fetched,
            "neverSurveyed": [who(s) for s in self.never_surveyed],
            "staleReports": [{**who(r.session), "report": r.report, "reportType": r.report_type,
                              "finishedAt": _iso(r.finished)} for r in self.stale],
            "fetchProblems": [{**who(p.session), "error": p.error, "status": p.status} for p in self.problems],
        }


def csv_rows(document: Mapping[str, Any], width: int) -> list[list[Any]]:
    """The `xnat` field as CSV rows (level, project, session, status, then blanks and a last `detail` column)."""
    xnat = document.get("xnat")
    if not isinstance(xnat, Mapping):
        return []
    blanks = [""] * (width - 5)
    rows: list[list[Any]] = []
    for s in xnat["neverSurveyed"]:
        rows.append(["never-surveyed", xnat["project"], s["label"], "", *blanks, "no report in RESOURCE_SURVEY"])
    for s in xnat["staleReports"]:
        rows.append(["stale-report", xnat["project"], s["label"], "", *blanks,
                     f"{s['report']} finished {s['finishedAt']}; session last modified {s['lastModified']}"])
    for s in xnat["fetchProblems"]:
        rows.append(["fetch-problem", xnat["project"], s["label"], "", *blanks, s["error"]])
    return rows


def html_context(document: Mapping[str, Any]) -> dict[str, Any]:
    xnat = document.get("xnat")
    return {"xnat": xnat if isinstance(xnat, Mapping) else None}
