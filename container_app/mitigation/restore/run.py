"""A restore run: a mitigation report in, every change undone the way it was made, restore report out.

The one place that knows both ways back (files on a writable archive, XNAT's REST API), so that
neither of them imports the other.
"""

from __future__ import annotations

import json
import os
from typing import Any

import structlog

from container_app.core.vocabulary import RestoreOutcome
from container_app.mitigation.report_files import load_mitigation_report
from container_app.mitigation.request import RestoreRequest, RestoreSummary
from container_app.mitigation.restore.filesystem import restore_report
from container_app.support.fsutil import SaveFile

log = structlog.get_logger("xnat_resource_survey.restore")

RESTORE_REPORT = "restore-report.json"


def restore(request: RestoreRequest) -> RestoreSummary:
    """Undo the mitigation that wrote `request.report`; `restore-report.json` says what came back."""
    report = load_mitigation_report(request.report)
    result: dict[str, Any]
    if report.get("executor") == "xnat":  # undone through XNAT's REST API, as it was done
        from container_app.mitigation.restore.xnat import restore_xnat_report

        result = restore_xnat_report(report)
    else:
        result = restore_report(report)
    out = request.output or os.path.dirname(os.path.abspath(request.report))
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, RESTORE_REPORT)
    with SaveFile(path) as handle:
        json.dump(result, handle, indent=1)
    log.info("restore finished", report=path, **result["totals"])
    return RestoreSummary(path, refused=result["totals"][RestoreOutcome.REFUSED.value])
