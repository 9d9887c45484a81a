"""The stand-in's survey requests and what they carry: statuses, the request JSON, a survey's findings.

Shared by the surveyor, the mitigator and the service that runs them (surveys.py); it imports none of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from container_app.core.vocabulary import RequestStatus
from tests.xnat_standin.archive import Resource

# XNAT's request statuses, spelled as XNAT spells them (the same enum the tool reports with).
Status = RequestStatus


CLOSING = frozenset({Status.CONFORMING, Status.NONCOMPLIANT, Status.RESOURCE_DELETED, Status.CANCELED, Status.ERROR})
OPEN_SURVEY_STATUSES = (Status.CREATED, Status.QUEUED_FOR_SURVEY, Status.SURVEYING, Status.DIVERGENT)


def millis(when: float) -> int:
    """XNAT's JSON times: milliseconds since the epoch."""
    return int(when * 1000)


@dataclass
class SurveyRequest:
    """One resource survey request, as XNAT's ResourceSurveyRequest entity holds it."""

    id: int
    resource: Resource
    requester: str
    request_time: str
    status: Status = Status.CREATED
    created: float = field(default_factory=time.time)
    timestamp: float = field(default_factory=time.time)
    closing_date: float | None = None
    mitigation_requester: str | None = None
    survey_report: dict[str, Any] | None = None
    mitigation_report: dict[str, Any] | None = None
    fail_mitigation: bool = False
    # The survey's findings, with paths, for the mitigation.
    findings: Findings | None = None

    @property
    def is_open(self) -> bool:
        return self.closing_date is None

    def set_status(self, status: Status) -> None:
        self.status = status
        self.timestamp = time.time()
        if status in CLOSING:
            self.closing_date = self.timestamp

    def to_json(self) -> dict[str, Any]:
        r = self.resource
        s = r.session
        return {
            "id": self.id,
            "created": millis(self.created),
            "timestamp": millis(self.timestamp),
            "enabled": True,
            "disabled": 0,
            "resourceId": r.id,
            "rsnStatus": self.status.value,
            "projectId": s.project,
            "subjectId": s.subject_id,
            "experimentId": s.id,
            "xsiType": r.session_xsi_type,
            # XNAT's entity: `scanId` is the scan's database key (xnat_imagescandata_id), `scanLabel` the scan's
            # ID as users see it, `scanDescription` its series description (HibernateResourceSurveyRequestEntity-
            # Service.TEMPLATE_GENERATE_SURVEY_REQUESTS: `sc.xnat_imagescandata_id AS scan_id, sc.id AS
            # scan_label, sc.series_description AS scan_description`; oncai/xnat 1.8.7+).
            "scanId": r.session.scan_pk(r.scan_id) if r.scan_id else 0,
            "resourceLabel": r.label,
            "resourceUri": str(r.catalog_path or r.path),
            "subjectLabel": s.subject_label,
            "experimentLabel": s.label,
            "scanLabel": r.scan_id or "",
            "scanDescription": r.first_header("SeriesDescription") if r.scan_id else "",
            "workflowId": 0,
            "requester": self.requester,
            "mitigationRequester": self.mitigation_requester,
            "requestTime": self.request_time,
            "closingDate": millis(self.closing_date) if self.closing_date is not None else None,
            "surveyReport": self.survey_report,
            "mitigationReport": self.mitigation_report,
        }


@dataclass
class Findings:
    """What a survey found, with paths (the report keeps strings): the mitigation works from these."""

    total_entries: int
    uids: dict[str, list[str]]
    bad_files: list[Path]
    mismatched: dict[Path, str]
    duplicates: dict[tuple[str, str], dict[Path, str]]
    non_actionable: dict[tuple[str, str], dict[Path, str]]

    @property
    def status(self) -> Status:
        if self.bad_files or self.mismatched or self.duplicates:
            return Status.DIVERGENT
        return Status.NONCOMPLIANT if self.non_actionable else Status.CONFORMING


def as_xnat_answers(report: dict[str, Any], *, absent_when_empty: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A report as a running XNAT answers it: an empty collection is `null`, never `[]` or `{}`, except the
    fields in `absent_when_empty`, which are then left out.

    NRG's REST fixtures (../shared/conformance/xnat-rest-tests/, e.g. survey_with_mitigation/
    sample1_series_6_subset_badfile.json) show `"badFiles": null`, `"movedFiles": null`, `"backupErrors": null`
    for empty collections, and `retainedFiles` (survey_with_mitigation/*_subset_duplication_si.json, the
    only ones with a file already at its name) or `nonActionableDuplicates`
    (survey/sample1_series_4_subset_nonactionable.json) only when there is something in them.
    """
    out: dict[str, Any] = {}
    for key, value in report.items():
        empty = value is None or (isinstance(value, dict | list) and not value)
        if empty and key in absent_when_empty:
            continue
        out[key] = None if empty else value
    return out


def error_text(exc: BaseException) -> str:
    """An exception as XNAT's reports spell it."""
    return f"Error: ({type(exc).__name__}) {exc}"
