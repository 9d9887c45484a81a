"""Mitigation and restore on real files through the real CLI: XNAT's conformance case, plans, staleness,
conflicts, locks, real read-only mounts and full disks, and injected faults."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.mitigation import (
    CONFORMANCE,
    assert_nothing_lost,
    legacy_session,
    mitigate,
    mitigation_report,
    needs_conformance,
    no_traceback,
    run_cli,
    snapshot,
    survey,
)


@pytest.fixture
def scan5(tmp_path: Path) -> Path:
    assert CONFORMANCE is not None
    root = tmp_path / "archive"
    resource = root / "SCANS" / "5" / "DICOM"
    shutil.copytree(CONFORMANCE / "xnat-scan5-duplicates", resource)
    (resource / "expectedNames.txt").unlink()
    return root


# --- XNAT's own test case --------------------------------------------------------------------------


@needs_conformance
def test_scan5_mitigation_matches_xnat_and_restores_byte_for_byte(scan5: Path, tmp_path: Path) -> None:
    assert CONFORMANCE is not None
    out, backup = tmp_path / "out", tmp_path / "backup"
    before = snapshot(scan5)
    survey(scan5, out)
    result = mitigate(scan5, out, backup)
    no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr

    report = mitigation_report(out)
    (resource,) = report["resources"]
    xnat = resource["xnat"]
    assert xnat["totalRemovedFiles"] == 36 == len(xnat["removedFiles"])  # backed up and gone from old names
    assert xnat["totalMovedFiles"] == 31 == len(xnat["movedFiles"])
    assert xnat["totalFileErrors"] == 0 and resource["status"] == "MITIGATED"
    expected = set((CONFORMANCE / "xnat-scan5-duplicates" / "expectedNames.txt").read_text().split())
    folder = scan5 / "SCANS" / "5" / "DICOM"
    assert {p.name for p in folder.iterdir()} - {"scan_5_catalog.xml"} == expected

    catalog = (folder / "scan_5_catalog.xml").read_text()
    entries = re.findall(r"<cat:entry [^>]*/>", catalog)
    assert len(entries) == 60
    assert {re.search(r' URI="([^"]+)"', e).group(1) for e in entries} == expected  # type: ignore[union-attr]
    assert {re.search(r' ID="([^"]+)"', e).group(1) for e in entries} == expected  # type: ignore[union-attr]
    original = (CONFORMANCE / "xnat-scan5-duplicates" / "scan_5_catalog.xml").read_text()
    assert catalog.split("<cat:entries>")[0] == original.split("<cat:entries>")[0]  # namespaces, metaFields
    for entry in entries:  # UID, digest and the rest of each kept entry are untouched
        uid = re.search(r' UID="([^"]+)"', entry).group(1)  # type: ignore[union-attr]
        digest = re.search(r' digest="([^"]+)"', entry).group(1)  # type: ignore[union-attr]
        assert f'UID="{uid}"' in original and f'digest="{digest}"' in original
        assert 'xsi:type="cat:dcmEntry"' in entry

    # every removed original sits in the backup, byte for byte
    for original_path, backup_path in xnat["removedFiles"].items():
        assert hashlib.sha256(Path(backup_path).read_bytes()).hexdigest() == before[original_path]

    # a second run is a no-op
    after = snapshot(scan5)
    again = mitigate(scan5, out, backup)
    assert again.returncode == 0 and snapshot(scan5) == after
    resurvey = survey(scan5, tmp_path / "out2")
    assert resurvey["resources"][0]["requestStatus"] == "CONFORMING"
    assert run_cli("mitigate", scan5, "--report", tmp_path / "out2" / "survey-report.json",
                   "--backup-dir", backup, "--output", tmp_path / "out3").returncode == 0
    assert snapshot(scan5) == after

    restored = run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json")
    no_traceback(restored)
    assert restored.returncode == 0, restored.stdout
    assert snapshot(scan5) == before  # the 65 files and the catalog, byte for byte
    assert run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json").returncode == 0
    assert snapshot(scan5) == before


@needs_conformance
def test_dry_run_plans_and_changes_nothing(scan5: Path, tmp_path: Path) -> None:
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(scan5, out)
    before = snapshot(scan5)
    result = mitigate(scan5, out, backup, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert snapshot(scan5) == before and not backup.exists()
    plan = json.loads((out / "mitigation" / "mitigation-plan.json").read_text())
    assert plan["totals"] == {"resources": 1, "renames": 31, "removals": 5, "retained": 0, "conflicts": 0}
    kept = [a for a in plan["resources"][0]["actions"] if a["reason"].startswith("DUPLICATE_KEPT")]
    assert len(kept) == 5 and all(a["newPath"] for a in kept)
    report = mitigation_report(out)
    assert report["dryRun"] and report["resources"][0]["status"] == "PLANNED"


# --- synthesized sessions -------------------------------------------------------------------------

def test_keep_policy_prefers_identical_copy_at_expected_name(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=6, duplicates=3, differing=1)
    out = tmp_path / "out"
    survey(root, out)
    result = mitigate(root, out, tmp_path / "backup")
    assert result.returncode == 0, result.stdout
    actions = mitigation_report(out)["resources"][0]["actions"]
    kept = {a["sopInstanceUID"]: a for a in actions if a["reason"].startswith("DUPLICATE_KEPT")}
    assert sum(1 for a in kept.values() if a["action"] == "RETAIN"
               and a["reason"] == "DUPLICATE_KEPT:IDENTICAL_AT_EXPECTED_NAME") == 2
    assert sum(1 for a in kept.values() if a["reason"] == "DUPLICATE_KEPT:NEWEST") == 1


def test_stale_resource_is_skipped_whole(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "a")
    out = tmp_path / "out"
    report = survey(root, out)
    victim = next(f for r in report["resources"] for f in r["files"] if f["status"] == "MISMATCHED")
    with open(root / victim["path"], "ab") as handle:
        handle.write(b"\0")
    (root / "SCANS" / "2" / "DICOM" / "late-arrival.dcm").write_bytes(b"x")
    before = snapshot(root)
    result = mitigate(root, out, tmp_path / "backup")
    assert result.returncode == 1
    statuses = {r["path"]: r for r in mitigation_report(out)["resources"]}
    assert statuses["SCANS/1/DICOM"]["status"] == "STALE" and "changed" in statuses["SCANS/1/DICOM"]["statusReason"]
    assert statuses["SCANS/2/DICOM"]["status"] == "STALE" and "added" in statuses["SCANS/2/DICOM"]["statusReason"]
    assert snapshot(root) == before


def test_never_overwrites_a_file_holding_the_expected_name(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=4, duplicates=0)
    out = tmp_path / "out"
    first = survey(root, out)
    mismatch = next(f for f in first["resources"][0]["files"] if f["status"] == "MISMATCHED")
    squatter = root / "SCANS" / "1" / "DICOM" / mismatch["expectedName"]
    squatter.write_text("not DICOM, but it has the name")
    report = survey(root, out)
    result = mitigate(root, out, tmp_path / "backup")
    assert result.returncode == 1
    resource = mitigation_report(out)["resources"][0]
    assert resource["conflicts"] == [{"path": mismatch["path"], "target": f"SCANS/1/DICOM/{mismatch['expectedName']}",
                                      "reason": "TARGET_TAKEN"}]
    assert squatter.read_text() == "not DICOM, but it has the name" and (root / mismatch["path"]).exists()
    assert resource["xnat"]["totalMovedFiles"] == report["resources"][0]["xnat"]["totalMismatchedFiles"] - 1


def test_concurrent_mitigation_of_a_resource_is_refused(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=4)
    out = tmp_path / "out"
    survey(root, out)
    before = snapshot(root)
    fd = os.open(root / "SCANS" / "1" / "DICOM", os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = mitigate(root, out, tmp_path / "backup")
    finally:
        os.close(fd)
    assert result.returncode == 1
    assert mitigation_report(out)["resources"][0]["status"] == "LOCKED"
    assert snapshot(root) == before


def test_injected_backup_and_delete_faults_lose_nothing(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=8, duplicates=3, differing=0)
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(root, out)
    before = snapshot(root)
    result = mitigate(root, out, backup, env={"XNAT_RESOURCE_SURVEY_FAULTS": "enospc_on_backup=2,eio_on_unlink=1"})
    no_traceback(result)
    assert result.returncode == 1
    xnat = mitigation_report(out)["resources"][0]["xnat"]
    assert len(xnat["backupErrors"]) == 1
    (failed,) = xnat["backupErrors"]
    assert "No space left" in xnat["backupErrors"][failed]["message"]
    assert (root / failed).exists()  # a failed backup blocks every change to that file
    assert len(xnat["deleteErrors"]) + len(xnat["moveErrors"]) == 1
    assert_nothing_lost(before, root, backup)


# --- real read-only mounts and full disks (root can bind-mount; skipped elsewhere) ---------------


@pytest.fixture
def mount_point(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "mnt"
    target.mkdir()
    yield target
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")


def test_read_only_archive_changes_nothing(tmp_path: Path, mount_point: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=4)
    _mount("--bind", str(root), str(mount_point))
    _mount("-o", "remount,ro,bind", str(mount_point))
    out = tmp_path / "out"
    survey(mount_point, out)
    before = snapshot(root)
    result = mitigate(mount_point, out, tmp_path / "backup")
    no_traceback(result)
    assert result.returncode == 1
    resource = mitigation_report(out)["resources"][0]
    assert resource["status"] == "FAILED" and "read-only" in resource["statusReason"]
    assert snapshot(root) == before


def test_full_backup_disk_gives_errors_not_losses(tmp_path: Path, mount_point: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=30, duplicates=0)
    _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point))
    out = tmp_path / "out"
    survey(root, out)
    before = snapshot(root)
    result = mitigate(root, out, mount_point)
    no_traceback(result)
    assert result.returncode in (1, 3)
    if result.returncode == 1:
        xnat = mitigation_report(out)["resources"][0]["xnat"]
        assert xnat["backupErrors"] and all("No space" in e["message"] for e in xnat["backupErrors"].values())
        for path in xnat["backupErrors"]:
            assert (root / path).exists()
    else:  # the journal itself could not be written: nothing may have moved without it
        assert "No space" in result.stdout
    assert_nothing_lost(before, root, mount_point)


def test_permission_denied_on_one_file_blocks_only_that_file(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=6, duplicates=0)
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(root, out)
    before = snapshot(root)
    result = mitigate(root, out, backup, env={"XNAT_RESOURCE_SURVEY_FAULTS": "eacces_on_backup=3"})
    no_traceback(result)
    assert result.returncode == 1
    resource = mitigation_report(out)["resources"][0]
    (denied,) = resource["xnat"]["backupErrors"].values()
    assert "Permission denied" in denied["message"] and (root / denied["file"]).exists()
    assert resource["xnat"]["totalMovedFiles"] == 5 and resource["status"] == "PARTIAL"
    assert_nothing_lost(before, root, backup)


def test_file_deleted_after_the_survey_makes_the_resource_stale(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "a", scans=1, per_scan=4, duplicates=0)
    out = tmp_path / "out"
    report = survey(root, out)
    victim = report["resources"][0]["files"][0]["path"]
    (root / victim).unlink()
    before = snapshot(root)
    assert mitigate(root, out, tmp_path / "backup").returncode == 1
    resource = mitigation_report(out)["resources"][0]
    assert resource["status"] == "STALE" and "gone" in resource["statusReason"]
    assert snapshot(root) == before


def test_backup_cut_short_by_a_crash_is_copied_again(tmp_path: Path) -> None:
    """A backup not yet journaled as done (its batch not synced when the power went) is redone, not trusted."""
    root = legacy_session(tmp_path / "a", scans=1, per_scan=6, duplicates=0)
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(root, out)
    before = snapshot(root)
    # Lines 1-3: the attempt's temporary token, resource-start, backup start; line 4: the first backup done.
    crashed = mitigate(root, out, backup, env={"XNAT_RESOURCE_SURVEY_FAULTS": "crash_after_journal=4"})
    assert crashed.returncode == -9
    journal = next(backup.rglob("journal.jsonl")).read_text().splitlines()
    journaled = {json.loads(line).get("backup") for line in journal}
    copies = [p for p in backup.rglob("*.dcm") if str(p) not in journaled]
    assert copies, "the crash came after every backup was journaled"
    copies[0].write_bytes(copies[0].read_bytes()[:100])  # what an unsynced copy can look like after a power cut
    assert_nothing_lost(before, root, backup)
    result = mitigate(root, out, backup)
    assert result.returncode == 0, result.stdout
    restored = run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json")
    assert restored.returncode == 0 and snapshot(root) == before
