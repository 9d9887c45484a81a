"""The survey as users run it: `python -m container_app survey ...` in a subprocess."""

from __future__ import annotations

import csv
import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from container_app import __version__
from container_app.cli.main import main as cli_main
from container_app.demo import synth
from container_app.demo.archive import build_demo_archive
from container_app.demo.synth import ExtraFile, ExtraKind, InstanceSpec, ResourceSpec, ScanSpec, SessionSpec
from container_app.support.fsutil import TEMPORARY_SUFFIX
from tests.helpers.cli import no_traceback

#: XNAT's own CSV header for survey reports (xnat-web ResourceSurveyReport CSV_HEADER).
XNAT_CSV_COLUMNS = ["projectId", "subjectId", "experimentId", "scanId", "resourceId", "resourceLabel", "resourceUri",
                    "requestStatus", "surveyDate", "totalEntries", "totalUids", "totalDuplicates", "totalBadFiles",
                    "totalMismatchedFiles"]
STUDY = InstanceSpec(sop_instance_uid=synth.uid("cli", "placeholder"), study_instance_uid=synth.uid("cli", "study"))


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


@pytest.fixture
def conforming_root(tmp_path: Path) -> Path:
    root = tmp_path / "conforming"
    synth.build_session(root, "S1", "P1", [ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 3))])
    return root


# --- XNAT's scan 5 ---------------------------------------------------------------------------------


def test_scan5_through_the_cli(scan5: Any, tmp_path: Path, cli: Any, report_schema: Any) -> None:
    out = tmp_path / "out"
    rc, stdout, stderr, report = cli("survey", scan5.root, "--output", out)
    assert rc == 0, stderr
    no_traceback(stdout, stderr)
    assert report is not None
    report_schema(report)
    [resource] = report["resources"]
    xnat = resource["xnat"]
    assert (xnat["totalUids"], xnat["totalBadFiles"], xnat["totalDuplicates"], xnat["totalMismatchedFiles"]) == (
        60, 0, 5, 26)
    assert len(xnat["uids"]) == 1
    assert {f["expectedName"] for f in resource["files"]} == scan5.expected_names
    assert report["root"] == str(scan5.root)
    rows = read_csv(out / "survey-summary.csv")
    assert rows[0] == XNAT_CSV_COLUMNS
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["projectId"] == "Test"
    assert row["scanId"] == "5"
    assert row["resourceLabel"] == "DICOM"
    assert row["resourceUri"] == "SCANS/5/DICOM"
    assert row["requestStatus"] == "DIVERGENT"
    assert (row["totalEntries"], row["totalUids"], row["totalDuplicates"], row["totalBadFiles"],
            row["totalMismatchedFiles"]) == ("65", "60", "5", "0", "26")
    dt.datetime.fromisoformat(row["surveyDate"].replace("Z", "+00:00"))
    # The contract's outputs (report.html too, where it is rendered), and no temporary file left behind.
    written = {p.name for p in out.iterdir()}
    assert {"survey-report.json", "survey-summary.csv"} <= written <= {"survey-report.json", "survey-summary.csv",
                                                                       "report.html"}


# --- exit codes ------------------------------------------------------------------------------------


def test_exit_0_on_divergent_and_1_with_fail_on_divergent(scan5: Any, conforming_root: Path, tmp_path: Path,
                                                           cli: Any) -> None:
    rc, stdout, stderr, report = cli("survey", scan5.root, "--output", tmp_path / "a")
    assert rc == 0 and report is not None and report["totals"]["divergent"] == 1
    rc, stdout, stderr, report = cli("survey", scan5.root, "--output", tmp_path / "b", "--fail-on-divergent")
    assert rc == 1
    assert report is not None  # the reports are written all the same
    no_traceback(stdout, stderr)
    rc, _, stderr, report = cli("survey", conforming_root, "--output", tmp_path / "c", "--fail-on-divergent")
    assert rc == 0, stderr
    assert report is not None and report["totals"]["conforming"] == 1


@pytest.fixture
def main(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """The CLI in-process (for the many variants of bad usage): (returncode, stdout, stderr)."""

    def run(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
        rc = cli_main([str(a) for a in args])
        captured = capsys.readouterr()
        return rc, captured.out, captured.err

    yield run
    structlog.reset_defaults()  # main() configures logging for the process


def test_bad_usage_exits_2_without_a_traceback(conforming_root: Path, tmp_path: Path, cli: Any) -> None:
    """The four kinds of bad usage, as a user meets them."""
    out = tmp_path / "out"
    for args in (("survey", conforming_root, "--output", out, "--bogus"),
                 ("survey", conforming_root, "--output", out, "--template", "${NotAKeyword}"),
                 ("survey", tmp_path / "missing", "--output", out),
                 ("survey", conforming_root, "--output", conforming_root / "out")):
        rc, stdout, stderr, report = cli(*args)
        assert rc == 2, (args, stdout, stderr)
        no_traceback(stdout, stderr)
        assert (stdout + stderr).strip()  # says what is wrong
        assert report is None
    assert not out.exists()
    assert not (conforming_root / "out").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus"],
        ["--jobs", "0"],
        ["--jobs", "many"],
        ["--since", "2024-13-01"],
        ["--template", "${NotAKeyword}"],
        ["--template", "${bad-name}"],
        ["--template", "${HashSOPClassUID}"],
        ["--template", ""],
        ["--template", "${StudyInstanceUID}/${SOPInstanceUID}"],
        ["--resource-label", ","],
        ["--log-format", "xml"],
    ],
)
def test_bad_options_exit_2(conforming_root: Path, tmp_path: Path, main: Any, args: list[str]) -> None:
    out = tmp_path / "out"
    rc, stdout, stderr = main("survey", conforming_root, "--output", out, *args)
    assert rc == 2, (stdout, stderr)
    no_traceback(stdout, stderr)
    assert stderr.strip()
    assert not out.exists()


def test_bad_paths_exit_2(conforming_root: Path, tmp_path: Path, main: Any, snapshot: Any) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    before = snapshot(conforming_root)
    for root, out in ((tmp_path / "missing", tmp_path / "o1"), (a_file, tmp_path / "o2"),
                      (conforming_root, conforming_root / "out"), (conforming_root, conforming_root),
                      (conforming_root, conforming_root / "SCANS" / "1"),
                      (conforming_root / "SCANS" / "..", conforming_root / "SCANS" / "x"),
                      (conforming_root, a_file), (conforming_root, a_file / "sub")):
        rc, stdout, stderr = main("survey", root, "--output", out, "--log-format", "json")
        assert rc == 2, (root, out, stdout, stderr)
        no_traceback(stdout, stderr)
        assert "ROOT" in stdout + stderr or "OUT" in stdout + stderr
    assert snapshot(conforming_root) == before
    assert not (tmp_path / "o1").exists()
    assert a_file.read_text() == "x"


def test_missing_arguments_and_unknown_commands_exit_2(main: Any) -> None:
    for args in (("survey",), ("survey", "/tmp"), ("frobnicate",), ()):
        rc, stdout, stderr = main(*args)
        assert rc == 2, args
        no_traceback(stdout, stderr)


def test_version(cli: Any) -> None:
    rc, stdout, stderr, _ = cli("--version", log_format=None)
    assert rc == 0
    assert stdout.strip() == f"xnat-resource-survey {__version__}"
    no_traceback(stderr)


def test_help(main: Any) -> None:
    rc, stdout, _ = main("survey", "--help")
    assert rc == 0
    for option in ("--output", "--template", "--all-resources", "--resource-label", "--since", "--jobs",
                   "--fail-on-divergent", "--log-format"):
        assert option in stdout


# --- logs ------------------------------------------------------------------------------------------


def test_json_logs_on_stdout(tmp_path: Path, cli: Any) -> None:
    manifest = build_demo_archive(tmp_path / "archive")
    result = cli("survey", tmp_path / "archive", "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    lines = result.log_lines()  # every stdout line is JSON
    assert all({"event", "level", "timestamp"} <= set(line) for line in lines)
    surveyed = [line for line in lines if line["event"] == "resource surveyed"]
    assert result.report is not None
    assert [line["resource"] for line in surveyed] == [r["path"] for r in result.report["resources"]]
    assert len(surveyed) == len(manifest.resource_status) == 4
    assert {line["status"] for line in surveyed} == {"CONFORMING", "DIVERGENT"}
    assert lines[0]["event"] == "survey started"
    assert lines[-1]["event"] == "survey finished"
    assert "Doe" not in result.stdout  # the patient's name is in legacy file names; never logged
    no_traceback(result.stderr)


# --- selection -------------------------------------------------------------------------------------


@pytest.fixture
def session(tmp_path: Path) -> Path:
    snapshots = ResourceSpec(label="SNAPSHOTS", format="PNG", files=(ExtraFile(name="qc.png", kind=ExtraKind.PNG),))
    project = synth.build_project(tmp_path / "archive", "PROJ", [SessionSpec(label="SESS", scans=(
        ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 2)),
        ScanSpec.conforming("2", synth.series_instances(STUDY, 2, 2), label="NIFTI"),
    ), resources=(snapshots,))])
    return project.session("SESS").root


def paths(report: dict[str, Any] | None) -> list[str]:
    assert report is not None
    return [r["path"] for r in report["resources"]]


def test_resource_selection_options(session: Path, tmp_path: Path, cli: Any) -> None:
    assert paths(cli("survey", session, "--output", tmp_path / "o1").report) == ["SCANS/1/DICOM"]
    assert paths(cli("survey", session, "--output", tmp_path / "o2", "--all-resources").report) == [
        "RESOURCES/SNAPSHOTS", "SCANS/1/DICOM", "SCANS/2/NIFTI"]
    result = cli("survey", session, "--output", tmp_path / "o3", "--resource-label", "NIFTI",
                 "--resource-label", "SNAPSHOTS")
    assert paths(result.report) == ["RESOURCES/SNAPSHOTS", "SCANS/2/NIFTI"]
    assert result.report is not None
    assert [r["identity"] for r in result.report["resources"]] == [
        {"project": "PROJ", "subject": None, "session": "SESS", "scanId": None, "resourceLabel": "SNAPSHOTS",
         "catalogPath": "RESOURCES/SNAPSHOTS/SNAPSHOTS_catalog.xml"},
        {"project": "PROJ", "subject": None, "session": "SESS", "scanId": "2", "resourceLabel": "NIFTI",
         "catalogPath": "SCANS/2/NIFTI/scan_2_catalog.xml"},
    ]
    assert result.report["options"]["resourceLabels"] == ["NIFTI", "SNAPSHOTS"]


def test_since_option(session: Path, tmp_path: Path, cli: Any) -> None:
    day_after = (dt.datetime.fromtimestamp(synth.DEFAULT_MTIME, dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    os.utime(next((session / "SCANS" / "2" / "NIFTI").glob("*.dcm")), None)  # changed today
    result = cli("survey", session, "--output", tmp_path / "o1", "--since", day_after,
                 "--resource-label", "DICOM,NIFTI")
    assert result.returncode == 0, result.stderr
    assert paths(result.report) == ["SCANS/2/NIFTI"]  # DICOM is selected but unchanged since
    assert result.report is not None and result.report["options"]["since"] == day_after


# --- determinism -----------------------------------------------------------------------------------


def comparable(report: dict[str, Any] | None) -> dict[str, Any]:
    assert report is not None
    clean = {k: v for k, v in report.items() if k not in ("runId", "startedAt", "finishedAt")}
    clean["options"] = {k: v for k, v in report["options"].items() if k != "jobs"}
    clean["resources"] = [{**r, "xnat": {k: v for k, v in r["xnat"].items() if k != "surveyDate"}}
                          for r in report["resources"]]
    return clean


def test_jobs_1_and_2_give_identical_reports(tmp_path: Path, scan5: Any, cli: Any) -> None:
    build_demo_archive(scan5.root / "more")  # several resources, every kind of finding
    one = cli("survey", scan5.root, "--output", tmp_path / "j1", "--jobs", "1", "--all-resources")
    two = cli("survey", scan5.root, "--output", tmp_path / "j2", "--jobs", "2", "--all-resources")
    assert one.returncode == two.returncode == 0
    assert one.report is not None and two.report is not None
    assert one.report["options"]["jobs"] == 1 and two.report["options"]["jobs"] == 2
    assert comparable(one.report) == comparable(two.report)
    assert len(one.report["resources"]) == 6
    csv_one = [row[:8] + row[9:] for row in read_csv(tmp_path / "j1" / "survey-summary.csv")]
    csv_two = [row[:8] + row[9:] for row in read_csv(tmp_path / "j2" / "survey-summary.csv")]
    assert csv_one == csv_two


# --- the survey never changes ROOT -----------------------------------------------------------------


def test_survey_never_changes_root(tmp_path: Path, scan5: Any, cli: Any, snapshot: Any) -> None:
    build_demo_archive(scan5.root / "more")
    (scan5.resource / "link.dcm").symlink_to("scan_5_catalog.xml")
    before = snapshot(scan5.root)
    result = cli("survey", scan5.root, "--output", tmp_path / "out", "--all-resources", "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert snapshot(scan5.root) == before
    assert not list(scan5.root.rglob(f"*{TEMPORARY_SUFFIX}"))


def test_survey_of_a_read_only_root(tmp_path: Path, scan5: Any, cli: Any, snapshot: Any, read_only: Any) -> None:
    before = snapshot(scan5.root)
    read_only(scan5.root)
    ro_before = snapshot(scan5.root)
    assert all(not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH) for _, mode, _, kind in ro_before.values()
               if not kind.startswith("l"))
    result = cli("survey", scan5.root, "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    no_traceback(result.stderr)
    assert result.report is not None and result.report["totals"]["mismatchedFiles"] == 26
    # Root ignores permissions, so the snapshot is the real proof that nothing was written.
    assert snapshot(scan5.root) == ro_before
    assert {k: (c, m) for k, (c, _, m, _) in before.items()} == {k: (c, m) for k, (c, _, m, _) in ro_before.items()}


# --- the demo command ------------------------------------------------------------------------------


def test_demo_command(tmp_path: Path, cli: Any, report_schema: Any) -> None:
    out = tmp_path / "demo"
    result = cli("demo", "--output", out)
    assert result.returncode == 0, result.stderr
    assert result.report is not None
    report_schema(result.report)
    manifest = build_demo_archive(tmp_path / "reference")
    expected = manifest.expected_totals()
    assert {key: result.report["totals"][key] for key in expected} == expected
    # Again: the earlier demo archive is replaced, not refused.
    assert cli("demo", "--output", out).returncode == 0
    # A folder that is not an earlier demo is never deleted.
    foreign = tmp_path / "foreign"
    (foreign / "archive").mkdir(parents=True)
    (foreign / "archive" / "precious").write_text("keep")
    rc, stdout, stderr, _ = cli("demo", "--output", foreign)
    assert rc == 2
    no_traceback(stdout, stderr)
    assert (foreign / "archive" / "precious").read_text() == "keep"
