"""A mitigation run: survey report in, plan, execute resource by resource, mitigation report out.

The survey report is read twice, resource by resource, never whole (see `survey_stream`); the run
itself is `run_flow`'s. Inside XNAT, the XNAT executor's run is `run_xnat`'s.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import structlog

from container_app.core.errors import ReportError, UsageError
from container_app.core.vocabulary import ExecutorChoice
from container_app.mitigation.filesystem import FilesystemExecutor
from container_app.mitigation.journal import JOURNAL_NAME, Journal, exclusive_lock
from container_app.mitigation.request import MitigationRequest, MitigationSummary
from container_app.mitigation.run_flow import Run
from container_app.mitigation.run_state import record_start, state_folder, unfinished_runs
from container_app.mitigation.survey_stream import (
    EXACT,
    FAST,
    RESOURCE,
    NotUtf8Names,
    ReportStream,
    check_survey_report,
    survey_resources,
)
from container_app.support.fsutil import is_inside
from container_app.support.time import now_utc

log = structlog.get_logger("xnat_resource_survey.mitigate")


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
    """The report's `runId`, read from its envelope (it precedes `resources`), or None."""
    for backend in (FAST, EXACT):
        try:
            for key, value in ReportStream(report_path, backend).fields():
                if key == "runId":
                    return value
                if key == RESOURCE:
                    return None
        except NotUtf8Names:
            continue
        except ReportError:
            return None
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
    checked = check_survey_report(report_path, request.keep)  # the whole report, before any change
    envelope = checked.envelope
    if os.path.realpath(envelope["root"]) != os.path.realpath(root):
        raise UsageError(f"the survey report describes {envelope['root']}, not {root}")
    if envelope["template"] != request.template and request.report is not None:
        log.warning("the report's naming template differs from --template; the report's is used",
                    report_template=envelope["template"])
    os.makedirs(request.output, exist_ok=True)
    started = now_utc()
    run = Run(request, envelope, report_path, backup_root, started)
    if request.dry_run:
        return run.preview(root, checked, checked_stale=not use_xnat, executor="xnat" if use_xnat else "filesystem")
    if client is not None:
        from container_app.mitigation.run_xnat import mitigate_through_xnat

        return mitigate_through_xnat(request, root, backup_root, client, report_path, checked, started)
    state = state_folder(backup_root, envelope["runId"])
    os.makedirs(state, exist_ok=True)
    with exclusive_lock(state, f"mitigation run {envelope['runId']}"):
        copy = record_start(state, root, request.keep, "filesystem", report_path, checked.sha256)
        journal = Journal.open(os.path.join(state, JOURNAL_NAME))
        executor = FilesystemExecutor(root, backup_root, envelope["runId"], journal)
        try:
            log.info("mitigation started", root=root, resources=checked.planned_resources, backup=backup_root,
                     journal=journal.path, run_id=envelope["runId"], executor=executor.name)
            return run.execute(executor, survey_resources(copy, checked), checked, journal.path, state)
        finally:
            executor.close()
            journal.close()
