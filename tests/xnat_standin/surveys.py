"""The stand-in's resource survey and mitigation service (XNAT 1.8.7+'s, as its source describes it).

Requests move through XNAT's statuses on a background worker, one step every `delay` seconds:
CREATED -> QUEUED_FOR_SURVEY -> SURVEYING -> DIVERGENT | CONFORMING | NONCOMPLIANT | ERROR, then
QUEUED_FOR_MITIGATION -> MITIGATING -> CONFORMING | NONCOMPLIANT | ERROR.

This module keeps the requests and runs the worker; the work itself is the surveyor's (surveyor.py, as
XNAT's ResourceSurveyor) and the mitigator's (mitigator.py, as XNAT's ResourceMitigator), and the request
and its statuses are survey_requests.py's. Those names are importable from here too, as before the split.
"""

from __future__ import annotations

import datetime
import itertools
import queue
import threading
from pathlib import Path

from container_app.core import naming
from tests.xnat_standin.archive import Archive, Resource, StandInError
from tests.xnat_standin.mitigator import mitigate
from tests.xnat_standin.survey_requests import (
    CLOSING,
    OPEN_SURVEY_STATUSES,
    Findings,
    Status,
    SurveyRequest,
    as_xnat_answers,
    error_text,
)
from tests.xnat_standin.surveyor import header_lookup, survey, survey_report

__all__ = [
    "CLOSING",
    "OPEN_SURVEY_STATUSES",
    "Findings",
    "Status",
    "SurveyRequest",
    "SurveyService",
    "header_lookup",
    "mitigate",
    "survey",
    "survey_report",
]


class SurveyService:
    """Survey requests and the worker that moves them through their statuses."""

    def __init__(self, archive: Archive, template: naming.NamingTemplate, cache_root: Path, delay: float) -> None:
        self.archive = archive
        self.template = template
        self.cache_root = cache_root
        self.delay = delay
        self._requests: dict[int, SurveyRequest] = {}
        self._ids = itertools.count(1)
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="standin-survey-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._worker.join(timeout=5)

    # --- lookups (callers hold archive.lock) ------------------------------------------------------

    def request(self, request_id: int) -> SurveyRequest:
        found = self._requests.get(request_id)
        if found is None:
            raise StandInError(404, f"the stand-in has no resource survey request {request_id}")
        return found

    def latest_for(self, resource_id: int) -> SurveyRequest:
        found = [r for r in self._requests.values() if r.resource.id == resource_id]
        if not found:
            raise StandInError(404, f"no resource survey request found for resource ID {resource_id}")
        return max(found, key=lambda r: r.id)

    def open_for(self, resource_id: int) -> SurveyRequest | None:
        found = [r for r in self._requests.values() if r.resource.id == resource_id and r.is_open]
        return max(found, key=lambda r: r.id) if found else None

    def for_project(self, project: str) -> list[SurveyRequest]:
        return sorted((r for r in self._requests.values() if r.resource.session.project == project),
                      key=lambda r: r.id)

    # --- actions (callers hold archive.lock) ------------------------------------------------------

    def queue_survey(self, resource: Resource, requester: str) -> SurveyRequest:
        request = self.open_for(resource.id)
        if request is None:
            stamp = datetime.datetime.now()
            request = SurveyRequest(next(self._ids), resource, requester,
                                    stamp.strftime("%Y%m%d_%H%M%S") + f"{stamp.microsecond // 1000:03d}")
            self._requests[request.id] = request
        if request.status is not Status.CREATED:
            raise StandInError(409, f'The resource survey request for resource {resource.id} should be "CREATED" '
                                    f'but instead is "{request.status}"')
        self._queue.put(("survey", request.id))
        return request

    def queue_mitigation(self, request: SurveyRequest, requester: str, *, fail: bool) -> SurveyRequest:
        if request.status is not Status.DIVERGENT:
            raise StandInError(409, f'The resource survey request {request.id} should be "DIVERGENT" but instead is '
                                    f'"{request.status}"')
        request.mitigation_requester = requester
        request.fail_mitigation = fail
        request.set_status(Status.QUEUED_FOR_MITIGATION)
        self._queue.put(("mitigate", request.id))
        return request

    def cancel(self, request: SurveyRequest) -> int:
        if not request.is_open or request.status in (Status.SURVEYING, Status.MITIGATING):
            raise StandInError(404, "The specified ID does not exist or the request can not be canceled.")
        request.set_status(Status.CANCELED)
        return request.id

    # --- the worker -------------------------------------------------------------------------------

    def _step(self, request: SurveyRequest, status: Status) -> bool:
        if self._stop.wait(self.delay):
            return False
        with self.archive.lock:
            if request.status is Status.CANCELED:
                return False
            request.set_status(status)
        return True

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            kind, request_id = item
            with self.archive.lock:
                request = self._requests[request_id]
            try:
                if kind == "survey":
                    self._run_survey(request)
                else:
                    self._run_mitigation(request)
            except Exception as exc:  # an error in the stand-in's own work ends the request in ERROR
                with self.archive.lock:
                    request.set_status(Status.ERROR)
                    request.mitigation_report = request.mitigation_report or (
                        as_xnat_answers({"resourceSurveyRequestId": request.id, "cachePath": "", "movedFiles": None,
                                         "removedFiles": None, "backupErrors": None, "moveErrors": None,
                                         "deleteErrors": None, "catalogWriteError": None,
                                         "resourceSaveError": error_text(exc), "totalMovedFiles": 0,
                                         "totalRemovedFiles": 0, "totalFileErrors": 0})
                        if kind == "mitigate" else None)

    def _run_survey(self, request: SurveyRequest) -> None:
        if not self._step(request, Status.QUEUED_FOR_SURVEY) or not self._step(request, Status.SURVEYING):
            return
        if self._stop.wait(self.delay):
            return
        with self.archive.lock:
            if request.status is Status.CANCELED:
                return
            findings = survey(request.resource, self.template)
            request.findings = findings
            request.survey_report = survey_report(request.id, findings)
            request.set_status(findings.status)

    def _run_mitigation(self, request: SurveyRequest) -> None:
        if not self._step(request, Status.MITIGATING):
            return
        if self._stop.wait(self.delay):
            return
        with self.archive.lock:
            assert request.findings is not None
            report, failed = mitigate(request, request.findings, self.cache_root)
            request.mitigation_report = report
            if failed:
                request.set_status(Status.ERROR)
            else:
                request.set_status(Status.NONCOMPLIANT if request.findings.non_actionable else Status.CONFORMING)
