"""Folders the survey cannot list appear in every report, with a status and the reason, and count (issue 13).

A folder that cannot be listed is a resource with status ERROR (XNAT's status for a survey that could
not be done), or makes the XNAT resource it belongs to ERROR; either way nothing of it is planned.
The CLI tests need a folder the user cannot read (chmod 000), which root reads anyway: they skip as
root, and the in-process tests below refuse the listing by hand instead.
"""

from __future__ import annotations

import csv
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from container_app.core.plan import plan_mitigation
from container_app.core.vocabulary import KeepPolicy
from container_app.demo import synth
from container_app.demo.synth import CatalogEntrySpec, FileSpec, ScanSpec
from container_app.reports.table import summary_table
from tests.helpers.cli import no_traceback
from tests.helpers.survey import STUDY, resource_of

not_as_root = pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode")
ERROR = "Permission denied"  # strerror(EACCES)
UNREADABLE = "SCANS/2/DICOM"
SUBFOLDER = "SCANS/1/DICOM/secondary"


@pytest.fixture
def block() -> Iterator[Callable[[Path], None]]:
    """chmod 000 a folder for the test, its mode back afterwards (so that the test's folder can be removed)."""
    blocked: list[tuple[Path, int]] = []

    def chmod_000(path: Path) -> None:
        blocked.append((path, stat.S_IMODE(path.stat().st_mode)))
        path.chmod(0)

    yield chmod_000
    for path, mode in reversed(blocked):
        path.chmod(mode)


def two_scans(root: Path) -> None:
    """Two conforming scans: scan 2's resource is the one made unreadable."""
    synth.build_session(root, "S", "P", [ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 2)),
                                         ScanSpec.conforming("2", synth.series_instances(STUDY, 2, 2))])


def scan_with_subfolder(root: Path) -> None:
    """Scan 1 with a file under a client's name (a rename to plan) and `secondary/` listed in its catalog."""
    instances = synth.series_instances(STUDY, 1, 3)
    synth.build_session(root, "S", "P", [ScanSpec(scan_id="1", files=(
        FileSpec(instance=instances[0]), FileSpec(instance=instances[1], name="IM0002")))])
    folder = root / "SCANS/1/DICOM"
    inside = f"secondary/{synth.xnat_name(instances[2])}"
    synth.write_instance(folder / inside, instances[2])
    entries = [CatalogEntrySpec(name=name, digest="0" * 32, format="DICOM")
               for name in (synth.xnat_name(instances[0]), "IM0002", inside)]
    (folder / "scan_1_catalog.xml").write_text(synth.catalog_xml(entries, project="P", dicom=True), "utf-8")


def check_unreadable_resource(report: dict[str, Any]) -> None:
    resource = resource_of(report, UNREADABLE)
    assert resource["requestStatus"] == "ERROR"
    assert resource["folder"] == {"readable": False,
                                  "unreadable": [{"path": UNREADABLE, "reason": "UNREADABLE_FOLDER", "error": ERROR}]}
    assert (resource["identity"]["scanId"], resource["identity"]["resourceLabel"]) == ("2", "DICOM")
    assert resource["files"] == []
    assert resource["xnat"]["totalEntries"] == 0
    totals = report["totals"]
    assert (totals["resources"], totals["conforming"], totals["unreadableFolders"]) == (2, 1, 1)


def check_unreadable_subfolder(report: dict[str, Any]) -> None:
    [resource] = report["resources"]  # the subfolder belongs to its resource: no entry of its own
    assert resource["path"] == "SCANS/1/DICOM"
    assert resource["requestStatus"] == "ERROR"
    assert resource["folder"]["unreadable"] == [{"path": SUBFOLDER, "reason": "UNREADABLE_FOLDER", "error": ERROR}]
    # What could be read is reported; a catalog entry inside the unread folder is not called missing.
    assert resource["xnat"]["totalMismatchedFiles"] == 1
    assert resource["catalog"]["missingFiles"] == []
    assert report["totals"]["unreadableFolders"] == 1
    # Nothing is planned for a resource whose folders could not all be read, its mismatch included.
    assert plan_mitigation(report, KeepPolicy.NEWEST).resources == ()


# --- the real CLI on a folder chmod 000 -----------------------------------------------------------


@not_as_root
def test_an_unreadable_resource_is_in_every_report(tmp_path: Path, cli: Any, report_schema: Any,
                                                   block: Callable[[Path], None]) -> None:
    root, out = tmp_path / "session", tmp_path / "out"
    two_scans(root)
    block(root / UNREADABLE)
    rc, stdout, stderr, report = cli("survey", root, "--output", out)
    assert rc == 0, stderr  # done, whatever was found
    no_traceback(stdout, stderr)
    assert report is not None
    report_schema(report)
    check_unreadable_resource(report)
    [warned] = [line for line in _log(stdout) if line["event"] == "folder unreadable"]
    assert (warned["level"], warned["path"], warned["reason"]) == ("warning", UNREADABLE, ERROR)

    with (out / "survey-summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = {r["resourceUri"]: r for r in csv.DictReader(handle)}
    assert (rows[UNREADABLE]["requestStatus"], rows[UNREADABLE]["scanId"]) == ("ERROR", "2")
    html = (out / "report.html").read_text("utf-8")
    assert 'data-total="unreadableFolders" data-value="1"' in html
    assert f'data-unreadable-folder="{UNREADABLE}"' in html and ERROR in html
    assert 'data-status="ERROR"' in html

    # "Look at the report": as a divergent resource does, with --fail-on-divergent.
    rc, stdout, stderr, _ = cli("survey", root, "--output", tmp_path / "strict", "--fail-on-divergent")
    assert rc == 1, stderr
    no_traceback(stdout, stderr)

    rc, stdout, stderr, _ = cli("rollup", out, "--output", tmp_path / "rollup")
    assert rc == 0, stderr
    rollup = json.loads((tmp_path / "rollup" / "rollup.json").read_text("utf-8"))
    totals = rollup["totals"]
    assert (totals["status"], totals["statusCounts"], totals["unreadableFolders"]) == (
        "ERROR", {"CONFORMING": 1, "ERROR": 1}, 1)
    with (tmp_path / "rollup" / "rollup.csv").open(newline="", encoding="utf-8") as handle:
        [everything, *_] = csv.DictReader(handle)
    assert everything["unreadableFolders"] == "1"

    rc, stdout, stderr, _ = cli("mitigate", root, "--report", out / "survey-report.json", "--output",
                                tmp_path / "plan", "--backup-dir", tmp_path / "backup", "--dry-run")
    assert rc == 0, stderr
    plan = json.loads((tmp_path / "plan" / "mitigation-plan.json").read_text("utf-8"))
    assert plan["resources"] == []


@not_as_root
def test_an_unreadable_subfolder_makes_its_resource_error(tmp_path: Path, cli: Any, report_schema: Any,
                                                          block: Callable[[Path], None]) -> None:
    root, out = tmp_path / "session", tmp_path / "out"
    scan_with_subfolder(root)
    block(root / SUBFOLDER)
    rc, stdout, stderr, report = cli("survey", root, "--output", out, "--fail-on-divergent")
    assert rc == 1, stderr
    no_traceback(stdout, stderr)
    assert report is not None
    report_schema(report)
    check_unreadable_subfolder(report)
    rc, stdout, stderr, _ = cli("mitigate", root, "--report", out / "survey-report.json", "--output",
                                tmp_path / "plan", "--backup-dir", tmp_path / "backup", "--dry-run")
    assert rc == 0, stderr
    assert json.loads((tmp_path / "plan" / "mitigation-plan.json").read_text("utf-8"))["resources"] == []


def _log(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


# --- in-process, the listing refused by hand (these run as root too) ---------------------------------


@pytest.fixture
def refuse(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path], None]:
    """Make os.scandir refuse a folder as the system does for a folder chmod 000."""
    def refuse_folder(blocked: Path) -> None:
        real_scandir = os.scandir

        def scandir(path: Any) -> Any:
            if os.fspath(path) == str(blocked):
                raise PermissionError(13, ERROR, os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", scandir)

    return refuse_folder


def test_an_unreadable_resource_counts(tmp_path: Path, survey_lib: Any, report_schema: Any,
                                       refuse: Callable[[Path], None]) -> None:
    root = tmp_path / "session"
    two_scans(root)
    refuse(root / UNREADABLE)
    report = survey_lib(root)
    report_schema(report)
    check_unreadable_resource(report)
    assert plan_mitigation(report, KeepPolicy.NEWEST).resources == ()


def test_an_unreadable_subfolder_counts(tmp_path: Path, survey_lib: Any, report_schema: Any,
                                        refuse: Callable[[Path], None]) -> None:
    root = tmp_path / "session"
    scan_with_subfolder(root)
    refuse(root / SUBFOLDER)
    structlog.reset_defaults()
    with capture_logs() as logs:
        report = survey_lib(root)
    report_schema(report)
    check_unreadable_subfolder(report)
    [warned] = [e for e in logs if e["event"] == "folder unreadable"]
    assert (warned["path"], warned["resource"], warned["reason"]) == (SUBFOLDER, "SCANS/1/DICOM", ERROR)


def test_an_unreadable_root_is_reported(tmp_path: Path, survey_lib: Any, refuse: Callable[[Path], None]) -> None:
    root = tmp_path / "session"
    two_scans(root)
    refuse(root)
    report = survey_lib(root)
    [resource] = report["resources"]
    assert (resource["path"], resource["requestStatus"]) == (".", "ERROR")
    assert resource["folder"]["unreadable"] == [{"path": ".", "reason": "UNREADABLE_FOLDER", "error": ERROR}]


def test_the_terminal_summary_names_the_folder_and_the_reason() -> None:
    rows = [{"path": UNREADABLE, "requestStatus": "ERROR", "totalEntries": 0, "totalUids": 0,
             "totalMismatchedFiles": 0, "totalDuplicates": 0, "totalBadFiles": 0, "identifyingNames": 0,
             "unreadableFolders": [{"path": UNREADABLE, "reason": "UNREADABLE_FOLDER", "error": ERROR}]}]
    totals = {"resources": 1, "files": 0, "conforming": 0, "divergent": 0, "noncompliant": 0, "mismatchedFiles": 0,
              "duplicates": 0, "badFiles": 0, "identifyingNames": 0, "unreadableFolders": 1}
    text = summary_table(rows, totals)
    assert f"{UNREADABLE}  ERROR" in text
    assert f"could not read folder {UNREADABLE}: {ERROR}" in text
    assert text.rstrip().endswith("; unreadable folders: 1")
