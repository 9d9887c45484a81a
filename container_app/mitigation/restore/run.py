"""A restore run: a mitigation report in, every change undone the way it was made, restore report out.

The one place that knows both ways back (files on a writable archive, XNAT's REST API), so that
neither of them imports the other. For files, `restore_files` makes step 1 of the order stated in
`restore.filesystem` (the whole report checked, the run's state folder locked, the journal opened) and
takes each resource through that module's `Restorer`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import structlog

from container_app.core.errors import MitigationError, ReportError, UsageError
from container_app.core.vocabulary import JournalPhase, JournalStep, RestoreOutcome
from container_app.mitigation.journal import Journal
from container_app.mitigation.report_files import load_mitigation_report
from container_app.mitigation.request import RestoreRequest, RestoreSummary
from container_app.mitigation.restore.filesystem import RESTORE_JOURNAL, Restorer
from container_app.mitigation.restore.trust import (
    check_against_state,
    check_locations,
    locked_state_folder,
    restore_plan,
)
from container_app.support.anchored import Anchor
from container_app.support.fsutil import SaveFile, is_inside
from container_app.support.progress import RunProgress
from container_app.support.time import iso, now_utc

log = structlog.get_logger("xnat_resource_survey.restore")

RESTORE_REPORT = "restore-report.json"


def restore(request: RestoreRequest) -> RestoreSummary:
    """Undo the mitigation that wrote `request.report`; `restore-report.json` says what came back."""
    report, report_sha256 = load_mitigation_report(request.report)
    out = request.output or os.path.dirname(os.path.abspath(request.report))
    result: dict[str, Any]
    if report.get("executor") == "xnat":  # undone through XNAT's REST API, as it was done
        from container_app.mitigation.restore.xnat import restore_xnat_report

        result = restore_xnat_report(report)
    else:
        # Checked before the restore: the report, once restored, must not become a file of the archive.
        if isinstance(report.get("root"), str) and is_inside(out, report["root"]):
            raise UsageError(f"OUT {out} must not be inside ROOT {report['root']}; nothing was restored")
        result = restore_files(request.report, report, report_sha256)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, RESTORE_REPORT)
    with SaveFile(path) as handle:
        json.dump(result, handle, indent=1)
    log.info("restore finished", report=path, **result["totals"])
    # A resource left alone as a whole has each of its changed files (and its catalog) REFUSED: counted there.
    return RestoreSummary(path, refused=result["totals"][RestoreOutcome.REFUSED.value])


def _interrupted(journal: Journal) -> bool:
    """Whether an earlier attempt began a resource and never ended it (a kill, a power cut)."""
    last: dict[str | None, JournalPhase] = {}
    for record in journal.records:
        if record.step is JournalStep.RESTORE_RESOURCE:
            last[record.resource] = record.phase
    return JournalPhase.START in last.values()


def restore_files(report_path: str, report: Mapping[str, Any], report_sha256: str | None = None) -> dict[str, Any]:
    """Restore every resource of a mitigation made on files; returns the restore report."""
    check_locations(report_path, report)
    try:
        backup = Anchor.open(report["backupRoot"])
    except OSError as exc:
        raise ReportError(f"BACKUP {report['backupRoot']} named by {report_path} cannot be opened "
                          f"({exc.strerror or exc}); nothing was restored") from None
    with backup, locked_state_folder(report_path, backup, report["runId"]) as state:
        check_against_state(report_path, report, state, report_sha256)
        plan = restore_plan(report_path, report)
        try:
            root = Anchor.open(plan.root)
        except OSError as exc:
            raise MitigationError(f"ROOT {plan.root} cannot be opened ({exc.strerror or exc}); nothing was "
                                  "restored") from None
        with root:
            try:
                journal = Journal.open(os.path.join(state.path, RESTORE_JOURNAL))
            except OSError as exc:
                raise MitigationError(f"cannot open the restore journal in {state.path} ({exc.strerror or exc}): a "
                                      "restore needs BACKUP writable; nothing was restored") from None
            try:
                if _interrupted(journal):
                    log.warning("finishing an interrupted restore", run_id=plan.run_id, journal=journal.path)
                restorer = Restorer(root, backup, journal)
                results = []
                with RunProgress("restore", sum(len(r.files) for r in plan.resources)) as progress:
                    for resource in plan.resources:
                        result = restorer.resource(resource)
                        results.append(result)
                        progress.advance(len(resource.files))
                        if result.error is None:  # one left alone has said why already
                            log.info("resource restored", resource=resource.path, files=len(result.files),
                                     refused=sum(1 for f in result.files if f.outcome is RestoreOutcome.REFUSED))
            finally:
                journal.close()
    counts = {o.value: 0 for o in RestoreOutcome}
    for result in results:
        for file in result.files:
            counts[file.outcome.value] += 1
    if not restorer.changed and not counts[RestoreOutcome.REFUSED.value]:
        log.info("already restored: nothing to do", run_id=plan.run_id)
    return {"reportType": "restore", "mitigationRunId": plan.run_id, "root": plan.root, "executor": "filesystem",
            "journal": journal.path, "finishedAt": iso(now_utc()), "resources": [r.document() for r in results],
            "totals": counts}
