"""A mitigation run: survey report in, plan, execute resource by resource, mitigation report out."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import structlog

from container_app.cli.settings import MitigateSettings
from container_app.core.errors import ExitCode, MitigationError, UsageError
from container_app.core.outcomes import ActionResult, ResourceResult
from container_app.core.plan import ResourcePlan, plan_document, plan_mitigation
from container_app.core.vocabulary import ExecutorChoice, Outcome, ResourceStatus
from container_app.mitigation.filesystem import Executor, FilesystemExecutor, backup_folder_for
from container_app.mitigation.journal import STATE_FOLDER, Journal, exclusive_lock
from container_app.reports.html.writer import write_html_report
from container_app.reports.mitigation import json_text, mitigation_document, xnat_mitigation_report
from container_app.reports.survey import read_report, text_table, validate
from container_app.support.fsutil import SaveFile, is_inside
from container_app.support.time import now_utc

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
    text = json_text(document)
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


def _write_json(path: str, document: Any, text: str | None = None) -> None:
    with SaveFile(path) as handle:
        handle.write(text if text is not None else json_text(document))


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
