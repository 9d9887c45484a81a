"""Paths that come from outside, through the real CLI: links swapped in after the survey, reports edited to
steer a change, two files with one base name, and a relaunch after a kill that surveys afresh.

Each attack has a sentinel folder outside ROOT and BACKUP that must stay byte-identical, every original's
bytes must be in ROOT or BACKUP afterwards, and no output may say "internal error".
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.mitigation import (
    assert_nothing_lost,
    legacy_session,
    mitigate,
    mitigation_report,
    no_traceback,
    run_cli,
    snapshot,
    survey,
)


def _sentinel(tmp_path: Path) -> Path:
    folder = tmp_path / "sentinel"
    folder.mkdir()
    (folder / "keep.txt").write_text("outside ROOT and BACKUP\n")
    return folder


def _clean(result: Any) -> None:
    no_traceback(result)
    assert "internal error" not in (result.stdout + result.stderr).lower()


def _scan_folder(root: Path) -> Path:
    return next(p.parent for p in sorted(root.rglob("*_catalog.xml")))


def test_a_resource_folder_swapped_for_a_link_after_the_survey_is_never_followed(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "archive", scans=2, per_scan=4, duplicates=1)
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(root, out)
    scan = _scan_folder(root)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(scan), str(elsewhere))
    scan.symlink_to(elsewhere, target_is_directory=True)
    outside, before_all = snapshot(elsewhere), snapshot(root)
    sentinel = _sentinel(tmp_path)
    result = mitigate(root, out, backup)
    _clean(result)
    assert snapshot(elsewhere) == outside, "files were changed through the link"
    assert snapshot(sentinel) == {"keep.txt": snapshot(sentinel)["keep.txt"]}
    statuses = {r["path"]: r["status"] for r in mitigation_report(out)["resources"]}
    linked = str(scan.relative_to(root))
    assert statuses[linked] == "STALE"
    assert any(s == "MITIGATED" for p, s in statuses.items() if p != linked)  # the others go on
    assert_nothing_lost(before_all, root, backup)


def test_the_dry_run_shows_the_link_the_real_run_would_refuse(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "archive", scans=1, per_scan=3, duplicates=0)
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(root, out)
    scan = _scan_folder(root)
    shutil.move(str(scan), str(tmp_path / "elsewhere"))
    scan.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    result = mitigate(root, out, backup, "--dry-run")
    _clean(result)
    [resource] = mitigation_report(out)["resources"]
    assert resource["status"] == "STALE" and "link" in resource["statusReason"]


def _edited_report(tmp_path: Path, edit: Any) -> tuple[Path, Path, Path, dict[str, str]]:
    root = legacy_session(tmp_path / "archive", scans=1, per_scan=4, duplicates=1)
    out, backup = tmp_path / "out", tmp_path / "backup"
    report = survey(root, out)
    edit(report["resources"][0], tmp_path)
    (out / "survey-report.json").write_text(json.dumps(report))
    return root, out, backup, snapshot(root)


def _expected_name_with_a_folder(resource: dict[str, Any], _tmp: Path) -> None:
    path = next(iter(resource["xnat"]["mismatchedFiles"]))
    resource["xnat"]["mismatchedFiles"][path] = "../../../../sentinel/x.dcm"


def _catalog_outside(resource: dict[str, Any], _tmp: Path) -> None:
    resource["identity"]["catalogPath"] = "../../sentinel/keep.txt"


def _file_outside(resource: dict[str, Any], _tmp: Path) -> None:
    resource["files"][0]["path"] = "../sentinel/keep.txt"


def _unknown_file(resource: dict[str, Any], _tmp: Path) -> None:
    resource["xnat"]["mismatchedFiles"]["nowhere/x.dcm"] = "y.dcm"


def _resource_absolute(resource: dict[str, Any], tmp: Path) -> None:
    resource["path"] = str(tmp / "sentinel")


def _file_twice(resource: dict[str, Any], _tmp: Path) -> None:
    resource["files"].append(dict(resource["files"][0]))


@pytest.mark.parametrize("edit", [_expected_name_with_a_folder, _catalog_outside, _file_outside, _unknown_file,
                                  _resource_absolute, _file_twice], ids=lambda f: f.__name__.strip("_"))
def test_a_survey_report_edited_to_steer_a_change_is_refused_before_any(tmp_path: Path, edit: Any) -> None:
    root, out, backup, before = _edited_report(tmp_path, edit)
    sentinel = _sentinel(tmp_path)
    result = mitigate(root, out, backup)
    _clean(result)
    assert result.returncode != 0
    assert "cannot be used for a mitigation" in result.stderr + result.stdout
    assert snapshot(root) == before and snapshot(sentinel) == {"keep.txt": snapshot(sentinel)["keep.txt"]}
    assert not (backup / "P1").exists()


def test_two_files_with_one_base_name_in_one_resource_keep_separate_backups(tmp_path: Path) -> None:
    """One resource holding `IM1` and `sub/IM1` (same base name, different bytes), both misnamed: each
    backup at its path relative to the resource (keyed by the base name, one overwrote the other)."""
    root = legacy_session(tmp_path / "archive", scans=2, per_scan=2, duplicates=0)
    scans = sorted(p.parent for p in root.rglob("*_catalog.xml"))
    flat = tmp_path / "flat"
    for folder, scan in ((flat / "a", scans[0]), (flat / "a" / "sub", scans[1])):
        folder.mkdir(parents=True)
        for n, file in enumerate(sorted(p for p in scan.iterdir() if p.suffix != ".xml")):
            shutil.copy2(file, folder / ("IM1" if n == 0 else file.name))
    out, backup = tmp_path / "out", tmp_path / "backup"
    report = survey(flat, out)
    by_path = {r["path"]: r for r in report["resources"]}
    outer, inner = by_path["a"], by_path.pop("a/sub")
    outer["files"] += inner["files"]
    outer["xnat"]["mismatchedFiles"].update(inner["xnat"]["mismatchedFiles"])
    report["resources"] = list(by_path.values())
    (out / "survey-report.json").write_text(json.dumps(report))
    before = snapshot(flat)
    result = mitigate(flat, out, backup)
    _clean(result)
    assert result.returncode == 0, result.stdout + result.stderr
    backups = {a["path"]: a["backupPath"] for r in mitigation_report(out)["resources"] for a in r["actions"]}
    assert backups["a/IM1"] != backups["a/sub/IM1"]
    assert_nothing_lost(before, flat, backup)
    restored = run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json")
    _clean(restored)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert snapshot(flat) == before


def test_a_relaunch_that_surveys_afresh_finishes_the_killed_run_first(tmp_path: Path) -> None:
    """Without --report (as the image runs in XNAT): the killed run is finished, then restorable."""
    root = legacy_session(tmp_path / "archive", scans=2, per_scan=5, duplicates=1)
    out, backup = tmp_path / "out", tmp_path / "backup"
    before = snapshot(root)
    command = ("mitigate", root, "--backup-dir", backup, "--output", out)
    crashed = run_cli(*command, env={"XNAT_RESOURCE_SURVEY_FAULTS": "crash_after_journal=12"})
    assert crashed.returncode == -9
    [state] = list((backup / ".xnat-resource-survey").iterdir())
    relaunched = run_cli(*command)
    _clean(relaunched)
    assert relaunched.returncode == 0, relaunched.stdout + relaunched.stderr
    assert "finishing an unfinished mitigation" in relaunched.stdout + relaunched.stderr
    resumed = out / "resumed" / state.name / "mitigation-report.json"
    assert resumed.is_file() and (state / "mitigation-report.json").is_file()
    # Every catalog names exactly the files of its folder.
    for catalog in root.rglob("*_catalog.xml"):
        names = {p.name for p in catalog.parent.iterdir() if p != catalog}
        text = catalog.read_text()
        assert all(f'URI="{name}"' in text for name in names)
        assert text.count("<cat:entry") == len(names)
    # The first run restores, then the relaunch's own (which found nothing left to do).
    restored = run_cli("restore", "--report", resumed)
    _clean(restored)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert snapshot(root) == before


def test_a_report_given_again_for_a_started_run_must_match_the_runs_copy(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "archive", scans=1, per_scan=4, duplicates=1)
    out, backup = tmp_path / "out", tmp_path / "backup"
    report = survey(root, out)
    crashed = mitigate(root, out, backup, env={"XNAT_RESOURCE_SURVEY_FAULTS": "crash_after_journal=5"})
    assert crashed.returncode == -9
    report["resources"][0]["files"][0]["mtimeNs"] += 1  # an edit the schema allows
    (out / "survey-report.json").write_text(json.dumps(report))
    result = mitigate(root, out, backup)
    _clean(result)
    assert result.returncode != 0 and "differs from the one run" in result.stdout + result.stderr
