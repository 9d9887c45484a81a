"""Restore called directly, after a mitigation run through the library."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from container_app.core.vocabulary import ExecutorChoice, KeepPolicy, RestFileOperations, RestoreOutcome
from container_app.mitigation.request import MitigationRequest, RestoreRequest
from container_app.mitigation.restore.run import restore
from container_app.mitigation.run import mitigate
from tests.conftest import SurveyLib
from tests.helpers.mitigation import legacy_session, snapshot


def mitigated(tmp_path: Path, survey_lib: SurveyLib) -> tuple[Path, dict[str, str], Path]:
    root = legacy_session(tmp_path / "archive", scans=2, per_scan=5, duplicates=2, differing=1)
    before = snapshot(root)
    survey_out = tmp_path / "survey"
    survey_lib(root, output=survey_out)
    out = tmp_path / "out"
    request = MitigationRequest(
        root=str(root), output=str(out), report=str(survey_out / "survey-report.json"),
        survey=lambda output: str(survey_out / "survey-report.json"), template="unused",
        backup_dir=str(tmp_path / "backup"), dry_run=False, keep=KeepPolicy.NEWEST,
        executor=ExecutorChoice.FILESYSTEM, rest_file_operations=RestFileOperations.REFUSE)
    summary = mitigate(request)
    assert not summary.troubled and snapshot(root) != before
    return root, before, Path(summary.report_path)


def outcomes(path: str) -> dict[str, int]:
    document: dict[str, Any] = json.loads(Path(path).read_text("utf-8"))
    return document["totals"]  # type: ignore[no-any-return]


def test_restore_brings_back_every_file_and_catalog_byte_for_byte(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, before, report = mitigated(tmp_path, survey_lib)
    summary = restore(RestoreRequest(report=str(report), output=None))
    assert summary.refused == 0
    assert Path(summary.report_path) == report.parent / "restore-report.json"
    assert snapshot(root) == before  # files and catalogs
    assert outcomes(summary.report_path)[RestoreOutcome.RESTORED.value] > 0


def test_restoring_twice_finds_everything_already_restored(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, before, report = mitigated(tmp_path, survey_lib)
    restore(RestoreRequest(report=str(report), output=str(tmp_path / "first")))
    second = restore(RestoreRequest(report=str(report), output=str(tmp_path / "second")))
    totals = outcomes(second.report_path)
    assert second.refused == 0 and totals[RestoreOutcome.RESTORED.value] == 0
    assert totals[RestoreOutcome.ALREADY_RESTORED.value] > 0
    assert snapshot(root) == before


def test_a_tampered_backup_is_refused(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, _, report = mitigated(tmp_path, survey_lib)
    document = json.loads(report.read_text("utf-8"))
    removal = next(a for r in document["resources"] for a in r["actions"]
                   if a["action"] == "REMOVE" and a["outcome"] == "DONE")
    Path(removal["backupPath"]).write_bytes(b"not the original")
    summary = restore(RestoreRequest(report=str(report), output=str(tmp_path / "restore")))
    assert summary.refused == 1
    files = {f["path"]: f for r in json.loads(Path(summary.report_path).read_text("utf-8"))["resources"]
             for f in r["files"]}
    assert files[removal["path"]]["outcome"] == RestoreOutcome.REFUSED.value
    assert not (root / removal["path"]).exists()  # never replaced by bytes that are not the original's
