"""Catalogs in the survey: entries without files, files without entries, catalogs never to be read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from container_app.demo import synth
from container_app.demo.synth import (
    FileSpec,
    Plant,
    ScanSpec,
)
from tests.helpers.survey import STUDY, files_of, resource_of

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
