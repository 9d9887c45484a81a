"""Report text: file names that are not UTF-8, and the survey's log events."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog
from structlog.testing import capture_logs

from container_app.cli.commands.survey import survey_archive
from container_app.cli.settings import Common, SurveySettings
from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.demo import synth
from tests.helpers.survey import STUDY

# --- files that cannot be represented in UTF-8 -----------------------------------------------------


def test_file_names_that_are_not_utf8(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    """Old archives hold Latin-1 names; the report must still be written and name the file exactly."""
    root = tmp_path / "root"
    instance = synth.series_instances(STUDY, 1, 1)[0]
    raw_name = b"caf\xe9.dcm"
    synth.write_instance(root / os.fsdecode(raw_name), instance)
    report = survey_lib(root)
    report_schema(report)
    [finding] = report["resources"][0]["files"]
    assert finding["status"] == "MISMATCHED"
    assert os.fsencode(finding["path"]) == raw_name  # round-trips to the bytes on disk
    assert (root / finding["path"]).is_file()


def test_json_and_csv_reports_name_non_utf8_files_exactly(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    """The same, with the expected name checked too."""
    root = tmp_path / "root"
    instance = synth.series_instances(STUDY, 1, 1)[0]
    synth.write_instance(root / os.fsdecode(b"caf\xe9.dcm"), instance)
    report = survey_lib(root)
    report_schema(report)
    [finding] = report["resources"][0]["files"]
    assert os.fsencode(finding["path"]) == b"caf\xe9.dcm"
    assert finding["expectedName"] == synth.xnat_name(instance)


# --- logging ---------------------------------------------------------------------------------------


def test_survey_archive_logs(scan5: Any, tmp_path: Path) -> None:
    settings = SurveySettings(common=Common(log_format="json", verbose=False), root=str(scan5.root),
                              output=str(tmp_path / "out"), template=parse_template(DEFAULT_TEMPLATE),
                              labels=frozenset({"DICOM"}), all_resources=False, since=None, jobs=1,
                              fail_on_divergent=False)
    structlog.reset_defaults()
    with capture_logs() as logs:
        outcome = survey_archive(settings, print_summary=False)
    events = [e["event"] for e in logs]
    assert events[0] == "survey started"
    assert events[-1] == "survey finished"
    [surveyed] = [e for e in logs if e["event"] == "resource surveyed"]
    assert surveyed["log_level"] == "info"
    assert surveyed["resource"] == "SCANS/5/DICOM"
    assert surveyed["status"] == "DIVERGENT"
    assert (surveyed["files"], surveyed["uids"], surveyed["mismatched"], surveyed["duplicates"], surveyed["bad"]) == (
        65, 60, 26, 5, 0)
    finished = logs[-1]
    assert finished["mismatchedFiles"] == 26 and finished["duplicates"] == 5
    assert outcome.divergent
    # No log line carries a patient's identifying value.
    assert "PatientName" not in json.dumps(logs, default=str)
