"""A mitigation run: survey report in, plan, execute resource by resource, mitigation report out."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import structlog

from container_app import __version__
from container_app.cli.settings import MitigateSettings
from container_app.core.errors import ExitCode, MitigationError, UsageError
from container_app.core.plan import MitigationPlan, ResourcePlan, plan_document, plan_mitigation
from container_app.core.vocabulary import ActionKind, ExecutorChoice, Outcome, RequestStatus, ResourceStatus
from container_app.mitigation.filesystem import (
    ActionResult,
    Executor,
    FilesystemExecutor,
    ResourceResult,
    backup_folder_for,
)
from container_app.mitigation.journal import STATE_FOLDER, Journal, exclusive_lock
from container_app.reports.html.writer import write_html_report
from container_app.reports.survey import read_report, text_table, validate
from container_app.support.fsutil import SaveFile, is_inside
from container_app.support.time import iso, now_utc

log = structlog.get_logger("xnat_resource_survey.mitigate")

MITIGATION_REPORT = "mitigation-report.json"
MITIGATION_PLAN = "mitigation-plan.json"
SCHEMA = "mitigation-report.schema.json"


def mitigate_command(settings: MitigateSettings) -> ExitCode:
    survey = settings.survey
    root = os.path.abspath(survey.root)
    if not os.path.isdir(root):
        raise UsageError(f"ROOT {survey.root!r} is not a folder")
    backup_root = os.path.abspath(settings.backup_dir)
    if is_inside(backup_root, root):
        raise UsageError("BACKUP must not be inside ROOT: backups would become part of the archive")
    if is_inside(survey.output, root):
        raise UsageError("OUT must not be inside ROOT")
    use_xnat = _wants_xnat(settings, root)
    client = None
    if use_xnat and not settings.dry_run:
        from container_app.mitigation.xnat.executor import connect

        client = connect(settings)  # before the survey: bad credentials or no server fail fast, nothing changed
    try:
        return _mitigate(settings, root, backup_root, client, use_xnat)
    finally:
        if client is not None:
            client.close()


def _wants_xnat(settings: MitigateSettings, root: str) -> bool:
    """`--executor xnat`; or `auto` inside XNAT (XNAT_HOST set) on a mount that cannot be written."""
    if settings.executor is ExecutorChoice.XNAT:
        return True
    if settings.executor is ExecutorChoice.FILESYSTEM:
        return False
    return bool(os.environ.get("XNAT_HOST")) and not os.access(root, os.W_OK)


def _mitigate(settings: MitigateSettings, root: str, backup_root: str, client: Any, use_xnat: bool) -> ExitCode:
    survey = settings.survey
    report_path = settings.report
    if report_path is None:
        from container_app.cli.workflows import survey_archive

        report_path = survey_archive(survey, print_summary=False).report_path
    survey_report = read_report(report_path, "survey-report.schema.json")
    if os.path.realpath(survey_report["root"]) != os.path.realpath(root):
        raise UsageError(f"the survey report describes {survey_report['root']}, not {root}")
    if survey_report["template"] != survey.template.source and settings.report is not None:
        log.warning("the report's naming template differs from --template; the report's is used",
                    report_template=survey_report["template"])

    plan = plan_mitigation(survey_report, settings.keep)
    os.makedirs(survey.output, exist_ok=True)
    started = now_utc()
    if settings.dry_run:
        _write_json(os.path.join(survey.output, MITIGATION_PLAN), plan_document(plan))
        results = [_planned(r, backup_folder_for(backup_root, plan.run_id, r)) for r in plan.resources]
        document = mitigation_document(plan, results, report_path, backup_root, None, True, started,
                                       executor="xnat" if use_xnat else "filesystem")
        _log_summary(document, _write_report(survey.output, document, survey_report))
        return ExitCode.OK

    state = os.path.join(backup_root, STATE_FOLDER, plan.run_id)
    os.makedirs(state, exist_ok=True)
    with exclusive_lock(state, f"mitigation run {plan.run_id}"):
        journal = Journal.open(os.path.join(state, "journal.jsonl"))
        try:
            executor: Executor
            xnat_executor = None
            if client is not None:
                from container_app.mitigation.xnat.executor import XnatExecutor

                executor = xnat_executor = XnatExecutor(client, settings, root, plan.run_id, journal, survey_report)
            else:
                executor = FilesystemExecutor(root, backup_root, plan.run_id, journal)
            log.info("mitigation started", root=root, resources=len(plan.resources), backup=backup_root,
                     journal=journal.path, run_id=plan.run_id, executor=executor.name)
            results = []
            for batch in _batches(plan.resources):
                for result in executor.execute_batch(batch):
                    results.append(result)
                    _log_resource(result)
            if xnat_executor is not None:  # the mount is a live view of the archive: check what XNAT did
                results = xnat_executor.confirm(results, survey, os.path.join(survey.output, "resurvey"))
        finally:
            journal.close()
    document = mitigation_document(plan, results, report_path, backup_root, journal.path, False, started,
                                   executor=executor.name)
    if xnat_executor is not None:
        document["xnatServer"] = xnat_executor.server_document()
    text = _json_text(document)
    report_out = _write_report(survey.output, document, survey_report, text)
    _write_json(os.path.join(state, MITIGATION_REPORT), document, text)  # restore finds it beside the backups
    _log_summary(document, report_out)
    troubled = {ResourceStatus.PARTIAL, ResourceStatus.FAILED, ResourceStatus.STALE, ResourceStatus.LOCKED}
    return ExitCode.FINDINGS if any(r.status in troubled for r in results) else ExitCode.OK


#: A batch shares one sync of the file system per step; its resources stay locked until it ends.
BATCH_FILES = 2000
BATCH_RESOURCES = 100


def _batches(plans: Sequence[ResourcePlan]) -> Iterator[list[ResourcePlan]]:
    batch: list[ResourcePlan] = []
    files = 0
    for plan in plans:
        if batch and (files + len(plan.actions) > BATCH_FILES or len(batch) >= BATCH_RESOURCES):
            yield batch
            batch, files = [], 0
        batch.append(plan)
        files += len(plan.actions)
    if batch:
        yield batch


def _planned(plan: ResourcePlan, backup_folder: str) -> ResourceResult:
    results = tuple(ActionResult(a, Outcome.PLANNED) for a in plan.actions)
    return ResourceResult(plan, ResourceStatus.PLANNED, backup_folder, results)


# --- the report ------------------------------------------------------------------------------------


def _request_status(result: ResourceResult) -> RequestStatus:
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


def _action_document(r: ActionResult) -> dict[str, Any]:
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


def resource_document(result: ResourceResult) -> dict[str, Any]:
    plan = result.plan
    catalog = result.catalog
    document: dict[str, Any] = {
        "path": plan.resource_path,
        "identity": dict(plan.identity),
        "status": result.status.value,
        "requestStatus": _request_status(result).value,
        "backupFolder": result.backup_folder,
        "xnat": xnat_mitigation_report(result),
        "actions": [_action_document(r) for r in result.actions],
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


def mitigation_document(plan: MitigationPlan, results: Sequence[ResourceResult], survey_report: str,
                        backup_root: str, journal: str | None, dry_run: bool, started: Any,
                        executor: str = "filesystem") -> dict[str, Any]:
    resources = [resource_document(r) for r in results]
    return {
        "reportType": "mitigation",
        "schemaVersion": "1.0",
        "tool": {"name": "xnat-resource-survey", "version": __version__},
        "runId": plan.run_id,
        "root": plan.root,
        "surveyReport": os.path.abspath(survey_report),
        "template": plan.template,
        "keep": plan.keep.value,
        "dryRun": dry_run,
        "executor": executor,
        "backupRoot": backup_root,
        "journal": journal,
        "startedAt": iso(started),
        "finishedAt": iso(now_utc()),
        "resources": resources,
        "totals": _totals(resources),
    }


def _totals(resources: Iterable[dict[str, Any]]) -> dict[str, int]:
    totals = {"resources": 0, "mitigated": 0, "stale": 0, "failed": 0, "movedFiles": 0, "removedFiles": 0,
              "retainedFiles": 0, "fileErrors": 0, "conflicts": 0}
    for r in resources:
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
    return totals


def _write_json(path: str, document: Any, text: str | None = None) -> None:
    with SaveFile(path) as handle:
        handle.write(text if text is not None else _json_text(document))


_RESOURCES_PLACEHOLDER = "\0resources\0"


def _json_text(document: Any) -> str:
    """The report as JSON, laid out as the survey report is: the envelope indented, one resource per line.

    One line per resource lets the C encoder write it (an indented dump runs in Python, seconds for a
    project) and keeps the file readable line by line.
    """
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        return json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    head = json.dumps({**document, "resources": _RESOURCES_PLACEHOLDER}, ensure_ascii=False, indent=1)
    lines = ",\n".join("  " + json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in resources)
    body = f"[\n{lines}\n ]" if resources else "[]"
    return head.replace(json.dumps(_RESOURCES_PLACEHOLDER), body, 1) + "\n"


def _write_report(out_dir: str, document: dict[str, Any], survey_report: Mapping[str, Any],
                  text: str | None = None) -> str:
    """`mitigation-report.json`, validated, and the page people read beside it (`report.html`)."""
    validate(document, SCHEMA)
    path = os.path.join(out_dir, MITIGATION_REPORT)
    _write_json(path, document, text)
    write_html_report(out_dir, survey_report, document, mitigation_report_path=path)  # the survey report, as read
    return path


def _log_resource(result: ResourceResult) -> None:
    xnat = xnat_mitigation_report(result)
    log.info("resource mitigated", resource=result.plan.resource_path, status=result.status.value,
             moved=xnat["totalMovedFiles"], removed=xnat["totalRemovedFiles"], retained=len(xnat["retainedFiles"]),
             errors=xnat["totalFileErrors"], conflicts=len(result.plan.conflicts), reason=result.reason)


_TABLE = (("resource", "path"), ("status", "status"), ("moved", "moved"), ("removed", "removed"),
          ("retained", "retained"), ("errors", "errors"), ("conflicts", "conflicts"))


def _log_summary(document: dict[str, Any], report_path: str) -> None:
    path = "dry run: nothing changed" if document["dryRun"] else document["backupRoot"]
    log.info("mitigation finished", backup=path, report=report_path, **document["totals"])
    undo = f"xnat-resource-survey restore --report {report_path}"
    # XNAT's own mitigation keeps its backups in XNAT's cache: no REST call restores them.
    restorable = not any(r.get("way") == "api" for r in document["resources"])
    changed = document["totals"]["movedFiles"] + document["totals"]["removedFiles"] if restorable else 0
    if not document["dryRun"] and changed:
        log.info("to undo", command=undo)
    if sys.stderr.isatty():
        rows = [{"path": r["path"], "status": r["status"], "moved": r["xnat"]["totalMovedFiles"],
                 "removed": r["xnat"]["totalRemovedFiles"], "retained": len(r["xnat"]["retainedFiles"]),
                 "errors": r["xnat"]["totalFileErrors"], "conflicts": len(r["conflicts"])}
                for r in document["resources"]]
        sys.stdout.write(text_table(_TABLE, rows))
        sys.stdout.write(f"backups: {path}\n" + (f"to undo: {undo}\n" if changed and not document["dryRun"] else ""))


def load_mitigation_report(path: str) -> dict[str, Any]:
    document = read_report(path, SCHEMA)
    if document["dryRun"]:
        raise MitigationError(f"{path} is a dry run: nothing to restore")
    return document
