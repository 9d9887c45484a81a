"""Carrying out a mitigation plan through XNAT's REST API (inside XNAT the archive mount is read-only).

Two ways, chosen per server by probing what it offers:

- `api` (`api_way`): XNAT 1.8.7+ has its own survey and mitigation API; XNAT renames catalog entries
  in place and they stay `cat:dcmEntry`.
- `file-operations` (`file_operations_way`, only with `--rest-file-operations=allow`, on servers
  without that API): verified backups in the session resource `RESOURCE_SURVEY_BACKUP` first, then
  renames by upload-then-delete; entries made by an upload are plain `cat:entry`.

Without the API and with file operations refused (the default) nothing is changed.

Every step checks XNAT's state before it acts, so a relaunch after a crash finishes from what XNAT
holds. No original is deleted before a verified copy of it exists in XNAT.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from container_app.core.deidentification import less_deidentified_kept_by_newest
from container_app.core.errors import FileProblem, ResolveProblem
from container_app.core.outcomes import ResourceResult
from container_app.core.plan import ResourcePlan
from container_app.core.vocabulary import KeepPolicy, ResourceStatus, RestFileOperations, XnatWay
from container_app.mitigation.journal import Journal
from container_app.mitigation.request import MitigationRequest, Surveyor
from container_app.mitigation.xnat.api_way import XnatApiExecutor
from container_app.mitigation.xnat.archive import BACKUP_RESOURCE, XnatArchive
from container_app.mitigation.xnat.client import XnatClient, version_tuple
from container_app.mitigation.xnat.context import WayContext
from container_app.mitigation.xnat.errors import item_failure
from container_app.mitigation.xnat.file_operations_way import XnatFileOpsExecutor
from container_app.mitigation.xnat.mount import listing_verdict
from container_app.mitigation.xnat.results import XnatResourceResult, untouched_result
from container_app.mitigation.xnat.target import TargetResolver
from container_app.support.shared_data import is_shared_data_tree

log = structlog.get_logger("xnat_resource_survey.xnat_executor")

#: The first XNAT version with its own resource survey and mitigation API (NRG's REST tests of it,
#: TestFileMitigation, are marked "added in 1.8.7"; ResourceSurveyApi is in xnat-web 1.8.7).
API_SINCE = (1, 8, 7)
API_SINCE_TEXT = ".".join(map(str, API_SINCE))


@dataclass
class XnatExecutor:
    """The `xnat` executor: resolves each resource in XNAT, then takes the way the server allows."""

    client: XnatClient
    request: MitigationRequest
    root: str
    run_id: str
    journal: Journal
    survey_report: Mapping[str, Any]
    name: str = "xnat"
    way: XnatWay | None = None
    way_reason: str | None = None
    mitigation_api: bool | None = None
    _probed: bool = False
    _resolver: TargetResolver | None = None
    _context: WayContext | None = None

    def __post_init__(self) -> None:
        archive = XnatArchive(self.client)
        self._resolver = TargetResolver(archive, session_id=self.request.xnat_session,
                                        project_id=self.request.xnat_project, scan_uri=self.request.xnat_scan)
        survey = {r["path"]: r for r in self.survey_report.get("resources", [])}
        self._context = WayContext(archive, self.root, self.run_id, self.journal, survey, self.request.xnat_timeout)

    def execute_batch(self, plans: Sequence[ResourcePlan]) -> list[ResourceResult]:
        """One resource after the other: each is its own XNAT request sequence, so nothing is shared."""
        return [self.execute(plan) for plan in plans]

    def execute(self, plan: ResourcePlan) -> ResourceResult:
        assert self._resolver is not None and self._context is not None
        with item_failure(ResolveProblem) as failure:
            target = self._resolver.resolve(plan)
        if failure.error is not None:
            return untouched_result(plan, ResourceStatus.FAILED, f"{failure.error}; nothing was changed")
        if not self._probed:
            with item_failure() as failure:
                self._choose(target.project)
            if failure.error is not None:
                self._probed = False  # ask again for the next resource
                return untouched_result(plan, ResourceStatus.FAILED, "cannot tell whether XNAT has its own mitigation "
                                        f"API ({failure.error}); nothing was changed", target=target)
        if self.way is None:
            return untouched_result(plan, ResourceStatus.FAILED, self.way_reason or "refused", target=target,
                                    way_reason=self.way_reason, request_status="DIVERGENT")
        way, way_reason = self.way, self.way_reason or ""
        if way is XnatWay.API:
            guard = self._deidentification_guard(plan)
            if guard is not None and self.request.rest_file_operations is not RestFileOperations.ALLOW:
                return untouched_result(plan, ResourceStatus.FAILED, guard, target=target, way_reason=guard,
                                        request_status="DIVERGENT")
            if guard is not None:  # the admin allowed file operations: our plan keeps the more de-identified copy
                way, way_reason = XnatWay.FILE_OPERATIONS, f"{guard}; --rest-file-operations=allow: file operations"
                log.warning("resource not handed to XNAT's mitigation", resource=plan.resource_path,
                            way=way.value, because="XNAT would keep a less de-identified copy")
        executor = (XnatApiExecutor(self._context) if way is XnatWay.API else XnatFileOpsExecutor(self._context))
        with item_failure(FileProblem) as failure:
            return executor.execute(plan, target, way_reason)
        # Whatever was done is safe (no delete before a verified backup); a rerun finishes from XNAT's state.
        return untouched_result(plan, ResourceStatus.FAILED, f"stopped on an XNAT error: {failure.error}",
                                target=target, way=self.way, way_reason=self.way_reason)

    def _deidentification_guard(self, plan: ResourcePlan) -> str | None:
        """Why this resource must not go to XNAT's mitigation API, or None (issue 15).

        XNAT's mitigation keeps the newest copy of a duplicate and never looks inside it (ResourceMitigationHelper,
        1.8.7+; newest by file time, as our --keep newest models it): where that copy is less de-identified than
        another, or the copies' signals disagree, XNAT would keep the one that discloses more. Keywords only.
        """
        assert self._context is not None
        resource = self._context.survey.get(plan.resource_path)
        if resource is None or not less_deidentified_kept_by_newest(resource):
            return None
        keywords: set[str] = set()
        for group in resource.get("duplicateGroups") or ():
            deidentification = group.get("deidentification") or {}
            keywords.update(deidentification.get("lookAt") or ())
            for said in (deidentification.get("because") or {}).values():
                keywords.update(said)
        shown = ", ".join(sorted(keywords)) or "the copies' de-identification signals"
        return ("not handed to XNAT's mitigation: XNAT keeps the newest copy of a duplicate, and here that copy is "
                f"less de-identified than another, or the copies' signals disagree (look at: {shown}); nothing was "
                "changed. Rerun with --rest-file-operations=allow to have this tool keep the more de-identified copy, "
                "or resolve the copies by hand")

    def _choose(self, project: str) -> None:
        assert self._context is not None
        self._probed = True
        version = self.client.version()
        shown = f"XNAT {version}" if version else "this XNAT"
        self.mitigation_api = self._context.archive.has_mitigation_api(project)
        if self.mitigation_api:
            self.way = XnatWay.API
            self.way_reason = (f"{shown} has its own resource survey and mitigation API: XNAT surveys, backs up "
                               "and renames catalog entries in place (they stay cat:dcmEntry with their UIDs)")
            if self.request.keep is not KeepPolicy.NEWEST:
                self.way_reason += (f"; XNAT keeps the newest copy of a duplicate, so --keep {self.request.keep.value}"
                                    " does not apply")
                log.warning("XNAT's mitigation keeps the newest copy of a duplicate; --keep is not applied",
                            keep=self.request.keep.value)
        elif self.request.rest_file_operations is RestFileOperations.ALLOW:
            self.way = XnatWay.FILE_OPERATIONS
            self.way_reason = (f"{shown} has no resource mitigation API (XNAT {API_SINCE_TEXT} or later has it) and "
                               "--rest-file-operations=allow: files are backed up to the session resource "
                               f"{BACKUP_RESOURCE}, then renamed by upload-then-delete; the catalog entries of "
                               "renamed files become plain cat:entry (no UID or instanceNumber)")
        else:
            self.way = None
            older = (" (it reports version " + version + ")") if version and version_tuple(version) < API_SINCE else ""
            self.way_reason = (f"{shown} has no resource survey and mitigation API{older} and REST file operations "
                               "are refused (--rest-file-operations=refuse, the default): nothing was changed. "
                               f"Upgrade XNAT to {API_SINCE_TEXT} or later to use XNAT's own mitigation, or rerun with "
                               "--rest-file-operations=allow, knowing that renamed files then get plain cat:entry "
                               "catalog entries (no UID or instanceNumber), which XNAT's survey and snapshots ignore")
            log.error("mitigation refused", reason=self.way_reason)
        log.info("XNAT mitigation way chosen", way=None if self.way is None else self.way.value,
                 xnat_version=version, mitigation_api=self.mitigation_api)

    def server_document(self) -> dict[str, Any]:
        return {"host": self.client.host, "version": self.client.version() if self._probed else None,
                "mitigationApi": self.mitigation_api, "way": None if self.way is None else self.way.value,
                "wayReason": self.way_reason}

    def confirm(self, results: Sequence[ResourceResult], survey: Surveyor, output: str) -> list[ResourceResult]:
        """Record what the archive holds now: a re-survey of the mount (a read-only, live view of the archive),
        or, where the mount is not a live view (the Container Service's tree of a project's shared data,
        support.shared_data), XNAT's own file listing of each changed resource."""
        changed = [r for r in results if isinstance(r, XnatResourceResult) and r.way is not None
                   and r.status in (ResourceStatus.MITIGATED, ResourceStatus.PARTIAL)]
        if not changed:
            return list(results)
        snapshot = is_shared_data_tree(self.root)
        by_listing = [r for r in changed if snapshot or (r.target is not None and r.target.shared_into)]
        confirmed = {id(r): self._confirm_by_listing(r, snapshot) for r in by_listing}
        if len(by_listing) < len(changed):
            resurveyed = self._confirm_by_resurvey([r for r in changed if id(r) not in confirmed], survey, output)
            confirmed.update(resurveyed)
        return [confirmed.get(id(r), r) for r in results]

    def _confirm_by_listing(self, result: XnatResourceResult, snapshot: bool) -> XnatResourceResult:
        assert self._context is not None and result.target is not None
        why = ("the mount is the Container Service's snapshot of a project's shared data" if snapshot else
               f"the session is shared into project {result.target.shared_into}, so the mount is a snapshot")
        with item_failure() as failure:
            listed = set(self._context.archive.files(result.target.url))
        if failure.error is not None:
            log.warning("XNAT's listing after mitigation could not be read", resource=result.plan.resource_path,
                        error=str(failure.error))
            return result
        verdict = listing_verdict(result, listed)
        update: dict[str, Any] = {"resurvey_status": result.request_status if verdict is None else "DIVERGENT"}
        if verdict is None:
            if result.status is ResourceStatus.MITIGATED and result.reason is None:
                update["reason"] = f"confirmed through XNAT's file listing ({why}, not a live view)"
        elif result.status is ResourceStatus.MITIGATED:
            update["status"] = ResourceStatus.PARTIAL
            update["reason"] = f"XNAT's file listing after mitigation {verdict} ({why})"
        log.info("confirmed through XNAT's listing", resource=result.plan.resource_path, agrees=verdict is None)
        return dataclasses.replace(result, **update)

    def _confirm_by_resurvey(self, changed: Sequence[XnatResourceResult], survey: Surveyor,
                             output: str) -> dict[int, XnatResourceResult]:
        try:
            report_path = survey(output)
            with open(report_path, encoding="utf-8") as handle:
                report = json.load(handle)
        except Exception as exc:  # a failed re-survey must not hide what was done
            log.warning("re-survey after mitigation failed", error=str(exc))
            return {}
        statuses = {r["path"]: r["requestStatus"] for r in report.get("resources", [])}
        confirmed: dict[int, XnatResourceResult] = {}
        for result in changed:
            status = statuses.get(result.plan.resource_path, "RESOURCE_DELETED")
            update: dict[str, Any] = {"resurvey_status": status}
            if status not in ("CONFORMING", "NONCOMPLIANT") and result.status is ResourceStatus.MITIGATED:
                update["status"] = ResourceStatus.PARTIAL
                update["reason"] = f"the re-survey of the mount after mitigation finds the resource {status}"
            confirmed[id(result)] = dataclasses.replace(result, **update)
        log.info("re-survey after mitigation", report=report_path,
                 conforming=sum(1 for s in statuses.values() if s == "CONFORMING"), resources=len(statuses))
        return confirmed


def connect(request: MitigationRequest) -> XnatClient:
    """Log in with XNAT_HOST / XNAT_USER / XNAT_PASS."""
    del request  # credentials come from the environment only: never from the command line or a report
    return XnatClient.connect()
