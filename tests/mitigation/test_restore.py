"""Restore called directly, after a mitigation run through the library (the CLI's attacks and kills are in
test_restore_safety.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from container_app.core.errors import UsageError
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
    assert "damaged, not the archive" in files[removal["path"]]["reason"]  # the culprit is the backup
    assert not (root / removal["path"]).exists()  # never replaced by bytes that are not the original's


def test_the_restore_is_journaled_in_the_runs_state_folder(tmp_path: Path, survey_lib: SurveyLib) -> None:
    _, _, report = mitigated(tmp_path, survey_lib)
    summary = restore(RestoreRequest(report=str(report), output=str(tmp_path / "restore")))
    document = json.loads(Path(summary.report_path).read_text("utf-8"))
    journal = Path(document["journal"])
    assert journal.parent == tmp_path / "backup" / ".xnat-resource-survey" / document["mitigationRunId"]
    steps = [json.loads(line)["step"] for line in journal.read_text("utf-8").splitlines()]
    assert {"restore-resource", "temporary", "restore-file", "restore-catalog"} <= set(steps)
    assert steps[-1] == "restore-resource"


def test_an_output_folder_inside_root_is_refused(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, _, report = mitigated(tmp_path, survey_lib)
    after = snapshot(root)
    with pytest.raises(UsageError, match="must not be inside ROOT"):
        restore(RestoreRequest(report=str(report), output=str(root / "out")))
    assert snapshot(root) == after and not (root / "out").exists()


def test_an_xnat_resource_that_cannot_be_restored_does_not_stop_the_others(monkeypatch: pytest.MonkeyPatch) -> None:
    from container_app.mitigation.restore import xnat as restore_xnat
    from container_app.mitigation.xnat.client import XnatClient

    class Client:
        justification = None

        def justify(self, justification: object) -> None:
            self.justification = justification

        def close(self) -> None:
            pass

    monkeypatch.setattr(XnatClient, "connect", lambda host=None: Client())
    action = {"action": "REMOVE", "path": "SCANS/1/DICOM/a.dcm", "newPath": None, "sha256": "0" * 64,
              "outcome": "DONE"}
    report = {"runId": "r1", "root": "/input", "xnatServer": {"host": "http://xnat"}, "resources": [
        {"path": "SCANS/1/DICOM", "way": "file-operations", "xnatTarget": None, "actions": [action]},
        {"path": "SCANS/2/DICOM", "way": "api", "xnat": {"cachePath": "/cache/1"},
         "actions": [{**action, "path": "SCANS/2/DICOM/a.dcm"}]},
    ]}
    result = restore_xnat.restore_xnat_report(report)
    first, second = result["resources"]
    assert "does not place it in XNAT" in first["error"] and first["files"][0]["outcome"] == "REFUSED"
    assert "/cache/1" in second["files"][0]["reason"]  # the next resource was still taken up


def test_restored_files_keep_their_permissions_and_modification_times(tmp_path: Path, survey_lib: SurveyLib) -> None:
    """A restore puts back the file as it was: its permission bits and mtime, not a 0600 file dated now."""
    root = legacy_session(tmp_path / "archive", scans=1, per_scan=4, duplicates=1, differing=1)
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith("_catalog.xml"))
    for number, path in enumerate(files):
        os.utime(path, ns=(1_500_000_000_000_000_000 + number, 1_400_000_000_123_456_789 + number))
        path.chmod((0o640, 0o444, 0o604)[number % 3])
    before = {p: (p.stat().st_mode & 0o777, p.stat().st_mtime_ns) for p in files}
    survey_out = tmp_path / "survey"
    survey_lib(root, output=survey_out)
    request = MitigationRequest(
        root=str(root), output=str(tmp_path / "out"), report=str(survey_out / "survey-report.json"),
        survey=lambda output: str(survey_out / "survey-report.json"), template="unused",
        backup_dir=str(tmp_path / "backup"), dry_run=False, keep=KeepPolicy.NEWEST,
        executor=ExecutorChoice.FILESYSTEM, rest_file_operations=RestFileOperations.REFUSE)
    summary = mitigate(request)
    assert any(not p.exists() for p in files)  # the mitigation moved or removed some of them
    restored = restore(RestoreRequest(report=summary.report_path, output=str(tmp_path / "restored")))
    assert restored.refused == 0
    assert {p: (p.stat().st_mode & 0o777, p.stat().st_mtime_ns) for p in files} == before
