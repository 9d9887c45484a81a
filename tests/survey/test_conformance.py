"""The survey as a library: XNAT's conformance result, the demo, request statuses and site templates."""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from container_app.core.naming import parse_template
from container_app.demo import synth
from container_app.demo.archive import DEMO_PROJECT, DEMO_SESSION, build_demo_archive
from container_app.demo.synth import (
    CopyKind,
    CopySpec,
    ExtraFile,
    ExtraKind,
    FileSpec,
    Naming,
    Plant,
    ScanSpec,
)
from tests.helpers.survey import MR, STUDY, files_of, resource_of

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
            # Only the copies of one instance are hashed; every file a mitigation may change carries what
            # proves it unchanged (schema 1.1, issue 17).
            on_disk = (scan5.root / "SCANS/5/DICOM" / finding["path"].rsplit("/", 1)[-1]).stat()
            assert (finding["inode"], finding["ctimeNs"]) == (on_disk.st_ino, on_disk.st_ctime_ns)
            if finding["status"] == "MISMATCHED":
                assert finding["sha256"] is None
            else:
                assert finding["sha256"] == hashlib.sha256((scan5.root / "SCANS/5/DICOM" / finding["path"].rsplit(
                    "/", 1)[-1]).read_bytes()).hexdigest()
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
        assert ("LESS_DEIDENTIFIED" in finding["reasons"]) == (Plant.LESS_DEIDENTIFIED in planted.plants), planted
        if Plant.DUPLICATE_IDENTICAL in planted.plants:
            assert "DUPLICATE_IDENTICAL" in finding["reasons"]


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


# --- site templates --------------------------------------------------------------------------------


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
