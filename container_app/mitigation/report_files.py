"""The mitigation report's files: written beside the survey's page and the backups, read back by restore.

Here rather than in the run so that restore reads a report without importing the run that wrote it.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from container_app.core.errors import MitigationError
from container_app.core.outcomes import ResourceResult
from container_app.reports.html.survey_page import write_html_report
from container_app.reports.mitigation import (
    MITIGATION_REPORT,
    mitigation_report_text,
    planned_counts,
    xnat_mitigation_report,
)
from container_app.reports.schemas import MITIGATION_SCHEMA, parse_report, read_report_bytes, report_text, validate
from container_app.reports.table import text_table
from container_app.support.fsutil import SaveFile

log = structlog.get_logger("xnat_resource_survey.mitigate")

MITIGATION_PLAN = "mitigation-plan.json"


def write_json(path: str, document: Any, text: str | None = None) -> None:
    """`document` as the reports' JSON (or `text`, when the caller already has it) at `path`, atomically."""
    with SaveFile(path) as handle:
        handle.write(text if text is not None else mitigation_report_text(document))


def write_report(out_dir: str, document: dict[str, Any], survey_report: Mapping[str, Any],
                 text: str | None = None) -> str:
    """`mitigation-report.json`, validated, and the page people read beside it (`report.html`)."""
    validate(document, MITIGATION_SCHEMA)
    path = os.path.join(out_dir, MITIGATION_REPORT)
    write_json(path, document, text)
    write_html_report(out_dir, survey_report, document, mitigation_report_path=path)  # the survey report, as read
    return path


def load_mitigation_report(path: str) -> tuple[dict[str, Any], str]:
    """A mitigation report to restore from, validated, and never a dry run's (it changed nothing); with the
    sha256 of the bytes it was parsed from."""
    data = read_report_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    text = report_text(data, path)
    # Only the text is held while the document is built: the bytes, the text and the document at once were
    # the peak of a restore (296 MB of 108,848 changed files' report, issue 17).
    del data
    document = parse_report(text, path, MITIGATION_SCHEMA)
    if document["dryRun"]:
        raise MitigationError(f"{path} is a dry run: nothing to restore")
    return document, digest


def log_resource(result: ResourceResult, *, dry_run: bool = False) -> None:
    """One line per resource: what was done, or in a dry run what would be done."""
    if dry_run:
        planned = planned_counts(result.plan)
        log.info("resource planned", resource=result.plan.resource_path, status=result.status.value,
                 would_move=planned["wouldMove"],
                 would_remove=planned["wouldRemove"], would_retain=planned["wouldRetain"],
                 conflicts=planned["conflicts"], reason=result.reason)
        return
    xnat = xnat_mitigation_report(result)
    log.info("resource mitigated", resource=result.plan.resource_path, status=result.status.value,
             moved=xnat["totalMovedFiles"], removed=xnat["totalRemovedFiles"], retained=len(xnat["retainedFiles"]),
             errors=xnat["totalFileErrors"], conflicts=len(result.plan.conflicts), reason=result.reason)


_TABLE = (("resource", "path"), ("status", "status"), ("moved", "moved"), ("removed", "removed"),
          ("retained", "retained"), ("errors", "errors"), ("conflicts", "conflicts"))
# A dry run changed nothing: its table says what the run would do, and says so in its headings.
_DRY_RUN_TABLE = (("resource", "path"), ("status", "status"), ("would move", "wouldMove"),
                  ("would remove", "wouldRemove"), ("would retain", "wouldRetain"), ("conflicts", "conflicts"))


def log_summary(envelope: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], report_path: str) -> None:
    """The run's last log lines, and on a terminal the table of resources and how to undo the run.

    `envelope`: the report's fields but `resources` (its totals included); `rows`: `summary_row` of each."""
    dry_run = envelope["dryRun"]
    path = "dry run: nothing changed" if dry_run else envelope["backupRoot"]
    totals = envelope["totals"]
    if dry_run:
        log.info("dry run finished: nothing changed", report=report_path, resources=totals["resources"],
                 would_move=totals["plannedMoves"], would_remove=totals["plannedRemovals"],
                 would_retain=totals["plannedRetained"], conflicts=totals["conflicts"])
    else:
        log.info("mitigation finished", backup=path, report=report_path, **totals)
    undo = f"xnat-resource-survey restore --report {report_path}"
    # XNAT's own mitigation keeps its backups in XNAT's cache: no REST call restores them.
    restorable = not any(r.get("way") == "api" for r in rows)
    changed = totals["movedFiles"] + totals["removedFiles"] if restorable else 0
    if not dry_run and changed:
        log.info("to undo", command=undo)
    if sys.stderr.isatty():
        if dry_run:
            sys.stdout.write(text_table(_DRY_RUN_TABLE, [{"path": r["path"], "status": r["status"], **r["planned"]}
                                                         for r in rows]))
            sys.stdout.write(f"dry run, nothing changed: {totals['plannedMoves']} files would move, "
                             f"{totals['plannedRemovals']} would be removed, {totals['plannedRetained']} "
                             f"would be retained, {totals['conflicts']} left in conflict\n")
            return
        sys.stdout.write(text_table(_TABLE, rows))
        sys.stdout.write(f"backups: {path}\n" + (f"to undo: {undo}\n" if changed else ""))
