"""A mitigation through XNAT (the XNAT executor): the whole survey report and every result in memory.

The XNAT executor pairs each plan with its surveyed resource, and confirms every result at the end
against a re-survey of the mount; so this run keeps them all, as the file run no longer does (issue 17).
Resources through XNAT's REST API are slow enough that memory is not what bounds such a run.
"""

from __future__ import annotations

import os
from typing import Any

import structlog

from container_app.core.plan import plan_mitigation
from container_app.mitigation.journal import JOURNAL_NAME, Journal, exclusive_lock
from container_app.mitigation.report_files import log_resource, log_summary, write_json, write_report
from container_app.mitigation.request import MitigationRequest, MitigationSummary
from container_app.mitigation.run_flow import BATCH_FILES, BATCH_RESOURCES, TROUBLED
from container_app.mitigation.run_state import record_start, state_folder
from container_app.mitigation.survey_stream import CheckedReport
from container_app.reports.mitigation import (
    MITIGATION_REPORT,
    mitigation_document,
    mitigation_report_text,
    summary_row,
)
from container_app.reports.schemas import SURVEY_SCHEMA, parse_report, read_report_bytes
from container_app.support.progress import RunProgress

log = structlog.get_logger("xnat_resource_survey.mitigate")


def mitigate_through_xnat(request: MitigationRequest, root: str, backup_root: str, client: Any, report_path: str,
                          checked: CheckedReport, started: Any) -> MitigationSummary:
    from container_app.mitigation.xnat.executor import XnatExecutor

    run_id = checked.envelope["runId"]
    state = state_folder(backup_root, run_id)
    os.makedirs(state, exist_ok=True)
    with exclusive_lock(state, f"mitigation run {run_id}"):
        copy = record_start(state, root, request.keep, "xnat", report_path, checked.sha256)
        survey_report = parse_report(read_report_bytes(copy), copy, SURVEY_SCHEMA)
        plan = plan_mitigation(survey_report, request.keep)
        journal = Journal.open(os.path.join(state, JOURNAL_NAME))
        try:
            executor = XnatExecutor(client, request, root, plan.run_id, journal, survey_report)
            log.info("mitigation started", root=root, resources=len(plan.resources), backup=backup_root,
                     journal=journal.path, run_id=plan.run_id, executor=executor.name)
            results = []
            with RunProgress("mitigate", sum(len(p.actions) for p in plan.resources)) as progress:
                batch: list[Any] = []
                files = 0
                for resource in (*plan.resources, None):
                    if batch and (resource is None or files + len(resource.actions) > BATCH_FILES
                                  or len(batch) >= BATCH_RESOURCES):
                        for result in executor.execute_batch(batch):
                            results.append(result)
                            progress.advance(len(result.plan.actions))
                            log_resource(result)
                        batch, files = [], 0
                    if resource is not None:
                        batch.append(resource)
                        files += len(resource.actions)
            # The mount is a live view of the archive: check what XNAT did.
            results = executor.confirm(results, request.survey, os.path.join(request.output, "resurvey"))
        finally:
            journal.close()
    document = mitigation_document(plan, results, report_path, backup_root, journal.path, False, started,
                                   executor=executor.name)
    document["xnatServer"] = executor.server_document()
    text = mitigation_report_text(document)
    written = write_report(request.output, document, survey_report, text)
    write_json(os.path.join(state, MITIGATION_REPORT), document, text)  # restore finds it beside the backups
    log_summary(document, [summary_row(r) for r in document["resources"]], written)
    return MitigationSummary(written, troubled=any(r.status in TROUBLED for r in results))
