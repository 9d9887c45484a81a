"""What a resource and its files came to through XNAT, as the mitigation report states it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from container_app.core.outcomes import ActionResult, ResourceResult
from container_app.core.plan import ResourcePlan
from container_app.core.vocabulary import ActionKind, Outcome, ResourceStatus, XnatWay
from container_app.mitigation.xnat.target import XnatTarget


@dataclass(frozen=True, slots=True)
class XnatActionResult(ActionResult):
    """An action's outcome, with what XNAT made of the file's catalog entry."""

    catalog_entry_downgraded: bool | None = None  # True: the new entry is a plain cat:entry (no UID)
    backup_name: str | None = None  # the backup's name in RESOURCE_SURVEY_BACKUP (its sha256)

    def report_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.action.kind is not ActionKind.RETAIN and self.outcome is Outcome.DONE:
            fields["catalogEntryDowngraded"] = self.catalog_entry_downgraded
        if self.backup_name is not None:
            fields["backupName"] = self.backup_name
        return fields


@dataclass(frozen=True, slots=True)
class XnatResourceResult(ResourceResult):
    """A resource's outcome through XNAT: which way, why, and what XNAT reported."""

    way: XnatWay | None = None
    way_reason: str | None = None
    target: XnatTarget | None = None
    request_id: int | None = None
    xnat_report: dict[str, Any] | None = None  # XNAT's own ResourceMitigationReport, paths made relative
    xnat_survey: dict[str, Any] | None = None  # how XNAT's survey compared with ours
    catalog_entries: dict[str, int] | None = None
    manifest: str | None = None
    request_status: str | None = None  # XNAT's status afterwards, when known better than from the outcome
    resurvey_status: str | None = None

    def report_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "way": None if self.way is None else self.way.value,
            "wayReason": self.way_reason,
            "xnatTarget": None if self.target is None else self.target.document(),
        }
        if self.request_id is not None:
            fields["xnatRequestId"] = self.request_id
        if self.xnat_report is not None:
            fields["xnat"] = self.xnat_report
        if self.xnat_survey is not None:
            fields["xnatSurvey"] = self.xnat_survey
        if self.catalog_entries is not None:
            fields["catalogEntries"] = self.catalog_entries
        if self.manifest is not None:
            fields["backupManifest"] = self.manifest
        if self.resurvey_status is not None:
            fields["resurveyStatus"] = self.resurvey_status
        status = self.resurvey_status or self.request_status
        if status is not None:
            fields["requestStatus"] = status
        return fields


def untouched_result(plan: ResourcePlan, status: ResourceStatus, reason: str, **extra: Any) -> XnatResourceResult:
    results = tuple(XnatActionResult(a, Outcome.SKIPPED, error=reason) for a in plan.actions)
    return XnatResourceResult(plan, status, extra.pop("backup_folder", ""), results, reason=reason, **extra)


def status_after(results: Sequence[ActionResult], plan: ResourcePlan, extra_error: bool = False) -> ResourceStatus:
    failed = sum(1 for r in results if r.outcome is Outcome.FAILED)
    done = sum(1 for r in results if r.outcome is Outcome.DONE and r.action.kind is not ActionKind.RETAIN)
    if results and failed and not done:
        return ResourceStatus.FAILED
    if failed or plan.conflicts or extra_error or any(r.outcome is Outcome.SKIPPED for r in results):
        return ResourceStatus.PARTIAL
    return ResourceStatus.MITIGATED
