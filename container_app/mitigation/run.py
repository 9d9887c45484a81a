"""A mitigation run: survey report in, plan, execute resource by resource, mitigation report out."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import replace
from typing import Any

import structlog

from container_app.core.errors import ReportError, UsageError
from container_app.core.outcomes import ActionResult, ResourceResult
from container_app.core.plan import MitigationPlan, ResourcePlan, plan_document, plan_mitigation
from container_app.core.report_checks import MAX_PROBLEMS_SHOWN, survey_report_problems
from container_app.core.vocabulary import ExecutorChoice, Outcome, ResourceStatus
from container_app.mitigation.filesystem import FilesystemExecutor, backup_folder_for, stale_reason
from container_app.mitigation.journal import JOURNAL_NAME, Journal, exclusive_lock
from container_app.mitigation.protocol import Executor, untouched
from container_app.mitigation.report_files import MITIGATION_PLAN, log_resource, log_summary, write_json, write_report
from container_app.mitigation.request import MitigationRequest, MitigationSummary
from container_app.mitigation.run_state import record_start, state_folder, unfinished_runs
from container_app.reports.mitigation import MITIGATION_REPORT, mitigation_document, mitigation_report_text
from container_app.reports.schemas import SURVEY_SCHEMA, parse_report, read_report_bytes
from container_app.support.anchored import Anchor
from container_app.support.fsutil import is_inside
from container_app.support.progress import RunProgress
from container_app.support.time import now_utc

log = structlog.get_logger("xnat_resource_survey.mitigate")

#: What makes a run's exit code say "look at the report": a resource not (or not wholly) mitigated.
TROUBLED = frozenset({ResourceStatus.PARTIAL, ResourceStatus.FAILED, ResourceStatus.STALE, ResourceStatus.LOCKED})


def mitigate(request: MitigationRequest) -> MitigationSummary:
    """Mitigate ROOT as `request` asks: survey first when no report is given, plan, execute, report."""
    root = os.path.abspath(request.root)
    if not os.path.isdir(root):
        raise UsageError(f"ROOT {request.root!r} is not a folder")
    backup_root = os.path.abspath(request.backup_dir)
    if is_inside(backup_root, root):
        raise UsageError("BACKUP must not be inside ROOT: backups would become part of the archive")
    if is_inside(root, backup_root):
        raise UsageError("BACKUP must not hold ROOT: a later survey of BACKUP would find the archive inside it, "
                         "and restore could not tell backups from originals")
    if is_inside(request.output, root):
        raise UsageError("OUT must not be inside ROOT")
    use_xnat = _wants_xnat(request, root)
    if not use_xnat and not request.dry_run:
        _finish_unfinished_runs(request, root, backup_root)
    client = None
    if use_xnat and not request.dry_run:
        from container_app.mitigation.xnat.executor import connect

        client = connect(request)  # before the survey: bad credentials or no server fail fast, nothing changed
    try:
        return _mitigate(request, root, backup_root, client, use_xnat)
    finally:
        if client is not None:
            client.close()


def _finish_unfinished_runs(request: MitigationRequest, root: str, backup_root: str) -> None:
    """A run on this ROOT that a kill cut short is finished first, from its own copy of its report."""
    for run in unfinished_runs(backup_root, root):
        if request.report is not None and _run_id_of(request.report) == run.run_id:
            continue  # the run asked for: it resumes as itself
        output = os.path.join(request.output, "resumed", run.run_id)
        log.warning("finishing an unfinished mitigation of this ROOT first", run_id=run.run_id, output=output)
        _mitigate(replace(request, report=run.survey_report, keep=run.keep, output=output), root, backup_root,
                  None, use_xnat=False)


def _run_id_of(report_path: str) -> object:
    try:
        with open(report_path, "rb") as handle:
            return json.loads(handle.read()).get("runId")
    except (OSError, ValueError, AttributeError):
        return None


def _wants_xnat(request: MitigationRequest, root: str) -> bool:
    """`--executor xnat`; or `auto` inside XNAT (XNAT_HOST set) on a mount that cannot be written."""
    if request.executor is ExecutorChoice.XNAT:
        return True
    if request.executor is ExecutorChoice.FILESYSTEM:
        return False
    return bool(os.environ.get("XNAT_HOST")) and not os.access(root, os.W_OK)


def _mitigate(request: MitigationRequest, root: str, backup_root: str, client: Any,
              use_xnat: bool) -> MitigationSummary:
    report_path = request.report
    if report_path is None:
        report_path = request.survey(request.output)
    report_bytes = read_report_bytes(report_path)  # read once: the bytes validated are the bytes kept for the run
    survey_report = parse_report(report_bytes, report_path, SURVEY_SCHEMA)
    problems = survey_report_problems(survey_report)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + ("; ..." if len(problems) > MAX_PROBLEMS_SHOWN else "")
        raise ReportError(f"{report_path} cannot be used for a mitigation, nothing was changed: {shown}")
    if os.path.realpath(survey_report["root"]) != os.path.realpath(root):
        raise UsageError(f"the survey report describes {survey_report['root']}, not {root}")
    if survey_report["template"] != request.template and request.report is not None:
        log.warning("the report's naming template differs from --template; the report's is used",
                    report_template=survey_report["template"])

    plan = plan_mitigation(survey_report, request.keep)
    os.makedirs(request.output, exist_ok=True)
    started = now_utc()
    if request.dry_run:
        write_json(os.path.join(request.output, MITIGATION_PLAN), plan_document(plan))
        results = _previewed(plan, root, backup_root, checked=not use_xnat)
        for result in results:
            log_resource(result, dry_run=True)
        document = mitigation_document(plan, results, report_path, backup_root, None, True, started,
                                       executor="xnat" if use_xnat else "filesystem")
        written = write_report(request.output, document, survey_report)
        log_summary(document, written)
        return MitigationSummary(written, troubled=False)

    state = state_folder(backup_root, plan.run_id)
    os.makedirs(state, exist_ok=True)
    with exclusive_lock(state, f"mitigation run {plan.run_id}"):
        record_start(state, root, request.keep, "xnat" if client is not None else "filesystem", report_bytes)
        journal = Journal.open(os.path.join(state, JOURNAL_NAME))
        closing = ExitStack()
        try:
            executor: Executor
            xnat_executor = None
            if client is not None:
                from container_app.mitigation.xnat.executor import XnatExecutor

                executor = xnat_executor = XnatExecutor(client, request, root, plan.run_id, journal, survey_report)
            else:
                executor = filesystem = FilesystemExecutor(root, backup_root, plan.run_id, journal)
                closing.callback(filesystem.close)
            log.info("mitigation started", root=root, resources=len(plan.resources), backup=backup_root,
                     journal=journal.path, run_id=plan.run_id, executor=executor.name)
            results = []
            with RunProgress("mitigate", sum(len(p.actions) for p in plan.resources)) as progress:
                for batch in _batches(plan.resources):
                    for result in executor.execute_batch(batch):
                        results.append(result)
                        progress.advance(len(result.plan.actions))
                        log_resource(result)
            if xnat_executor is not None:  # the mount is a live view of the archive: check what XNAT did
                results = xnat_executor.confirm(results, request.survey, os.path.join(request.output, "resurvey"))
        finally:
            closing.close()
            journal.close()
    document = mitigation_document(plan, results, report_path, backup_root, journal.path, False, started,
                                   executor=executor.name)
    if xnat_executor is not None:
        document["xnatServer"] = xnat_executor.server_document()
    text = mitigation_report_text(document)
    written = write_report(request.output, document, survey_report, text)
    write_json(os.path.join(state, MITIGATION_REPORT), document, text)  # restore finds it beside the backups
    log_summary(document, written)
    return MitigationSummary(written, troubled=any(r.status in TROUBLED for r in results))


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


def _previewed(plan: MitigationPlan, root: str, backup_root: str, *, checked: bool) -> list[ResourceResult]:
    """A dry run's results: each resource PLANNED, or STALE where the real run would find it changed
    (the same read-only checks the file executor makes before it touches a resource)."""
    results = []
    with Anchor.open(root) as archive:
        for resource in plan.resources:
            folder = backup_folder_for(backup_root, plan.run_id, resource)
            stale = stale_reason(archive, resource) if checked and resource.actions else None
            if stale is not None:
                results.append(untouched(resource, folder, ResourceStatus.STALE, stale))
                continue
            actions = tuple(ActionResult(a, Outcome.PLANNED) for a in resource.actions)
            results.append(ResourceResult(resource, ResourceStatus.PLANNED, folder, actions))
    return results
