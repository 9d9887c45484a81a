"""The survey as a library: XNAT's conformance result, the demo, catalogs, statuses, layouts and selection."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from container_app.cli.settings import Common, SurveySettings
from container_app.cli.workflows import survey_archive
from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.demo import synth
from container_app.demo.archive import DEMO_PROJECT, DEMO_SESSION, build_demo_archive
from container_app.demo.synth import (
    CopyKind,
    CopySpec,
    ExtraFile,
    ExtraKind,
    FileSpec,
    InstanceSpec,
    Naming,
    Plant,
    ResourceSpec,
    ScanSpec,
    SessionSpec,
)
from container_app.survey.discover import Selection, discover

MR = synth.MR_IMAGE_STORAGE
STUDY = InstanceSpec(sop_instance_uid=synth.uid("survey", "placeholder"),
                     study_instance_uid=synth.uid("survey", "study"))


def resource_of(report: dict[str, Any], path: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [r for r in report["resources"] if r["path"] == path]
    assert len(matches) == 1, [r["path"] for r in report["resources"]]
    return matches[0]


def files_of(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"].rsplit("/", 1)[-1]: f for f in resource["files"]}


# --- XNAT's own test: scan 5 -----------------------------------------------------------------------


def check_scan5_report(report: dict[str, Any], scan5: Any, root_rel: str = "SCANS/5/DICOM") -> None:
    """What XNAT's unit test asserts, plus what this tool adds."""
    [resource] = report["resources"]
    assert resource["path"] == root_rel
    xnat = resource["xnat"]
    assert xnat["totalEntries"] == 65
    assert xnat["totalUids"] == 60
    assert len(xnat["uids"]) == 1
    assert [len(v) for v in xnat["uids"].values()] == [60]
    assert xnat["totalBadFiles"] == 0 and xnat["badFiles"] == []
    assert xnat["totalDuplicates"] == 5
    assert xnat["totalFilesInDuplicates"] == 10
    assert xnat["totalMismatchedFiles"] == 26 and len(xnat["mismatchedFiles"]) == 26
    assert xnat["totalNonActionableDuplicates"] == 0
    assert resource["requestStatus"] == "DIVERGENT"
    # Every file's expected name, together: exactly the 60 names XNAT's mitigation leaves.
    assert {f["expectedName"] for f in resource["files"]} == scan5.expected_names
    assert len(scan5.expected_names) == 60
    # Files in duplicate groups are never also mismatches.
    in_duplicates = {p for by_uid in xnat["duplicates"].values() for members in by_uid.values() for p in members}
    assert len(in_duplicates) == 10
    assert not in_duplicates & set(xnat["mismatchedFiles"])
    # Paths are relative to ROOT and name real files.
    prefix = "" if root_rel == "." else root_rel + "/"
    for finding in resource["files"]:
        assert not finding["path"].startswith("/")
        assert finding["path"].startswith(prefix)
        assert (scan5.root / "SCANS/5/DICOM" / finding["path"].rsplit("/", 1)[-1]).is_file()
        if finding["status"] in ("MISMATCHED", "DUPLICATE", "NONACTIONABLE_DUPLICATE"):
            assert finding["sha256"] and len(finding["sha256"]) == 64
            assert finding["intact"] is True
        else:
            assert finding["status"] == "CONFORMING"
            assert finding["sha256"] is None
            assert finding["expectedName"] == finding["path"].rsplit("/", 1)[-1]
    counts = Counter(f["status"] for f in resource["files"])
    assert counts == {"CONFORMING": 29, "MISMATCHED": 26, "DUPLICATE": 10}
    assert resource["catalog"]["present"] and resource["catalog"]["entries"] == 65
    assert resource["catalog"]["missingFiles"] == []
    assert resource["counts"]["notInCatalog"] == 0


def test_scan5_conformance(scan5: Any, survey_lib: Any, report_schema: Any) -> None:
    report = survey_lib(scan5.root)
    report_schema(report)
    check_scan5_report(report, scan5)
    identity = report["resources"][0]["identity"]
    assert identity["scanId"] == "5"
    assert identity["resourceLabel"] == "DICOM"
    assert identity["project"] == "Test"  # the catalog's PROJECT metaField
    assert identity["catalogPath"] == "SCANS/5/DICOM/scan_5_catalog.xml"


def test_scan5_sha256_is_the_files_digest(scan5: Any, survey_lib: Any) -> None:
    import hashlib

    report = survey_lib(scan5.root)
    for finding in report["resources"][0]["files"]:
        if finding["sha256"] is not None:
            data = (scan5.root / finding["path"]).read_bytes()
            assert finding["sha256"] == hashlib.sha256(data).hexdigest()
            assert finding["size"] == len(data)


def test_scan5_with_the_resource_folder_as_root(scan5: Any, survey_lib: Any, report_schema: Any) -> None:
    report = survey_lib(scan5.resource)
    report_schema(report)
    check_scan5_report(report, scan5, root_rel=".")
    assert report["resources"][0]["identity"]["scanId"] == "5"


def test_legacy_named_conformance_files(conformance: Path, survey_lib: Any) -> None:
    report = survey_lib(conformance / "legacy-named")
    files = files_of(report["resources"][0])
    assert {f["status"] for f in files.values()} == {"MISMATCHED"}
    # The first file is the instance of the reference's check vector, with InstanceNumber 1.
    first = files["1.MR.head_DHead.4.1.20061214.091206.156000.1632817982.dcm"]
    assert first["expectedName"] == "1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034-4-1-1qs88hj.dcm"


# --- the demo --------------------------------------------------------------------------------------


def test_demo_archive_report_matches_its_manifest(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    manifest = build_demo_archive(tmp_path / "archive")
    report = survey_lib(tmp_path / "archive")
    report_schema(report)
    totals = report["totals"]
    statuses = Counter(f["status"] for r in report["resources"] for f in r["files"])
    expected = manifest.expected_totals()
    assert {key: totals[key] for key in expected} == expected
    assert sum(r["xnat"]["totalUids"] for r in report["resources"]) == manifest.total_uids
    assert statuses["CONFORMING"] == manifest.conforming
    assert {r["identity"]["scanId"]: r["requestStatus"] for r in report["resources"]} == manifest.resource_status
    for resource in report["resources"]:
        assert resource["identity"]["project"] == DEMO_PROJECT
        assert resource["identity"]["session"] == DEMO_SESSION
    # Every planted expectation of the synthesizer holds file by file.
    by_path = {f["path"]: f for r in report["resources"] for f in r["files"]}
    prefix = f"{DEMO_PROJECT}/arc001/{DEMO_SESSION}/"
    for planted in manifest.layout.files:
        if not planted.path.startswith("SCANS/"):
            continue
        finding = by_path[prefix + planted.path]
        assert (finding["status"] == "BAD") == planted.is_bad, planted
        if not planted.is_bad and planted.expected_name is not None:
            assert finding["expectedName"] == planted.expected_name
        if Plant.LEGACY_NAME in planted.plants:
            assert "LEGACY_NAME" in finding["reasons"]
            assert "IDENTIFYING_NAME" in finding["reasons"]
            assert finding["identifyingTags"] == ["PatientName"]
        if Plant.DUPLICATE_DIFFERENT in planted.plants:
            assert "DUPLICATE_DIFFERENT" in finding["reasons"]
        if Plant.DUPLICATE_IDENTICAL in planted.plants:
            assert "DUPLICATE_IDENTICAL" in finding["reasons"]


# --- catalogs --------------------------------------------------------------------------------------


def test_catalog_findings(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    instances = synth.series_instances(STUDY, 7, 4)
    layout = synth.build_session(tmp_path / "session", "S1", "P1", [ScanSpec(scan_id="7", files=(
        FileSpec(instance=instances[0]),
        FileSpec(instance=instances[1], present=False),  # the catalog lists a file that is gone
        FileSpec(instance=instances[2], in_catalog=False),  # on disk, not in the catalog
        FileSpec(instance=instances[3], catalog_uid=synth.uid("survey", "wrong")),  # catalog UID differs
    ))])
    report = survey_lib(tmp_path / "session")
    report_schema(report)
    resource = resource_of(report, "SCANS/7/DICOM")
    files = files_of(resource)
    missing = layout.with_plant(Plant.CATALOG_ENTRY_MISSING_FILE)
    assert resource["catalog"]["missingFiles"] == [{"uri": missing[0].name, "reason": "CATALOG_ENTRY_MISSING_FILE"}]
    assert missing[0].name not in files
    assert files[layout.with_plant(Plant.NOT_IN_CATALOG)[0].name]["reasons"] == ["NOT_IN_CATALOG"]
    assert files[layout.with_plant(Plant.CATALOG_UID_MISMATCH)[0].name]["reasons"] == ["CATALOG_UID_MISMATCH"]
    assert files[synth.xnat_name(instances[0])]["reasons"] == []
    assert resource["counts"]["notInCatalog"] == 1
    assert resource["counts"]["catalogUidMismatch"] == 1
    assert resource["catalog"]["entries"] == 3
    assert resource["catalog"]["dcmEntries"] == 3
    assert report["totals"]["catalogEntriesMissingFile"] == 1
    # These are findings beyond XNAT's: the resource itself still conforms.
    assert resource["requestStatus"] == "CONFORMING"
    assert resource["xnat"]["totalEntries"] == 3


def test_unparsable_catalog_is_reported_and_the_files_still_surveyed(tmp_path: Path, survey_lib: Any) -> None:
    resource = tmp_path / "root" / "SCANS" / "1" / "DICOM"
    instance = synth.series_instances(STUDY, 1, 1)[0]
    synth.write_instance(resource / synth.xnat_name(instance), instance)
    (resource / "scan_1_catalog.xml").write_text("<cat:DCMCatalog", encoding="utf-8")
    report = survey_lib(tmp_path / "root")
    [found] = report["resources"]
    assert found["catalog"]["error"] and "scan_1_catalog.xml" in found["catalog"]["error"]
    assert found["catalog"]["present"] is False
    assert found["requestStatus"] == "CONFORMING"


def test_a_symlinked_catalog_is_never_read(tmp_path: Path, survey_lib: Any) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret_entry = "PATIENT-SECRET.dcm"
    (outside / "scan_1_catalog.xml").write_text(
        synth.catalog_xml([synth.CatalogEntrySpec(name=secret_entry, digest="0", format="DICOM")],
                          project="SECRET", dicom=True), encoding="utf-8")
    root = tmp_path / "root"
    resource = root / "SCANS" / "1" / "DICOM"
    instance = synth.series_instances(STUDY, 1, 1)[0]
    synth.write_instance(resource / synth.xnat_name(instance), instance)
    (resource / "scan_1_catalog.xml").symlink_to(outside / "scan_1_catalog.xml")
    report = survey_lib(root)
    text = json.dumps(report)
    assert secret_entry not in text
    assert "SECRET" not in text
    files = files_of(report["resources"][0])
    assert files["scan_1_catalog.xml"]["reasons"][0] == "SYMLINK_OUTSIDE_ROOT"


# --- statuses --------------------------------------------------------------------------------------


def build_statuses(root: Path) -> None:
    conforming = synth.series_instances(STUDY, 1, 3)
    mismatched = synth.series_instances(STUDY, 2, 2)
    nonactionable = synth.series_instances(STUDY, 3, 2)
    renumbered = dataclasses.replace(nonactionable[0], instance_number="99")  # same UIDs, another name
    duplicated = synth.series_instances(STUDY, 4, 2)
    synth.build_session(root, "S1", "P1", [
        ScanSpec.conforming("1", conforming),
        ScanSpec(scan_id="2", files=(FileSpec(instance=mismatched[0], name="IM0001"),
                                     FileSpec(instance=mismatched[1]))),
        ScanSpec(scan_id="3", files=(FileSpec(instance=nonactionable[0]), FileSpec(instance=nonactionable[1]),
                                     FileSpec(instance=renumbered))),
        ScanSpec(scan_id="4", files=(
            FileSpec(instance=duplicated[0], copies=(CopySpec(name="copy-identical.dcm"),)),
            FileSpec(instance=duplicated[1], name=Naming.LEGACY,
                     copies=(CopySpec(name=Naming.XNAT, kind=CopyKind.DIFFERENT),)),
        )),
        ScanSpec(scan_id="5", files=(FileSpec(instance=synth.series_instances(STUDY, 5, 1)[0]),),
                 extras=(ExtraFile(name="notes.txt", kind=ExtraKind.TEXT),)),
    ])


def test_request_statuses(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    build_statuses(tmp_path / "session")
    report = survey_lib(tmp_path / "session")
    report_schema(report)
    status = {r["identity"]["scanId"]: r["requestStatus"] for r in report["resources"]}
    assert status == {"1": "CONFORMING", "2": "DIVERGENT", "3": "NONCOMPLIANT", "4": "DIVERGENT", "5": "DIVERGENT"}
    totals = report["totals"]
    assert (totals["conforming"], totals["divergent"], totals["noncompliant"]) == (1, 3, 1)

    scan2 = resource_of(report, "SCANS/2/DICOM")
    assert list(scan2["xnat"]["mismatchedFiles"]) == ["SCANS/2/DICOM/IM0001"]

    scan3 = resource_of(report, "SCANS/3/DICOM")
    xnat = scan3["xnat"]
    assert xnat["totalNonActionableDuplicates"] == 1
    assert xnat["totalFilesInNonActionableDuplicates"] == 2
    assert xnat["totalDuplicates"] == 0 and xnat["mismatchedFiles"] == {}
    [(class_uid, by_instance)] = xnat["nonActionableDuplicates"].items()
    assert class_uid == MR
    [members] = by_instance.values()
    assert len(set(members.values())) == 2  # the expected names differ: XNAT leaves them alone
    for path in members:
        assert files_of(scan3)[path.rsplit("/", 1)[-1]]["status"] == "NONACTIONABLE_DUPLICATE"
    [group] = scan3["duplicateGroups"]
    assert group["actionable"] is False
    assert xnat["totalUids"] == 2

    scan4 = resource_of(report, "SCANS/4/DICOM")
    groups = {g["identical"]: g for g in scan4["duplicateGroups"]}
    assert set(groups) == {True, False}
    assert all(g["actionable"] for g in groups.values())
    files4 = files_of(scan4)
    assert "DUPLICATE_IDENTICAL" in files4["copy-identical.dcm"]["reasons"]
    assert sum("DUPLICATE_DIFFERENT" in f["reasons"] for f in files4.values()) == 2
    assert scan4["xnat"]["totalMismatchedFiles"] == 0

    scan5 = resource_of(report, "SCANS/5/DICOM")
    assert scan5["xnat"]["badFiles"] == ["SCANS/5/DICOM/notes.txt"]
    assert files_of(scan5)["notes.txt"]["reasons"] == ["NOT_DICOM"]


# --- layouts ---------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> synth.ProjectLayout:
    scans = (ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 2)),
             ScanSpec.conforming("2", synth.series_instances(STUDY, 2, 2), label="SECONDARY"))
    snapshots = ResourceSpec(label="SNAPSHOTS", format="PNG",
                             files=(ExtraFile(name="qc.png", kind=ExtraKind.PNG),))
    return synth.build_project(tmp_path / "archive", "PROJ", [
        SessionSpec(label="SESS1", scans=scans, resources=(snapshots,)),
        SessionSpec(label="SESS2", scans=scans[:1]),
    ])


def identities(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {r["path"]: (r["identity"]["project"], r["identity"]["session"], r["identity"]["scanId"],
                        r["identity"]["resourceLabel"]) for r in report["resources"]}


def test_layout_project_archive(project: synth.ProjectLayout, survey_lib: Any) -> None:
    for root, prefix in ((project.root, "PROJ/arc001/"), (project.root / "PROJ", "arc001/"),
                         (project.root / "PROJ" / "arc001", "")):
        report = survey_lib(root)
        assert identities(report) == {
            f"{prefix}SESS1/SCANS/1/DICOM": ("PROJ", "SESS1", "1", "DICOM"),
            f"{prefix}SESS2/SCANS/1/DICOM": ("PROJ", "SESS2", "1", "DICOM"),
        }, root
        assert {r["requestStatus"] for r in report["resources"]} == {"CONFORMING"}


def test_layout_session_mount(project: synth.ProjectLayout, survey_lib: Any) -> None:
    session = project.session("SESS1").root
    assert identities(survey_lib(session)) == {"SCANS/1/DICOM": ("PROJ", "SESS1", "1", "DICOM")}
    everything = survey_lib(session, all_resources=True)
    assert identities(everything) == {
        "SCANS/1/DICOM": ("PROJ", "SESS1", "1", "DICOM"),
        "SCANS/2/SECONDARY": ("PROJ", "SESS1", "2", "SECONDARY"),
        "RESOURCES/SNAPSHOTS": ("PROJ", "SESS1", None, "SNAPSHOTS"),
    }
    assert resource_of(everything, "RESOURCES/SNAPSHOTS")["xnat"]["badFiles"] == ["RESOURCES/SNAPSHOTS/qc.png"]
    labelled = survey_lib(session, labels=frozenset({"SECONDARY", "SNAPSHOTS"}))
    assert set(identities(labelled)) == {"SCANS/2/SECONDARY", "RESOURCES/SNAPSHOTS"}
    assert labelled["options"]["resourceLabels"] == ["SECONDARY", "SNAPSHOTS"]


def test_layout_session_mount_without_a_name(tmp_path: Path, survey_lib: Any) -> None:
    """A container's session mount (`/input`): scans and labels from the layout, no session label."""
    synth.build_session(tmp_path / "input", "S", "P1", [ScanSpec.conforming("3", synth.series_instances(STUDY, 3, 1))])
    assert identities(survey_lib(tmp_path / "input")) == {"SCANS/3/DICOM": ("P1", None, "3", "DICOM")}


def test_layout_scan_folder_and_resource_folder(project: synth.ProjectLayout, survey_lib: Any) -> None:
    scan = project.session("SESS1").root / "SCANS" / "1"
    assert identities(survey_lib(scan)) == {"DICOM": ("PROJ", "SESS1", "1", "DICOM")}
    resource = scan / "DICOM"
    report = survey_lib(resource)
    assert identities(report) == {".": ("PROJ", "SESS1", "1", "DICOM")}
    assert all("/" not in f["path"] for f in report["resources"][0]["files"])
    # A resource folder is surveyed because the user pointed at it, whatever its label.
    other = project.session("SESS1").root / "SCANS" / "2" / "SECONDARY"
    assert identities(survey_lib(other)) == {".": ("PROJ", "SESS1", "2", "SECONDARY")}


def test_layout_bare_resource_folder(tmp_path: Path, survey_lib: Any) -> None:
    instances = synth.series_instances(STUDY, 9, 3)
    synth.build_resource(tmp_path / "upload", [FileSpec(instance=i) for i in instances], project="PX", scan_id="9")
    report = survey_lib(tmp_path / "upload")
    [resource] = report["resources"]
    assert resource["path"] == "."
    assert resource["identity"]["project"] == "PX"
    assert resource["identity"]["catalogPath"] == "scan_9_catalog.xml"
    assert resource["requestStatus"] == "CONFORMING"
    assert resource["xnat"]["totalEntries"] == 3


def test_layout_plain_folder(tmp_path: Path, survey_lib: Any) -> None:
    instances = synth.series_instances(STUDY, 1, 3)
    plain = tmp_path / "plain"
    synth.write_instance(plain / "top.dcm", instances[0])
    synth.write_instance(plain / "a" / "one.dcm", instances[1])
    synth.write_instance(plain / "a" / "b" / "two.dcm", instances[2])
    (plain / "empty" / "deeper").mkdir(parents=True)
    report = survey_lib(plain)
    assert identities(report) == {".": (None, None, None, "plain"), "a": (None, None, None, "a"),
                                  "a/b": (None, None, None, "b")}
    assert [f["path"] for r in report["resources"] for f in r["files"]] == ["top.dcm", "a/one.dcm", "a/b/two.dcm"]
    assert report["totals"]["mismatchedFiles"] == 3


def test_empty_root(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    (tmp_path / "empty").mkdir()
    report = survey_lib(tmp_path / "empty")
    report_schema(report)
    assert report["resources"] == []
    assert report["totals"]["resources"] == 0


def test_discover_is_sorted_and_never_follows_directory_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name in ("b", "a", "c"):
        (root / name).mkdir(parents=True)
        (root / name / "f").write_bytes(b"x")
    (root / "link").symlink_to(tmp_path, target_is_directory=True)
    found = list(discover(str(root), Selection()))
    assert [r.rel_path for r in found] == [".", "a", "b", "c"]
    assert found[0].files == ("link",)


def test_since(project: synth.ProjectLayout, survey_lib: Any) -> None:
    session = project.session("SESS1").root
    planted = dt.datetime.fromtimestamp(synth.DEFAULT_MTIME, dt.UTC).date()
    assert len(survey_lib(session, since=planted)["resources"]) == 1
    later = planted + dt.timedelta(days=1)
    assert survey_lib(session, since=later)["resources"] == []
    # A file changed after the day: its resource (only) is surveyed again.
    changed = next((session / "SCANS" / "2" / "SECONDARY").glob("*.dcm"))
    os.utime(changed, None)
    report = survey_lib(session, since=later, all_resources=True)
    assert [r["path"] for r in report["resources"]] == ["SCANS/2/SECONDARY"]
    assert report["options"]["since"] == later.isoformat()


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


# --- templates, odd resources, unlistable folders ---------------------------------------------------


def test_a_site_template(tmp_path: Path, survey_lib: Any) -> None:
    instances = synth.series_instances(STUDY, 6, 2)
    root = tmp_path / "root"
    synth.build_resource(root, [FileSpec(instance=instances[0], name=f"{instances[0].sop_instance_uid}.dcm"),
                                FileSpec(instance=instances[1])])
    report = survey_lib(root, template="${SOPInstanceUID}")
    files = files_of(report["resources"][0])
    assert files[f"{instances[0].sop_instance_uid}.dcm"]["status"] == "CONFORMING"
    assert files[synth.xnat_name(instances[1])]["expectedName"] == f"{instances[1].sop_instance_uid}.dcm"
    assert report["template"] == "${SOPInstanceUID}"
    # A template reading an element past the default stop (Rows, group 0028) and with its own extension.
    report = survey_lib(root, template="${Modality}_${Rows}_${InstanceNumber}.ima")
    assert {f["expectedName"] for f in report["resources"][0]["files"]} == {"MR_16_1.ima", "MR_16_2.ima"}


def test_a_resource_whose_files_are_all_gone(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    instances = synth.series_instances(STUDY, 8, 2)
    synth.build_session(tmp_path / "session", "S", "P", [ScanSpec(scan_id="8", files=tuple(
        FileSpec(instance=i, present=False) for i in instances))])
    report = survey_lib(tmp_path / "session")
    report_schema(report)
    [resource] = report["resources"]
    assert resource["files"] == []
    assert len(resource["catalog"]["missingFiles"]) == 2
    assert resource["requestStatus"] == "CONFORMING"


def test_an_unlistable_folder_is_skipped_with_a_warning(tmp_path: Path, survey_lib: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    synth.build_session(tmp_path / "session", "S", "P", [
        ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 1)),
        ScanSpec.conforming("2", synth.series_instances(STUDY, 2, 1)),
    ])
    blocked = str(tmp_path / "session" / "SCANS" / "2")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    structlog.reset_defaults()
    with capture_logs() as logs:
        report = survey_lib(tmp_path / "session")
    assert [r["path"] for r in report["resources"]] == ["SCANS/1/DICOM"]
    [skipped] = [e for e in logs if e["event"] == "folder skipped"]
    assert skipped["log_level"] == "warning"
    assert skipped["path"] == "SCANS/2"


@pytest.mark.filterwarnings("ignore:Expected implicit VR")
def test_subfolders_belong_to_their_resource(tmp_path: Path, survey_lib: Any) -> None:
    """FreeSurfer's mri/ or a NIFTI resource's subfolder is not surveyed as DICOM; a DICOM subfolder is."""
    session = tmp_path / "session"
    instances = synth.series_instances(STUDY, 1, 2)
    synth.build_session(session, "S", "P", [ScanSpec.conforming("1", instances[:1])])
    synth.write_instance(session / "SCANS/1/DICOM/secondary" / synth.xnat_name(instances[1]), instances[1])
    for path in ("RESOURCES/FREESURFER/mri/brain.mgz", "RESOURCES/FREESURFER/stats/aseg.stats",
                 "SCANS/1/NIFTI/sub/x.nii"):
        (session / path).parent.mkdir(parents=True, exist_ok=True)
        (session / path).write_text("not DICOM")
    assert identities(survey_lib(session)) == {
        "SCANS/1/DICOM": ("P", None, "1", "DICOM"),
        "SCANS/1/DICOM/secondary": (None, None, "1", "DICOM"),
    }
    everything = identities(survey_lib(session, all_resources=True))
    assert everything["RESOURCES/FREESURFER/mri"] == (None, None, None, "FREESURFER")
    assert everything["SCANS/1/NIFTI/sub"] == (None, None, "1", "NIFTI")
    assert identities(survey_lib(session, labels=frozenset({"FREESURFER"}))) == {
        "RESOURCES/FREESURFER/mri": (None, None, None, "FREESURFER"),
        "RESOURCES/FREESURFER/stats": (None, None, None, "FREESURFER"),
    }
    # Pointed at directly, a subfolder is surveyed whatever its resource's label.
    assert identities(survey_lib(session / "SCANS/1/NIFTI/sub")) == {".": (None, None, "1", "NIFTI")}


def test_a_site_template_with_identifying_values_flags_conforming_names(tmp_path: Path, survey_lib: Any) -> None:
    """Conforming names are exempt from the identifying check only when the template reads no identifying tag."""
    template = "${PatientID}-${SOPInstanceUID}"
    root = tmp_path / "root"
    instance = dataclasses.replace(synth.series_instances(STUDY, 1, 1)[0], patient_id="MRN12345678")
    name = parse_template(template).render(lambda k: synth.header_value(instance, k))
    synth.write_instance(root / name, instance)
    [finding] = survey_lib(root, template=template)["resources"][0]["files"]
    assert finding["status"] == "CONFORMING"
    assert "IDENTIFYING_NAME" in finding["reasons"] and finding["identifyingTags"] == ["PatientID"]
    [default] = survey_lib(root)["resources"][0]["files"]
    assert "IDENTIFYING_NAME" in default["reasons"]  # not at XNAT's default name: checked, and found
