"""The mitigation report: what a run did (or, in a dry run, would do), resource by resource, in XNAT's terms."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from container_app import __version__
from container_app.core.vocabulary import ActionKind, Outcome, RequestStatus, ResourceStatus
from container_app.reports.envelope import MITIGATION_LAYOUT, envelope_text
from container_app.support.time import iso, now_utc

if TYPE_CHECKING:  # annotations only: a survey imports this module for MITIGATION_REPORT, not the plan's code
    from container_app.core.outcomes import ActionResult, ResourceResult
    from container_app.core.plan import MitigationPlan, ResourcePlan

MITIGATION_REPORT = "mitigation-report.json"


def request_status_after(result: ResourceResult) -> RequestStatus:
    """XNAT's status of the resource afterwards, as a re-survey would give it."""
    if result.status is ResourceStatus.PLANNED:
        return RequestStatus.QUEUED_FOR_MITIGATION
    if result.status in (ResourceStatus.FAILED, ResourceStatus.STALE, ResourceStatus.LOCKED):
        return RequestStatus.DIVERGENT if result.status is not ResourceStatus.FAILED else RequestStatus.ERROR
    if result.status is ResourceStatus.PARTIAL or result.plan.untouched_bad:
        return RequestStatus.DIVERGENT
    return RequestStatus.NONCOMPLIANT if result.plan.untouched_nonactionable else RequestStatus.CONFORMING


def xnat_mitigation_report(result: ResourceResult) -> dict[str, Any]:
    """XNAT's ResourceMitigationReport for one resource."""
    moved: dict[str, str] = {}
    removed: dict[str, str] = {}
    retained: list[str] = []
    backup_errors: dict[str, dict[str, str]] = {}
    move_errors: dict[str, dict[str, str]] = {}
    delete_errors: dict[str, str] = {}
    for r in result.actions:
        a = r.action
        path = a.source.path
        if a.kind is ActionKind.RETAIN:
            if r.outcome is Outcome.DONE:
                retained.append(path)
            continue
        if r.outcome is Outcome.DONE:
            if a.kind is ActionKind.RENAME and a.target is not None:
                moved[path] = a.target
            removed[path] = r.backup_path or ""
        elif r.outcome is Outcome.FAILED and r.error is not None:
            if r.failed_step is not None and r.failed_step.value == "backup":
                backup_errors[path] = {"file": path, "message": r.error}
            elif a.kind is ActionKind.RENAME:
                move_errors[path] = {"file": a.target or path, "message": r.error}
            else:
                delete_errors[path] = r.error
    catalog_error = result.catalog.error if result.catalog is not None else None
    return {
        "resourceSurveyRequestId": 0,
        "cachePath": result.backup_folder,
        "movedFiles": moved,
        "removedFiles": removed,
        "retainedFiles": retained,
        "backupErrors": backup_errors,
        "moveErrors": move_errors,
        "deleteErrors": delete_errors,
        "catalogWriteError": catalog_error,
        "resourceSaveError": None,
        "totalMovedFiles": len(moved),
        "totalRemovedFiles": len(removed),
        "totalFileErrors": len(backup_errors) + len(move_errors) + len(delete_errors),
    }


def planned_counts(plan: ResourcePlan) -> dict[str, int]:
    """What the plan would do to a resource: the same in a dry run and a real run, beside what was done."""
    kinds = [a.kind for a in plan.actions]
    return {"wouldMove": kinds.count(ActionKind.RENAME), "wouldRemove": kinds.count(ActionKind.REMOVE),
            "wouldRetain": kinds.count(ActionKind.RETAIN), "conflicts": len(plan.conflicts)}


def _mitigation_action_document(r: ActionResult) -> dict[str, Any]:
    a = r.action
    document: dict[str, Any] = {"action": a.kind.value, "path": a.source.path, "newPath": a.target,
                                "backupPath": r.backup_path, "sha256": a.source.sha256, "outcome": r.outcome.value,
                                "reason": a.reason}
    if r.error:
        document["error"] = r.error
    if a.group is not None:
        document["sopClassUID"], document["sopInstanceUID"] = a.group
    document.update(_extra_fields(r))
    return document


def _extra_fields(result: object) -> dict[str, Any]:
    """Fields an executor adds to a resource or action (the XNAT executor: way, XNAT's report, catalog entries)."""
    fields = getattr(result, "report_fields", None)
    return dict(fields()) if callable(fields) else {}


def mitigation_resource_document(result: ResourceResult) -> dict[str, Any]:
    plan = result.plan
    catalog = result.catalog
    document: dict[str, Any] = {
        "path": plan.resource_path,
        "identity": dict(plan.identity),
        "status": result.status.value,
        "requestStatus": request_status_after(result).value,
        "backupFolder": result.backup_folder,
        "xnat": xnat_mitigation_report(result),  # XNAT's fields: what was done (in a dry run, nothing)
        "planned": planned_counts(plan),
        "actions": [_mitigation_action_document(r) for r in result.actions],
        "conflicts": [{"path": c.path, "target": c.target, "reason": c.reason.value} for c in plan.conflicts],
        "catalog": None if catalog is None else {
            "path": catalog.path, "backupPath": catalog.backup_path, "originalSha256": catalog.original_sha256,
            "newSha256": catalog.new_sha256, "entriesRenamed": catalog.renamed, "entriesRemoved": catalog.removed,
        },
    }
    if result.reason:
        document["statusReason"] = result.reason
    document.update(_extra_fields(result))
    return document


def mitigation_head(run_id: str, root: str, template: str, keep: str, survey_report: str, backup_root: str,
                    journal: str | None, dry_run: bool, started: Any, executor: str) -> dict[str, Any]:
    """The report's fields before `resources`, `finishedAt` (now) last."""
    return {
        "reportType": "mitigation",
        "schemaVersion": "1.0",
        "tool": {"name": "xnat-resource-survey", "version": __version__},
        "runId": run_id,
        "root": root,
        "surveyReport": os.path.abspath(survey_report),
        "template": template,
        "keep": keep,
        "dryRun": dry_run,
        "executor": executor,
        "backupRoot": backup_root,
        "journal": journal,
        "startedAt": iso(started),
        "finishedAt": iso(now_utc()),
    }


def mitigation_document(plan: MitigationPlan, results: Sequence[ResourceResult], survey_report: str,
                        backup_root: str, journal: str | None, dry_run: bool, started: Any,
                        executor: str = "filesystem") -> dict[str, Any]:
    """The whole report in memory (the XNAT executor's run, which confirms every result at the end)."""
    head = mitigation_head(plan.run_id, plan.root, plan.template, plan.keep.value, survey_report, backup_root,
                           journal, dry_run, started, executor)
    resources = [mitigation_resource_document(r) for r in results]
    totals = MitigationTotals()
    for resource in resources:
        totals.add(resource)
    return {**head, "resources": resources, "totals": totals.as_dict()}


class MitigationTotals:
    """The report's `totals`, counted resource document by resource document."""

    def __init__(self) -> None:
        self.counts = {"resources": 0, "mitigated": 0, "stale": 0, "failed": 0, "movedFiles": 0, "removedFiles": 0,
                       "retainedFiles": 0, "fileErrors": 0, "conflicts": 0, "plannedMoves": 0,
                       "plannedRemovals": 0, "plannedRetained": 0}

    def add(self, r: Mapping[str, Any]) -> None:
        totals = self.counts
        totals["resources"] += 1
        totals["mitigated"] += r["status"] == ResourceStatus.MITIGATED.value
        totals["stale"] += r["status"] == ResourceStatus.STALE.value
        totals["failed"] += r["status"] in (ResourceStatus.FAILED.value, ResourceStatus.PARTIAL.value,
                                            ResourceStatus.LOCKED.value)
        totals["movedFiles"] += r["xnat"]["totalMovedFiles"]
        totals["removedFiles"] += r["xnat"]["totalRemovedFiles"]
        totals["retainedFiles"] += len(r["xnat"]["retainedFiles"])
        totals["fileErrors"] += r["xnat"]["totalFileErrors"]
        totals["conflicts"] += len(r["conflicts"])
        totals["plannedMoves"] += r["planned"]["wouldMove"]
        totals["plannedRemovals"] += r["planned"]["wouldRemove"]
        totals["plannedRetained"] += r["planned"]["wouldRetain"]

    def as_dict(self) -> dict[str, int]:
        return dict(self.counts)


def summary_row(resource: Mapping[str, Any]) -> dict[str, Any]:
    """What the terminal's table and the undo hint need of a resource document."""
    xnat = resource["xnat"]
    return {"path": resource["path"], "status": resource["status"], "way": resource.get("way"),
            "moved": xnat["totalMovedFiles"], "removed": xnat["totalRemovedFiles"],
            "retained": len(xnat["retainedFiles"]), "errors": xnat["totalFileErrors"],
            "conflicts": len(resource["conflicts"]), "planned": dict(resource["planned"])}


def mitigation_report_text(document: Any) -> str:
    """The mitigation report as JSON, laid out as the survey report is (see `reports.envelope`)."""
    return envelope_text(document, MITIGATION_LAYOUT)
