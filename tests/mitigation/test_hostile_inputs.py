"""Archives as years of imports left them, run through the real CLI: nothing lost, no internal error.

Each test is one class of the safety issue's findings: temporaries taken for archive files when the
process is PID 1 (as in the image), names that are not UTF-8, a FIFO where a catalog should be, and a
BACKUP folder that holds ROOT.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from container_app.demo import synth
from container_app.demo.synth import CopyKind, CopySpec, FileSpec
from tests.helpers.mitigation import (
    BASE,
    assert_nothing_lost,
    mitigate,
    mitigation_report,
    no_traceback,
    run_cli,
    snapshot,
    survey,
)


def _can_be_pid_1() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "sh", "-c", "echo $$"],
                           capture_output=True, text=True, check=False)
    return probe.returncode == 0 and probe.stdout.strip() == "1"


@pytest.mark.skipif(not _can_be_pid_1(), reason="needs `unshare -pf --mount-proc` (a PID namespace)")
def test_an_archive_file_named_like_a_pid_1_temporary_keeps_its_bytes(tmp_path: Path) -> None:
    """`IM0001` (misnamed) and its copy `IM0001.part-1`: the copy's backup must survive the backup of
    `IM0001`, whose temporary was once `IM0001.part-<pid>`, and pid is 1 in a container. The copies'
    bytes differ, so a lost backup shows (before the fix, the copy's bytes were in no place)."""
    resource = tmp_path / "archive" / "DICOM"
    spec = FileSpec(instance=BASE, name="IM0001", mtime=synth.DEFAULT_MTIME + 10,
                    copies=(CopySpec(name="IM0001.part-1", kind=CopyKind.DIFFERENT,
                                      mtime=synth.DEFAULT_MTIME),))
    synth.build_resource(resource, [spec], catalog=False)
    out, backup = tmp_path / "out", tmp_path / "backup"
    survey(resource, out)
    before = snapshot(resource)
    command = [sys.executable, "-m", "container_app", "mitigate", str(resource), "--report",
               str(out / "survey-report.json"), "--backup-dir", str(backup), "--output", str(out / "mitigation"),
               "--log-format", "json"]
    result = subprocess.run(["unshare", "-p", "-f", "--mount-proc", *command], capture_output=True, text=True,
                            env=os.environ, timeout=300, check=False)
    assert result.returncode == 0, result.stderr + result.stdout
    no_traceback(result)
    assert_nothing_lost(before, resource, backup)
    restored = run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert snapshot(resource) == before


def test_a_name_that_is_not_utf8_is_mitigated_and_restored(tmp_path: Path) -> None:
    resource = tmp_path / "archive" / "DICOM"
    synth.build_resource(resource, [FileSpec(instance=BASE, name="IM0001")], catalog=False)
    odd = os.fsencode(resource) + b"/\xff\xfe.dcm"
    os.rename(os.fsencode(resource / "IM0001"), odd)
    out, backup = tmp_path / "out", tmp_path / "backup"
    before = snapshot(resource)
    survey(resource, out)
    result = mitigate(resource, out, backup)
    no_traceback(result)
    assert "internal error" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr + result.stdout
    assert mitigation_report(out)["totals"]["movedFiles"] == 1
    assert not os.path.exists(odd)
    assert_nothing_lost(before, resource, backup)
    again = mitigate(resource, out, backup)  # a rerun of the same run finds it done
    assert "internal error" not in again.stdout + again.stderr, again.stdout
    restored = run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json")
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert os.path.exists(odd) and snapshot(resource) == before


def test_a_backup_folder_that_holds_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "backup" / "archive" / "DICOM"
    synth.build_resource(root, [FileSpec(instance=BASE, name="IM0001")], catalog=False)
    out = tmp_path / "out"
    survey(root, out)
    before = snapshot(tmp_path / "backup")
    result = mitigate(root, out, tmp_path / "backup")
    assert result.returncode == 2, result.stderr + result.stdout
    assert "BACKUP must not hold ROOT" in result.stdout + result.stderr
    assert snapshot(tmp_path / "backup") == before


def test_a_fifo_where_the_catalog_should_be_never_hangs(tmp_path: Path) -> None:
    """A FIFO has no writer: opening it for reading would wait forever, in the survey and in mitigate."""
    resource = tmp_path / "archive" / "DICOM"
    layout = synth.build_resource(resource, [FileSpec(instance=BASE, name="IM0001")])
    assert layout.catalog is not None
    catalog = resource / layout.catalog
    catalog.unlink()
    os.mkfifo(catalog)
    out, backup = tmp_path / "out", tmp_path / "backup"
    document = survey(resource, out)  # run_cli's timeout turns a hang into a failure
    [surveyed] = document["resources"]
    assert "not a regular file" in surveyed["catalog"]["error"]
    before = snapshot(resource)
    result = mitigate(resource, out, backup)
    no_traceback(result)
    assert "internal error" not in result.stdout + result.stderr
    assert_nothing_lost(before, resource, backup)
    assert os.path.exists(catalog) and not os.path.isfile(catalog)  # left as it was
