"""Restore as an attacker and a power cut would have it, through the real CLI: killed anywhere, backups
tampered with or missing, reports edited to steer it outside ROOT and BACKUP, a folder swapped for a link.

After a kill and a rerun the archive must be byte-identical to before the mitigation, with no stray name;
a resource that cannot come back is reported and the others still do; every refusal names the right
culprit, and no output says "internal error".
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from container_app.demo.archive import build_demo_archive
from container_app.mitigation.journal import STATE_FOLDER
from container_app.mitigation.restore.filesystem import RESTORE_JOURNAL
from container_app.support.fsutil import temporary_name
from tests.helpers.mitigation import assert_nothing_lost, legacy_session, mitigate, no_traceback, run_cli, survey

FAULTS = "XNAT_RESOURCE_SURVEY_FAULTS"


def tree(folder: Path) -> dict[str, str]:
    """Every name below `folder` (files, folders, links, hidden ones too) with its sha256, or its kind."""
    found: dict[str, str] = {}
    for base, folders, files in os.walk(folder):
        for name in folders + files:
            path = Path(base, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = f"link -> {os.readlink(path)}"
            elif path.is_dir():
                found[rel] = "folder"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def clean(result: subprocess.CompletedProcess[str]) -> None:
    no_traceback(result)
    assert "internal error" not in (result.stdout + result.stderr).lower(), result.stdout[-2000:]


@dataclass(frozen=True)
class Mitigated:
    root: Path
    backup: Path
    out: Path
    before: dict[str, str]  # the archive before the mitigation
    after: dict[str, str]  # the archive after it

    @property
    def original_files(self) -> dict[str, str]:
        """The sha256 of every file before the mitigation (folders left out)."""
        return {k: v for k, v in self.before.items() if v != "folder" and not v.startswith("link")}

    @property
    def report_path(self) -> Path:
        return self.out / "mitigation" / "mitigation-report.json"

    def report(self) -> dict[str, Any]:
        return json.loads(self.report_path.read_text("utf-8"))  # type: ignore[no-any-return]

    @property
    def state(self) -> Path:
        return self.backup / STATE_FOLDER / str(self.report()["runId"])

    def restore(self, *extra: str, env: dict[str, str] | None = None,
                report: Path | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli("restore", "--report", report or self.report_path, *extra, env=env)

    def restore_report(self) -> dict[str, Any]:
        return json.loads((self.out / "mitigation" / "restore-report.json").read_text("utf-8"))  # type: ignore[no-any-return]


def _mitigated(root: Path, tmp_path: Path) -> Mitigated:
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(root, out)
    before = tree(root)
    result = mitigate(root, out, backup)
    assert result.returncode == 0, result.stdout[-2000:]
    after = tree(root)
    assert after != before
    return Mitigated(root, backup, out, before, after)


def demo(tmp_path: Path) -> Mitigated:
    """The demo session mitigated: SCANS/2 and SCANS/4 renamed, SCANS/3's duplicates removed."""
    return _mitigated(build_demo_archive(tmp_path / "archive").session_root, tmp_path)


def _below(snapshot: dict[str, str], folder: str) -> dict[str, str]:
    return {k: v for k, v in snapshot.items() if k == folder or k.startswith(folder + "/")}


def _sentinel(tmp_path: Path) -> Path:
    folder = tmp_path / "sentinel"
    folder.mkdir()
    (folder / "keep.txt").write_text("outside ROOT and BACKUP\n")
    return folder


def _files_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"]: f for r in report["resources"] for f in r["files"]}


# --- (a) killed anywhere, rerun --------------------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 11, 2027])
def test_restore_killed_after_random_journal_lines_then_rerun(tmp_path: Path, seed: int) -> None:
    run = demo(tmp_path)
    rng = random.Random(seed)
    kills = 0
    for _attempt in range(60):
        result = run.restore(env={FAULTS: f"crash_after_journal={rng.randint(1, 9)}"})
        if result.returncode != -signal.SIGKILL:
            break
        kills += 1
        assert_nothing_lost(run.original_files, run.root, run.backup)
    assert kills >= 2, "the kills did not spread over the restore"
    clean(result)
    assert result.returncode == 0, result.stdout[-2000:]
    assert tree(run.root) == run.before  # every byte, and not one name more or less
    again = run.restore()
    clean(again)
    assert again.returncode == 0 and "already restored" in again.stdout
    assert run.restore_report()["totals"]["RESTORED"] == 0 and tree(run.root) == run.before


def test_restore_killed_at_random_moments_then_rerun(tmp_path: Path) -> None:
    run = _mitigated(legacy_session(tmp_path / "archive", scans=3, per_scan=600, duplicates=200, differing=20),
                     tmp_path)
    journal = run.state / RESTORE_JOURNAL
    command = [sys.executable, "-m", "container_app", "restore", "--report", str(run.report_path),
               "--log-format", "json"]
    rng = random.Random(20270101)
    interrupted = 0
    for _ in range(6):
        size = journal.stat().st_size if journal.exists() else 0
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        # Kill inside the work, not in the interpreter's start: once this attempt's first line is committed.
        while process.poll() is None and time.monotonic() < deadline:
            if journal.exists() and journal.stat().st_size > size:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.03))
        process.send_signal(signal.SIGKILL)
        interrupted += process.wait() == -signal.SIGKILL
        assert_nothing_lost(run.original_files, run.root, run.backup)
    assert interrupted >= 3, "the kills came after the restore had finished"
    result = run.restore()
    clean(result)
    assert result.returncode == 0, result.stdout[-2000:]
    assert tree(run.root) == run.before


def test_a_rerun_removes_exactly_the_temporaries_a_killed_attempt_named(tmp_path: Path) -> None:
    """A kill in the middle of a copy leaves its temporary; the rerun removes it (its token is journaled)
    and leaves a file that merely looks like one of ours."""
    run = demo(tmp_path)
    killed = run.restore(env={FAULTS: "crash_after_journal=2"})  # right after the first resource's token
    assert killed.returncode == -signal.SIGKILL
    lines = [json.loads(line) for line in (run.state / RESTORE_JOURNAL).read_text("utf-8").splitlines()]
    [token_line] = [line for line in lines if line["step"] == "temporary"]
    resource, token = token_line["resource"], token_line["token"]
    [document] = [r for r in run.report()["resources"] if r["path"] == resource]
    leftovers = []
    for path in [a["path"] for a in document["actions"] if a["outcome"] == "DONE" and a["action"] != "RETAIN"]:
        folder, name = path.rsplit("/", 1)
        leftovers.append(run.root / folder / temporary_name(name, token))
    catalog_folder, catalog_name = document["catalog"]["path"].rsplit("/", 1)
    staged = temporary_name(catalog_name, token)
    leftovers += [run.root / catalog_folder / staged, run.root / catalog_folder / temporary_name(staged, token)]
    for leftover in leftovers:
        leftover.write_bytes(b"half a copy")
    decoy = run.root / catalog_folder / temporary_name(catalog_name, "0123456789abcdef")
    decoy.write_bytes(b"not ours: its token was never journaled")
    result = run.restore()
    clean(result)
    assert result.returncode == 0, result.stdout[-2000:]
    assert not any(p.exists() for p in leftovers)
    assert decoy.read_bytes().startswith(b"not ours")
    decoy.unlink()
    assert tree(run.root) == run.before


# --- (b), (c) a backup tampered with or missing, a file in the way -----------------------------------


def test_a_tampered_backup_is_blamed_and_the_other_resources_are_restored(tmp_path: Path) -> None:
    run = demo(tmp_path)
    removal = next(a for r in run.report()["resources"] for a in r["actions"]
                   if a["action"] == "REMOVE" and a["outcome"] == "DONE")
    Path(removal["backupPath"]).write_bytes(b"not the original")
    result = run.restore()
    clean(result)
    assert result.returncode == 1
    file = _files_of(run.restore_report())[removal["path"]]
    assert file["outcome"] == "REFUSED"
    assert "backup" in file["reason"] and "damaged" in file["reason"] and "not the archive" in file["reason"]
    assert not (run.root / removal["path"]).exists()  # never replaced by bytes that are not the original's
    now = tree(run.root)
    assert now == {k: v for k, v in run.before.items() if k != removal["path"]}


def test_a_file_in_the_way_is_blamed_on_the_archive(tmp_path: Path) -> None:
    run = demo(tmp_path)
    removal = next(a for r in run.report()["resources"] for a in r["actions"]
                   if a["action"] == "REMOVE" and a["outcome"] == "DONE")
    (run.root / removal["path"]).write_bytes(b"someone else's file")
    result = run.restore()
    clean(result)
    assert result.returncode == 1
    file = _files_of(run.restore_report())[removal["path"]]
    assert file["outcome"] == "REFUSED" and "in the archive now holds a different file" in file["reason"]
    assert "never overwritten" in file["reason"] and "damaged" not in file["reason"]
    assert (run.root / removal["path"]).read_bytes() == b"someone else's file"


def test_a_missing_catalog_backup_leaves_its_resource_and_restores_the_others(tmp_path: Path) -> None:
    run = demo(tmp_path)
    resources = run.report()["resources"]
    victim = next(r for r in resources if r["path"] == "SCANS/2/DICOM")
    Path(victim["catalog"]["backupPath"]).unlink()
    result = run.restore()
    clean(result)
    assert result.returncode == 1
    restored = {r["path"]: r for r in run.restore_report()["resources"]}  # written, whatever failed
    error = restored["SCANS/2/DICOM"]["error"]
    assert "backup of the catalog is missing" in error and "nothing of this resource was restored" in error
    now = tree(run.root)
    assert _below(now, "SCANS/2") == _below(run.after, "SCANS/2")  # left whole: files and catalog agree
    for other in ("SCANS/3", "SCANS/4"):
        assert _below(now, other) == _below(run.before, other)
    assert "error" not in restored["SCANS/3/DICOM"] and "error" not in restored["SCANS/4/DICOM"]


# --- (d), (e) reports edited to steer the restore ------------------------------------------------------


def _first(resource_kind: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def find(report: dict[str, Any]) -> dict[str, Any]:
        return next(a for r in report["resources"] for a in r["actions"]
                    if a["action"] == resource_kind and a["outcome"] == "DONE")
    return find


def _root_elsewhere(report: dict[str, Any], sentinel: Path) -> None:
    report["root"] = str(sentinel)


def _backup_path_outside(report: dict[str, Any], sentinel: Path) -> None:
    _first("REMOVE")(report)["backupPath"] = str(sentinel / "keep.txt")


def _backup_path_climbing(report: dict[str, Any], sentinel: Path) -> None:
    action = _first("REMOVE")(report)
    resource = next(r for r in report["resources"] if action in r["actions"])
    climb = "/".join([".."] * (len(Path(resource["backupFolder"]).parts) + 1))
    action["backupPath"] = f"{resource['backupFolder']}/{climb}{sentinel}/keep.txt"


def _backup_in_another_resources_folder(report: dict[str, Any], _sentinel: Path) -> None:
    action = _first("REMOVE")(report)
    other = next(r for r in report["resources"] if action not in r["actions"] and r["catalog"])
    action["backupPath"] = other["catalog"]["backupPath"]


def _backup_folder_in_the_state_folder(report: dict[str, Any], _sentinel: Path) -> None:
    resource = report["resources"][0]
    state = f"{report['backupRoot']}/{STATE_FOLDER}/{report['runId']}"
    resource["backupFolder"] = state
    for action in resource["actions"]:
        if action["backupPath"]:
            action["backupPath"] = f"{state}/journal.jsonl"


def _catalog_outside(report: dict[str, Any], _sentinel: Path) -> None:
    resource = report["resources"][0]
    resource["catalog"]["path"] = f"{resource['path']}/../../../../sentinel/keep.txt"


def _path_climbing(report: dict[str, Any], _sentinel: Path) -> None:
    _first("REMOVE")(report)["path"] = "SCANS/3/DICOM/../../../../sentinel/keep.txt"


def _new_path_climbing(report: dict[str, Any], _sentinel: Path) -> None:
    # (An absolute one the schema refuses already.)
    _first("RENAME")(report)["newPath"] = "SCANS/2/DICOM/../../../../sentinel/keep.txt"


def _file_in_another_resource(report: dict[str, Any], _sentinel: Path) -> None:
    _first("REMOVE")(report)["path"] = "SCANS/2/DICOM/elsewhere.dcm"


EDITS = [_root_elsewhere, _backup_path_outside, _backup_path_climbing, _backup_in_another_resources_folder,
         _backup_folder_in_the_state_folder, _catalog_outside, _path_climbing, _new_path_climbing,
         _file_in_another_resource]
#: What the refusal says when the run's own copy was edited alike (only then do the path checks speak).
WHY = {"_root_elsewhere": "was made on", "_backup_path_outside": "is not inside BACKUP",
       "_backup_path_climbing": "'..' component below BACKUP",
       "_backup_in_another_resources_folder": "is not inside its resource's backup folder",
       "_backup_folder_in_the_state_folder": "is not a folder of run", "_catalog_outside": "'..' component",
       "_path_climbing": "'..' component", "_new_path_climbing": "'..' component",
       "_file_in_another_resource": "is not inside its resource"}


@pytest.mark.parametrize("also_the_copy", [False, True], ids=["report", "report-and-state-copy"])
@pytest.mark.parametrize("edit", EDITS, ids=lambda f: f.__name__.strip("_"))
def test_a_report_edited_to_steer_the_restore_is_refused_before_any_change(
        tmp_path: Path, edit: Callable[[dict[str, Any], Path], None], also_the_copy: bool) -> None:
    run = demo(tmp_path)
    sentinel = _sentinel(tmp_path)
    outside = tree(sentinel)
    report = run.report()
    edit(report, sentinel)
    run.report_path.write_text(json.dumps(report), "utf-8")
    if also_the_copy:  # as if BACKUP had been written to as well: the checks of every path still hold
        (run.state / "mitigation-report.json").write_text(json.dumps(report), "utf-8")
    backup_before = tree(run.backup)
    result = run.restore()
    clean(result)
    assert result.returncode == 3, result.stdout[-2000:]
    text = result.stdout + result.stderr
    assert ("cannot be used for a restore" in text or "was made on" in text) if also_the_copy \
        else "differs from the copy run" in text
    if also_the_copy:
        assert WHY[edit.__name__] in text
    assert tree(run.root) == run.after and tree(sentinel) == outside
    assert tree(run.backup) == backup_before  # not even a journal: refused in the first pass
    assert not (run.out / "mitigation" / "restore-report.json").exists()


def test_a_report_differing_from_the_state_copy_is_refused_and_the_copy_restores(tmp_path: Path) -> None:
    run = demo(tmp_path)
    report = run.report()
    report["finishedAt"] = "2001-01-01T00:00:00Z"  # an edit the schema allows, and harmless in itself
    run.report_path.write_text(json.dumps(report), "utf-8")
    refused = run.restore()
    clean(refused)
    assert refused.returncode == 3 and "may have been edited" in refused.stdout + refused.stderr
    assert tree(run.root) == run.after
    restored = run.restore("--output", str(tmp_path / "restored"), report=run.state / "mitigation-report.json")
    clean(restored)
    assert restored.returncode == 0, restored.stdout[-2000:]
    assert tree(run.root) == run.before


def test_without_the_state_copy_the_report_is_not_trusted(tmp_path: Path) -> None:
    run = demo(tmp_path)
    (run.state / "mitigation-report.json").unlink()
    result = run.restore()
    clean(result)
    assert result.returncode == 3
    assert "copy of its mitigation report is missing" in result.stdout and "cannot be trusted" in result.stdout
    assert tree(run.root) == run.after


def test_a_backup_root_elsewhere_finds_no_state_and_creates_nothing(tmp_path: Path) -> None:
    run = demo(tmp_path)
    sentinel = _sentinel(tmp_path)
    outside = tree(sentinel)
    report = run.report()
    report["backupRoot"] = str(sentinel)
    run.report_path.write_text(json.dumps(report), "utf-8")
    result = run.restore()
    clean(result)
    assert result.returncode == 3 and "state folder" in result.stdout and "is missing" in result.stdout
    assert tree(sentinel) == outside and tree(run.root) == run.after


# --- (f) a folder of ROOT swapped for a link -------------------------------------------------------------


@pytest.mark.parametrize("folder", ["SCANS/3", "SCANS/3/DICOM"])
def test_a_folder_swapped_for_a_link_before_restore_is_never_written_through(tmp_path: Path, folder: str) -> None:
    run = demo(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(run.root / folder), str(elsewhere))
    (run.root / folder).symlink_to(elsewhere, target_is_directory=True)
    outside = tree(elsewhere)
    result = run.restore()
    clean(result)
    assert result.returncode == 1, result.stdout[-2000:]
    assert tree(elsewhere) == outside, "files were changed through the link"
    restored = {r["path"]: r for r in run.restore_report()["resources"]}
    assert "never followed" in restored["SCANS/3/DICOM"]["error"]
    now = tree(run.root)
    for other in ("SCANS/2", "SCANS/4"):  # the others go on
        assert _below(now, other) == _below(run.before, other)
