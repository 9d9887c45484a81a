"""XNAT's own survey and mitigation API (XNAT 1.8.7+), the `api` way: a protocol of its own.

Per resource: ask XNAT to survey it, compare XNAT's report with ours (mismatched files and duplicate
groups, by file name; a different naming template or a disagreement refuses), queue XNAT's
mitigation, wait (bounded), fetch XNAT's mitigation report. XNAT backs up and renames catalog entries
in place (they stay `cat:dcmEntry`), so this way does not follow the backup-then-change protocol of
the file-system executor and the file-operations way: its journal steps are
`JournalStep.XNAT_SURVEY` and `JournalStep.XNAT_MITIGATION` (start, queued or adopted, done). A
relaunch adopts what XNAT already holds: a mitigation queued is waited for, an open survey that
agrees with ours is used.

XNAT's survey takes scan resources whose *format* is DICOM, whatever their label; any other answers 404
(`ResourceSurveyServiceImpl.queueResourceSurvey`, oncai/xnat 1.8.7+). A resource whose format XNAT's
listing gives as something else is not sent; a 404 is explained as that.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import structlog

from container_app.core.plan import ResourcePlan
from container_app.core.vocabulary import JournalPhase, JournalStep, ResourceStatus, XnatWay
from container_app.mitigation.xnat.context import WayContext
from container_app.mitigation.xnat.errors import (
    XnatConflictError,
    XnatNotFoundError,
    XnatRequestError,
    XnatServerError,
    XnatUnavailableError,
)
from container_app.mitigation.xnat.mount import catalog_flags, mount_staleness
from container_app.mitigation.xnat.results import XnatResourceResult, status_after, untouched_result
from container_app.mitigation.xnat.server_reports import actions_from_xnat, compare_surveys
from container_app.mitigation.xnat.target import DICOM_FORMAT, XnatTarget

log = structlog.get_logger("xnat_resource_survey.xnat_executor")

SURVEY_WORKING = frozenset({"CREATED", "QUEUED_FOR_SURVEY", "SURVEYING"})
MITIGATION_WORKING = frozenset({"QUEUED_FOR_MITIGATION", "MITIGATING"})
SURVEY_DONE = frozenset({"DIVERGENT", "CONFORMING", "NONCOMPLIANT"})
MITIGATION_DONE = frozenset({"CONFORMING", "NONCOMPLIANT"})


def not_dicom_reason(target: XnatTarget) -> str:
    """Why XNAT's survey API does not take this resource, in words an admin can act on."""
    shown = repr(target.format) if target.format else "no format"
    return (f"XNAT's survey and mitigation API takes only scan resources whose format is {DICOM_FORMAT}, and XNAT "
            f"lists this resource ({target.label!r} on scan {target.scan}) with {shown}: XNAT does not survey it. "
            f"Nothing was changed. If its files are DICOM, set the resource's format to {DICOM_FORMAT} in XNAT "
            "and run again")


def _is_open(request: Mapping[str, Any], status: str) -> bool:
    return str(request.get("rsnStatus", "")).upper() == status and not request.get("closingDate")


class XnatApiExecutor:
    """XNAT's own survey and mitigation (XNAT 1.8.7+): catalog entries are renamed in place."""

    def __init__(self, context: WayContext) -> None:
        self.c = context

    def execute(self, plan: ResourcePlan, target: XnatTarget, why: str) -> XnatResourceResult:
        c = self.c
        common: dict[str, Any] = {"way": XnatWay.API, "way_reason": why, "target": target}
        if target.resource_id is None:
            return untouched_result(plan, ResourceStatus.FAILED, "XNAT did not give the resource's numeric ID",
                                    **common)
        rid = target.resource_id
        resource = plan.resource_path
        if target.is_dicom_format is False:
            return untouched_result(plan, ResourceStatus.FAILED, not_dicom_reason(target), **common)
        latest = c.archive.latest_request(rid)
        if latest is not None and str(latest.get("rsnStatus", "")).upper() in MITIGATION_WORKING:
            # Queued by an earlier run (or someone else): wait for it, report what XNAT did.
            request_id = int(latest["id"])
            c.journal.append(JournalStep.XNAT_MITIGATION, JournalPhase.ADOPTED, resource=resource, requestId=request_id)
            c.journal.commit()
            log.info("XNAT is already mitigating this resource; waiting for it", resource=resource,
                     request=request_id)
            return self._finish(plan, request_id, common, adopted=True)

        stale = mount_staleness(c.root, plan)
        if stale is not None:
            return untouched_result(plan, ResourceStatus.STALE, stale, **common)

        ours = c.survey.get(resource, {})
        comparison: dict[str, Any] | None = None
        if latest is not None and _is_open(latest, "DIVERGENT"):
            # An open survey of XNAT's, from an earlier run or someone else: use it if it says what ours says;
            # otherwise it is out of date: cancel it (it only holds a report) and ask XNAT to survey afresh.
            request_id = int(latest["id"])
            comparison = compare_surveys(plan, ours, c.archive.survey_report(request_id))
            if comparison["verdict"] == "agree":
                status = "DIVERGENT"
                c.journal.append(JournalStep.XNAT_SURVEY, JournalPhase.ADOPTED, resource=resource, requestId=request_id)
            else:
                c.archive.cancel(request_id)
                comparison, latest = None, None
        if comparison is None:
            started_ms = int(time.time() * 1000)
            c.journal.append(JournalStep.XNAT_SURVEY, JournalPhase.START, resource=resource, resourceId=rid)
            try:
                request_id = self._start_survey(rid, latest, started_ms)
            except XnatNotFoundError:
                # XNAT makes survey requests for DICOM-format resources only; its listing did not give the format.
                reason = (f"XNAT's survey API answered 404 for resource {rid}: it takes only scan resources whose "
                          f"format is {DICOM_FORMAT} (XNAT's resource listing did not give this one's format), or "
                          "the resource is gone. Nothing was changed; check the resource's format in XNAT")
                return untouched_result(plan, ResourceStatus.FAILED, reason, **common)
            c.journal.append(JournalStep.XNAT_SURVEY, JournalPhase.QUEUED, resource=resource, requestId=request_id)
            c.journal.commit()
            status = self._wait(request_id, SURVEY_WORKING)
        common["request_id"] = request_id
        if status in SURVEY_WORKING:
            return untouched_result(plan, ResourceStatus.FAILED, f"XNAT's survey (request {request_id}) did not finish "
                                    f"within {c.wait_s:.0f} s; nothing was changed", request_status=status, **common)
        if status not in SURVEY_DONE:
            return untouched_result(plan, ResourceStatus.FAILED, f"XNAT's survey (request {request_id}) ended "
                                    f"{status}; nothing was changed", request_status=status, **common)
        if comparison is None:
            comparison = compare_surveys(plan, ours, c.archive.survey_report(request_id))
        common["xnat_survey"] = comparison
        c.journal.append(JournalStep.XNAT_SURVEY, JournalPhase.DONE, resource=resource, requestId=request_id,
                         status=status, verdict=comparison["verdict"])
        c.journal.commit()
        if comparison["verdict"] != "agree" or status != "DIVERGENT":
            if status == "DIVERGENT":
                c.archive.cancel(request_id)  # our own request: leave no open request behind that nobody acts on
            if comparison["verdict"] == "template":
                reason = (f"XNAT expects other names than this survey for {comparison['filesWithOtherExpectedNames']}"
                          " file(s): XNAT's dicomFileNameTemplate differs from --template. Set --template to the "
                          "site's template (Administer > Site Administration > DICOM); nothing was changed")
                return untouched_result(plan, ResourceStatus.FAILED, reason, request_status="DIVERGENT", **common)
            reason = (f"XNAT's own survey disagrees with this one ({comparison['filesSeenByOneSurveyOnly']} file(s) "
                      "mismatched or duplicated in one survey only): the resource changed since, or files are not "
                      "DICOM entries in XNAT's catalog. Nothing was changed; survey again")
            return untouched_result(plan, ResourceStatus.STALE, reason, request_status="DIVERGENT", **common)

        self._queue_mitigation(request_id, resource)
        return self._finish(plan, request_id, common, adopted=False)

    def _start_survey(self, resource_id: int, latest: dict[str, Any] | None, started_ms: int) -> int:
        c = self.c
        if latest is not None and str(latest.get("rsnStatus", "")).upper() in SURVEY_WORKING:
            return int(latest["id"])  # a survey is already under way: use it
        last: XnatRequestError | None = None
        for delay in [*c.archive.client.retry.delays(), None]:
            try:
                return c.archive.start_survey(resource_id)
            except XnatConflictError as exc:  # an open request is being worked on
                last = exc
            except (XnatUnavailableError, XnatServerError) as exc:
                last = exc  # it may have been queued nonetheless: look before asking again
            found = c.archive.latest_request(resource_id)
            if found is not None:
                created = found.get("created") or found.get("timestamp") or 0
                status = str(found.get("rsnStatus", "")).upper()
                if status in SURVEY_WORKING or (isinstance(created, int) and created >= started_ms - 1000
                                                and status in SURVEY_DONE):
                    return int(found["id"])
                if _is_open(found, "DIVERGENT"):  # an older open survey blocks a new one
                    c.archive.cancel(int(found["id"]))
            if delay is None:
                break
            time.sleep(delay)
        assert last is not None
        raise last

    def _queue_mitigation(self, request_id: int, resource: str) -> None:
        c = self.c
        c.journal.append(JournalStep.XNAT_MITIGATION, JournalPhase.START, resource=resource, requestId=request_id)
        c.journal.commit()
        last: XnatRequestError | None = None
        for delay in [*c.archive.client.retry.delays(), None]:
            try:
                c.archive.start_mitigation(request_id, c.run_id)
                break
            except (XnatConflictError, XnatUnavailableError, XnatServerError) as exc:
                last = exc
            status = c.archive.request_status(request_id)
            if status in MITIGATION_WORKING or status in MITIGATION_DONE or status == "ERROR":
                break  # the earlier attempt reached XNAT
            if isinstance(last, XnatConflictError) or delay is None:
                raise last
            time.sleep(delay)
        c.journal.append(JournalStep.XNAT_MITIGATION, JournalPhase.QUEUED, resource=resource, requestId=request_id)
        c.journal.commit()

    def _wait(self, request_id: int, working: frozenset[str]) -> str:
        deadline = time.monotonic() + self.c.wait_s
        pause = 0.1
        while True:
            status = self.c.archive.request_status(request_id)
            if status not in working or time.monotonic() >= deadline:
                return status
            time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
            pause = min(pause * 1.5, 5.0)

    def _finish(self, plan: ResourcePlan, request_id: int, common: dict[str, Any], *,
                adopted: bool) -> XnatResourceResult:
        c = self.c
        common = {**common, "request_id": request_id}
        status = self._wait(request_id, MITIGATION_WORKING | SURVEY_WORKING)
        if status in MITIGATION_WORKING:
            waiting = (f"XNAT has not finished mitigating within {c.wait_s:.0f} s (request {request_id} is "
                       f"{status}); it carries on: run again later to collect its report")
            return untouched_result(plan, ResourceStatus.PARTIAL, waiting, request_status=status, **common)
        report = c.archive.mitigation_report(request_id) if status in MITIGATION_DONE or status == "ERROR" else None
        if report is None:
            return untouched_result(plan, ResourceStatus.FAILED, f"XNAT's mitigation (request {request_id}) ended "
                                    f"{status} without a mitigation report", request_status=status, **common)
        c.journal.append(JournalStep.XNAT_MITIGATION, JournalPhase.DONE, resource=plan.resource_path,
                         requestId=request_id, status=status)
        c.journal.commit()
        results, converted = actions_from_xnat(plan, c.survey.get(plan.resource_path, {}), report)
        results, counts = catalog_flags(c.root, plan, results)
        common["catalog_entries"] = counts
        extra_error = bool(converted["catalogWriteError"] or converted["resourceSaveError"]) or status == "ERROR"
        outcome = status_after(results, plan, extra_error)
        reason: str | None = None
        if adopted:
            reason = f"finished XNAT's mitigation request {request_id}, queued by an earlier run"
        if status == "ERROR":
            reason = f"XNAT's mitigation (request {request_id}) ended in ERROR; see the errors per file"
        return XnatResourceResult(plan, outcome, str(report.get("cachePath") or ""), tuple(results), reason=reason,
                                  xnat_report=converted, request_status=status, **common)
