"""A mitigation run's own state folder, `BACKUP/.xnat-resource-survey/<run id>/`, and finding unfinished runs.

Written before the run changes anything: `run.json` (ROOT, the keep policy) and `survey-report.json`,
a copy of the report the plan was made from. The run is finished once `mitigation-report.json` is
there (written last). So a relaunch that surveys afresh (a new report, a new run id), as the image
does inside XNAT, can find a run that a kill cut short on the same ROOT and finish it first, from
its own copy of its report: catalogs are never left naming files that moved, and the first run stays
restorable. And a report given again for a run that started is checked against that copy, since a
report on disk (inside XNAT, a resource project members can edit) may have changed since.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass

import ijson  # type: ignore[import-untyped]  # ijson ships no type information

from container_app.core.errors import MitigationError
from container_app.core.vocabulary import KeepPolicy
from container_app.mitigation.journal import STATE_FOLDER
from container_app.reports.mitigation import MITIGATION_REPORT
from container_app.support.fsutil import SaveFile, write_atomically

RUN_RECORD = "run.json"
SURVEY_COPY = "survey-report.json"


@dataclass(frozen=True, slots=True)
class UnfinishedRun:
    run_id: str
    folder: str
    survey_report: str  # the run's own copy
    keep: KeepPolicy


def state_folder(backup_root: str, run_id: str) -> str:
    return os.path.join(backup_root, STATE_FOLDER, run_id)


def record_start(folder: str, root: str, keep: KeepPolicy, executor: str, report_path: str, sha256: str) -> str:
    """Keep the report the plan comes from (its bytes, checked against the digest of those the run
    validated), before any change; refuse a report that differs from the copy an earlier attempt of
    this run kept. Returns the copy's path: the run reads its resources from there."""
    os.makedirs(folder, exist_ok=True)
    copy = os.path.join(folder, SURVEY_COPY)
    if os.path.lexists(copy):
        if os.path.realpath(copy) != os.path.realpath(report_path) and not _same_report(copy, sha256, report_path):
            raise MitigationError(f"the survey report differs from the one run {os.path.basename(folder)} started "
                                  f"with ({copy}); it may have been edited. Use that copy, or survey again")
        return copy
    digest = hashlib.sha256()
    with open(report_path, "rb") as source, SaveFile(copy, binary=True) as target:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            target.write(chunk)
        if digest.hexdigest() != sha256:  # raised inside the block: the copy is never made
            raise MitigationError(f"{report_path} changed while the mitigation read it; nothing was changed, "
                                  "survey again")
    write_atomically(os.path.join(folder, RUN_RECORD),
                     json.dumps({"root": root, "keep": keep.value, "executor": executor}, indent=1).encode("utf-8"))
    return copy


def _same_report(copy: str, sha256: str, report_path: str) -> bool:
    """The same bytes; or else the same JSON (as parsed, event by event, never whole in memory)."""
    digest = hashlib.sha256()
    with open(copy, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    if digest.hexdigest() == sha256:
        return True
    try:
        with open(copy, "rb") as kept, open(report_path, "rb") as given:
            # The pure-Python parser: it reads names that are not UTF-8 (lone surrogates), as json.loads does.
            python = ijson.get_backend("python")
            pairs = itertools.zip_longest(python.parse(kept, use_float=True), python.parse(given, use_float=True))
            return all(a == b for a, b in pairs)
    except (OSError, ijson.JSONError, UnicodeDecodeError, ValueError):
        return False


def unfinished_runs(backup_root: str, root: str) -> list[UnfinishedRun]:
    """Runs on this ROOT that started (their report kept) and never wrote their mitigation report."""
    states = os.path.join(backup_root, STATE_FOLDER)
    try:
        run_ids = sorted(os.listdir(states))
    except OSError:
        return []
    found = []
    for run_id in run_ids:
        folder = os.path.join(states, run_id)
        if os.path.islink(folder) or os.path.lexists(os.path.join(folder, MITIGATION_REPORT)):
            continue
        try:
            with open(os.path.join(folder, RUN_RECORD), "rb") as handle:
                record = json.loads(handle.read())
            keep = KeepPolicy(record["keep"])
            # Inside XNAT a relaunch resumes from XNAT's own state (the XNAT executor's journal and listings).
            on_files = record.get("executor", "filesystem") == "filesystem"
            same_root = os.path.realpath(record["root"]) == os.path.realpath(root)
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a run this version started, or a dry run's: nothing to finish
        if same_root and on_files and os.path.isfile(os.path.join(folder, SURVEY_COPY)):
            found.append(UnfinishedRun(run_id, folder, os.path.join(folder, SURVEY_COPY), keep))
    return found
