"""The survey of copies that differ in how much they disclose (issue 15): real DICOM, the CLI as a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from container_app.core.naming import legacy_hash
from container_app.reports.schemas import SURVEY_SCHEMA, validate
from tests.helpers import deidentification as d
from tests.helpers.mitigation import no_traceback, run_cli


def survey_pair(tmp_path: Path, older: Dataset, newer: Dataset, *, names: tuple[str, str] = ("a.dcm", "b.dcm"),
                deflated: bool = False) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """(the group, the files by name, the resource) of a survey of two copies: `older`, then `newer`."""
    folder = d.session_folder(tmp_path / "root")
    d.write(folder / names[0], older, d.BASE_MTIME, deflated=deflated)
    d.write(folder / names[1], newer, d.BASE_MTIME + 100)
    out = tmp_path / "out"
    result = run_cli("survey", tmp_path / "root", "--output", out)
    assert result.returncode == 0, result.stderr
    no_traceback(result)
    report = json.loads((out / "survey-report.json").read_text())
    validate(report, SURVEY_SCHEMA)
    [resource] = report["resources"]
    [group] = resource["duplicateGroups"]
    files = {f["path"].rsplit("/", 1)[-1]: f for f in resource["files"]}
    return group, files, resource


def test_a_de_identified_older_copy_and_an_identified_newer_one(tmp_path: Path) -> None:
    original = d.original()
    group, files, resource = survey_pair(tmp_path, d.dicognito(original), original)
    assert "LESS_DEIDENTIFIED" in files["b.dcm"]["reasons"] and "LESS_DEIDENTIFIED" not in files["a.dcm"]["reasons"]
    assert files["a.dcm"]["deidentification"] == {
        "patientIdentityRemoved": "YES", "methods": ["dicognito"], "methodCodes": [],
        "longitudinalTemporalInformationModified": None, "privateTags": False,
        "identifyingAttributes": ["PatientID", "PatientName", "SOPInstanceUID", "SeriesDescription",
                                  "SeriesInstanceUID", "StudyDate", "StudyDescription", "StudyInstanceUID",
                                  "StudyTime"],
        "matchesXnatLabels": False}
    assert {"InstitutionName", "PatientBirthDate", "ReferringPhysicianName", "OtherPatientIDs",
            "AccessionNumber"} <= set(files["b.dcm"]["deidentification"]["identifyingAttributes"])
    assert group["deidentification"]["lessDeidentified"] == [files["b.dcm"]["path"]]
    assert "PatientIdentityRemoved" in group["deidentification"]["because"][files["b.dcm"]["path"]]
    assert group["differingAttributes"] == ["AccessionNumber", "DeidentificationMethod", "InstitutionName",
                                            "OtherPatientIDs", "PatientBirthDate", "PatientID",
                                            "PatientIdentityRemoved", "PatientName", "ReferringPhysicianName"]
    assert group["pixelDataDiffers"] is False
    assert group["deidentification"]["profile"].endswith("edition 2026c")
    assert resource["counts"]["lessDeidentified"] == 1


@pytest.mark.parametrize(("tool", "methods", "codes"), [
    (d.dicognito, ["dicognito"], []),
    (d.ctp, ["CTP"], ["113100"]),
    (d.pydicom_deid, ["deid"], []),
])
def test_copies_marked_by_known_tools(tmp_path: Path, tool: Any, methods: list[str], codes: list[str]) -> None:
    original = d.original()
    group, files, _ = survey_pair(tmp_path, tool(original), original)
    marked = files["a.dcm"]["deidentification"]
    assert (marked["methods"], marked["methodCodes"], marked["patientIdentityRemoved"]) == (methods, codes, "YES")
    assert group["deidentification"]["lessDeidentified"] == [files["b.dcm"]["path"]]


def test_a_tool_appending_its_method_is_more_de_identified(tmp_path: Path) -> None:
    """CTP after dicognito: the methods a strict superset, everything else alike."""
    once = d.dicognito(d.original())
    twice = d.copy_of(once, DeidentificationMethod=["DICOGNITO", "CTP Default:  based on DICOM PS3.15 AnnexE"])
    group, files, _ = survey_pair(tmp_path, twice, once)
    assert files["b.dcm"]["deidentification"]["methods"] == ["dicognito"]
    assert files["a.dcm"]["deidentification"]["methods"] == ["CTP", "dicognito"]
    assert group["deidentification"]["because"] == {files["b.dcm"]["path"]: ["DeidentificationMethod"]}


def test_free_text_methods_count_as_present_and_are_never_copied(tmp_path: Path) -> None:
    original = d.original()
    marked = d.copy_of(original, DeidentificationMethod=d.FREE_TEXT_METHOD, PatientIdentityRemoved="yes, by hand")
    _, files, _ = survey_pair(tmp_path, marked, original)
    assert files["a.dcm"]["deidentification"]["methods"] == ["present"]
    assert files["a.dcm"]["deidentification"]["patientIdentityRemoved"] == "OTHER"
    assert d.FREE_TEXT_METHOD not in (tmp_path / "out" / "survey-report.json").read_text()
    assert "LESS_DEIDENTIFIED" in files["b.dcm"]["reasons"]


def test_xnat_dicomedit_copy_against_the_original(tmp_path: Path) -> None:
    """XNAT's default script marks nothing: the labels in PatientID (session) tell the copies apart."""
    original = d.original()
    group, files, _ = survey_pair(tmp_path, d.xnat_dicomedit(original), original)
    assert files["a.dcm"]["deidentification"]["matchesXnatLabels"] is True
    assert files["b.dcm"]["deidentification"]["matchesXnatLabels"] is False
    assert files["a.dcm"]["deidentification"]["patientIdentityRemoved"] is None
    assert group["deidentification"]["lessDeidentified"] == [files["b.dcm"]["path"]]
    assert group["deidentification"]["because"][files["b.dcm"]["path"]] == ["PatientID", "PatientName"]


def test_a_copy_whose_patient_name_is_in_its_legacy_name_is_not_de_identified(tmp_path: Path) -> None:
    """The pre-1.8.7 namer put PatientName first: a copy still holding it was not de-identified since."""
    patient = "Legacyperson^Test"
    original = d.copy_of(d.original(), PatientName=patient)
    legacy = f"Legacyperson_Test.MR.Brain.1.1.20240102.101500.{legacy_hash(d.MR, original.SOPInstanceUID)}.dcm"
    renamed = d.copy_of(original, PatientName="Anonymous")
    group, files, _ = survey_pair(tmp_path, original, renamed, names=(legacy, "b.dcm"))
    assert "LEGACY_NAME" in files[legacy]["reasons"]
    assert group["deidentification"]["lessDeidentified"] == [files[legacy]["path"]]
    assert group["deidentification"]["because"][files[legacy]["path"]] == ["PatientName"]


def test_copies_alike_in_de_identification_that_differ_in_a_description(tmp_path: Path) -> None:
    original = d.dicognito(d.original())
    group, files, _ = survey_pair(tmp_path, original, d.copy_of(original, SeriesDescription="T1 axial re-sent"))
    assert group["differingAttributes"] == ["SeriesDescription"]
    assert group["deidentification"] | {"profile": ""} == {"lessDeidentified": [], "undecided": False, "lookAt": [],
                                                           "because": {}, "profile": ""}
    assert not {"LESS_DEIDENTIFIED", "DEIDENTIFICATION_UNDECIDED"} & {r for f in files.values() for r in f["reasons"]}


def test_an_undecidable_pair(tmp_path: Path) -> None:
    """One copy says YES to PatientIdentityRemoved yet keeps the institution; the other is unmarked without it."""
    original = d.original()
    marked = d.copy_of(original, PatientIdentityRemoved="YES")
    without = d.copy_of(original, InstitutionName=None)
    group, files, resource = survey_pair(tmp_path, marked, without)
    assert all("DEIDENTIFICATION_UNDECIDED" in f["reasons"] for f in files.values())
    assert group["deidentification"]["undecided"] is True
    assert group["deidentification"]["lookAt"] == ["InstitutionName", "PatientIdentityRemoved"]
    assert resource["counts"]["deidentificationUndecided"] == 2


def test_byte_identical_copies_are_not_read_further(tmp_path: Path) -> None:
    original = d.original()
    group, files, _ = survey_pair(tmp_path, original, original)
    assert group["identical"] is True
    assert "deidentification" not in group and "differingAttributes" not in group
    assert all("deidentification" not in f for f in files.values())


def test_pixel_data_differing(tmp_path: Path) -> None:
    group, _, _ = survey_pair(tmp_path, d.original(pixel=7), d.original(pixel=9))
    assert group["pixelDataDiffers"] is True
    assert group["differingAttributes"] == []  # the pixel data is compared by digest only


def test_a_deflated_copy_is_read_too(tmp_path: Path) -> None:
    original = d.original()
    group, files, _ = survey_pair(tmp_path, d.ctp(original), original, deflated=True)
    assert files["a.dcm"]["deidentification"]["methodCodes"] == ["113100"]
    assert group["pixelDataDiffers"] is False
    assert group["deidentification"]["lessDeidentified"] == [files["b.dcm"]["path"]]


def test_no_identifying_value_in_any_output(tmp_path: Path) -> None:
    """Survey, HTML, dry run, mitigation, restore and roll-up of every kind of pair: no synthesized value in any
    output, logs, journal and the run's state folder included."""
    folder = d.session_folder(tmp_path / "root")
    original = d.original()
    pairs = [(d.dicognito(original), original), (d.xnat_dicomedit(original), original),
             (d.copy_of(original, PatientIdentityRemoved="YES", DeidentificationMethod=d.FREE_TEXT_METHOD),
              d.copy_of(original, InstitutionName=None))]
    for n, (older, newer) in enumerate(pairs):
        uid = {"SOPInstanceUID": f"{original.SOPInstanceUID}.{n}"}
        d.write(folder / f"old{n}.dcm", d.copy_of(older, **uid), d.BASE_MTIME)
        d.write(folder / f"new{n}.dcm", d.copy_of(newer, **uid), d.BASE_MTIME + 100)
    out = tmp_path / "out"
    logs = []
    for args in (["survey", tmp_path / "root", "--output", out],
                 ["mitigate", tmp_path / "root", "--report", out / "survey-report.json", "--dry-run",
                  "--backup-dir", tmp_path / "backup", "--output", out / "dry"],
                 ["mitigate", tmp_path / "root", "--report", out / "survey-report.json",
                  "--backup-dir", tmp_path / "backup", "--output", out / "mitigation"],
                 ["restore", "--report", out / "mitigation" / "mitigation-report.json", "--output", out / "restore"],
                 ["rollup", out / "survey-report.json", out / "mitigation" / "mitigation-report.json",
                  "--output", out / "rollup"]):
        result = run_cli(*args)
        assert result.returncode in (0, 1), result.stderr
        no_traceback(result)
        logs.append(result.stdout + result.stderr)
    report = json.loads((out / "survey-report.json").read_text())
    assert report["totals"]["lessDeidentified"] == 2
    assert (out / "report.html").read_text().count("data-less-deidentified") == 2
    # The backup folder holds the removed copies themselves: the archive's own bytes, not an output.
    assert (out / "restore" / "restore-report.json").is_file() and (out / "rollup" / "rollup.html").is_file()
    state = tmp_path / "backup" / ".xnat-resource-survey"
    assert any(state.rglob("*journal*")), "the run's journal is where it is looked for"
    d.assert_no_secret(d.all_output_text(out, state, extra="\n".join(logs)))
