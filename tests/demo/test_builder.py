"""Archive layouts: what the builder writes, the plants it reports, catalogs, links and mtimes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pydicom import dcmread

from container_app.demo import synth
from container_app.demo.synth import (
    CopyKind,
    CopySpec,
    ExtraFile,
    ExtraKind,
    FileSpec,
    Naming,
    Plant,
    ResourceSpec,
    ScanSpec,
    SessionSpec,
    TruncateAt,
)
from tests.helpers.demo import BASE, conformance_file

CAT = "{http://nrg.wustl.edu/catalog}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


def _catalog_entries(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {e.get("URI", ""): e for e in root.iter(f"{CAT}entry")}


def _planting_session(tmp_path: Path) -> synth.SessionLayout:
    study = dataclasses.replace(BASE, study_instance_uid=synth.uid("plant", "study"))
    s1 = synth.series_instances(study, 1, 10)
    return synth.build_session(tmp_path / "S1", "S1", "P1", [
        ScanSpec(scan_id="1", files=(
            FileSpec(instance=s1[0]),
            FileSpec(instance=s1[1], name=Naming.LEGACY),
            FileSpec(instance=s1[2], name="IM0001"),
            FileSpec(instance=s1[3], name=Naming.LEGACY, copies=(CopySpec(name=Naming.XNAT),)),
            FileSpec(instance=s1[4], copies=(CopySpec(name="dup.dcm", kind=CopyKind.DIFFERENT),)),
            FileSpec(instance=s1[5], truncate_to=TruncateAt.HEADER),
            FileSpec(instance=s1[6], in_catalog=False),
            FileSpec(instance=s1[7], present=False),
            FileSpec(instance=s1[8], catalog_uid="1.2.3"),
            FileSpec(instance=s1[9], gzip=True),
        ), extras=(ExtraFile(name="notes.txt"), ExtraFile(name="DICOMDIR", kind=ExtraKind.DICOMDIR))),
        ScanSpec.conforming("2", synth.series_instances(study, 2, 3)),
    ], resources=[ResourceSpec(label="SNAPSHOTS", format="PNG",
                               files=(ExtraFile(name="s.png", kind=ExtraKind.PNG),))])


def test_build_session_layout_and_plants(tmp_path: Path) -> None:
    layout = _planting_session(tmp_path)
    scan1 = layout.resource("1")
    assert scan1.path == "SCANS/1/DICOM" and scan1.catalog == "SCANS/1/DICOM/scan_1_catalog.xml"
    by_name = {f.name: f for f in scan1.files}
    plants = {name: f.plants for name, f in by_name.items()}
    s = synth.series_instances(dataclasses.replace(BASE, study_instance_uid=synth.uid("plant", "study")), 1, 10)
    assert plants[synth.xnat_name(s[0])] == frozenset()
    assert plants[synth.legacy_name(s[1])] == {Plant.LEGACY_NAME}
    assert plants["IM0001"] == {Plant.CLIENT_NAME}
    assert plants[synth.legacy_name(s[3])] == {Plant.LEGACY_NAME, Plant.DUPLICATE_IDENTICAL}
    assert plants[synth.xnat_name(s[3])] == {Plant.DUPLICATE_IDENTICAL}
    assert plants[synth.xnat_name(s[4])] == {Plant.DUPLICATE_DIFFERENT}
    assert plants["dup.dcm"] == {Plant.DUPLICATE_DIFFERENT, Plant.CLIENT_NAME}
    assert plants[synth.xnat_name(s[5])] == {Plant.TRUNCATED_HEADER}
    assert plants[synth.xnat_name(s[6])] == {Plant.NOT_IN_CATALOG}
    assert plants[synth.xnat_name(s[7])] == {Plant.CATALOG_ENTRY_MISSING_FILE}
    assert plants[synth.xnat_name(s[8])] == {Plant.CATALOG_UID_MISMATCH}
    assert plants[synth.xnat_name(s[9])] == {Plant.GZIP}
    assert plants["notes.txt"] == {Plant.NOT_DICOM}
    assert plants["DICOMDIR"] == {Plant.DICOMDIR}
    assert {f.name for f in scan1.files if f.is_bad} == {
        synth.xnat_name(s[5]), synth.xnat_name(s[9]), "notes.txt", "DICOMDIR"}
    assert all(not f.plants for f in layout.resource("2").files)
    snapshots = next(r for r in layout.resources if r.label == "SNAPSHOTS")
    assert snapshots.path == "RESOURCES/SNAPSHOTS" and snapshots.catalog == "RESOURCES/SNAPSHOTS/SNAPSHOTS_catalog.xml"
    assert not snapshots.files[0].plants

    # What the layout says is what is on disk.
    for f in layout.files:
        path = layout.root / f.path
        assert path.exists() is f.exists
        if f.exists:
            assert hashlib.md5(path.read_bytes()).hexdigest() == f.md5
            assert path.stat().st_size == f.size
    identical = [layout.root / f.path for f in scan1.files if f.sop_instance_uid == s[3].sop_instance_uid]
    assert identical[0].read_bytes() == identical[1].read_bytes()
    different = [layout.root / f.path for f in scan1.files if f.sop_instance_uid == s[4].sop_instance_uid]
    a, b = (dcmread(p) for p in different)
    assert different[0].read_bytes() != different[1].read_bytes()
    assert (a.SOPClassUID, a.SOPInstanceUID, a.InstanceNumber) == (b.SOPClassUID, b.SOPInstanceUID,
                                                                   b.InstanceNumber)


def test_build_session_catalog(tmp_path: Path) -> None:
    layout = _planting_session(tmp_path)
    scan1 = layout.resource("1")
    catalog_path = layout.root / str(scan1.catalog)
    text = catalog_path.read_text()
    real = conformance_file("xnat-scan5-duplicates/scan_5_catalog.xml").read_text()
    namespaces = re.findall(r'xmlns:\w+="[^"]+"', real.split(">", 2)[1])
    assert namespaces and all(ns in text for ns in namespaces)
    root = ET.parse(catalog_path).getroot()
    assert root.tag == f"{CAT}DCMCatalog"
    assert root.find(f"{CAT}metaFields/{CAT}metaField").text == "P1"  # type: ignore[union-attr]
    entries = _catalog_entries(catalog_path)
    in_catalog = {f.name for f in scan1.files if f.in_catalog}
    assert set(entries) == in_catalog
    for f in scan1.files:
        if not f.in_catalog:
            continue
        entry = entries[f.name]
        assert entry.get("ID") == f.name
        if f.sop_instance_uid is None:  # notes.txt, DICOMDIR: plain entries
            assert entry.get(XSI_TYPE) is None and entry.get("UID") is None
            continue
        assert entry.get(XSI_TYPE) == "cat:dcmEntry"
        assert entry.get("format") == "DICOM"
        expected_uid = "1.2.3" if Plant.CATALOG_UID_MISMATCH in f.plants else f.sop_instance_uid
        assert entry.get("UID") == expected_uid
        assert entry.get("instanceNumber") is not None
        if f.exists:
            assert entry.get("digest") == f.md5
    snapshots = ET.parse(layout.root / "RESOURCES/SNAPSHOTS/SNAPSHOTS_catalog.xml").getroot()
    assert snapshots.tag == f"{CAT}Catalog"


def test_build_session_without_catalogs(tmp_path: Path) -> None:
    layout = synth.build_session(tmp_path, "S", "P", [ScanSpec.conforming("1", synth.series_instances(BASE, 1, 2))],
                                 catalogs=False)
    assert layout.resources[0].catalog is None
    assert not list(tmp_path.rglob("*_catalog.xml"))
    assert all(not f.plants and not f.in_catalog for f in layout.files)
    with pytest.raises(ValueError, match="missing file"):
        synth.build_session(tmp_path / "x", "S", "P", [ScanSpec(scan_id="1", files=(
            FileSpec(instance=BASE, present=False),))], catalogs=False)


def test_build_session_rejects_repeated_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="repeated"):
        synth.build_session(tmp_path, "S", "P", [ScanSpec(scan_id="1", files=(
            FileSpec(instance=BASE, name="a"), FileSpec(instance=BASE, name="a")))])


def test_links(tmp_path: Path) -> None:
    layout = synth.build_session(tmp_path, "S", "P", [ScanSpec(scan_id="1", files=(
        FileSpec(instance=BASE, copies=(CopySpec(name="hard", kind=CopyKind.HARD_LINK),
                                        CopySpec(name="soft", kind=CopyKind.SYMLINK))),))])
    folder = tmp_path / "SCANS/1/DICOM"
    original = folder / synth.xnat_name(BASE)
    assert (folder / "hard").stat().st_ino == original.stat().st_ino
    assert (folder / "soft").is_symlink() and os.readlink(folder / "soft") == original.name
    plants = {f.name: f.plants for f in layout.files}
    assert plants["hard"] == {Plant.HARD_LINK, Plant.DUPLICATE_IDENTICAL, Plant.CLIENT_NAME}
    assert plants["soft"] == {Plant.SYMLINK, Plant.CLIENT_NAME}


def test_deterministic_mtimes(tmp_path: Path) -> None:
    layout = synth.build_session(tmp_path, "S", "P", [ScanSpec(scan_id="1", files=(
        FileSpec(instance=BASE), FileSpec(instance=dataclasses.replace(BASE, sop_instance_uid="1.2.3"), mtime=5),
    ))])
    mtimes = [(layout.root / f.path).stat().st_mtime for f in layout.files]
    assert mtimes == [synth.DEFAULT_MTIME, 5]
    assert tmp_path.stat().st_mtime == synth.DEFAULT_MTIME


def test_build_project(tmp_path: Path) -> None:
    project = synth.build_project(tmp_path, "PRJ", [
        SessionSpec(label="A", scans=(ScanSpec.conforming("1", synth.series_instances(BASE, 1, 2)),)),
        SessionSpec(label="B", scans=(ScanSpec.conforming("7", synth.series_instances(BASE, 7, 1)),)),
    ])
    assert project.session("B").root == tmp_path / "PRJ" / "arc001" / "B"
    assert (tmp_path / "PRJ/arc001/A/SCANS/1/DICOM/scan_1_catalog.xml").is_file()
    assert len(list((tmp_path / "PRJ/arc001/B/SCANS/7/DICOM").glob("*.dcm"))) == 1
    # Later sessions are newer, so "keep newest" is never a tie across sessions.
    a = max((project.session("A").root / f.path).stat().st_mtime for f in project.session("A").files)
    b = min((project.session("B").root / f.path).stat().st_mtime for f in project.session("B").files)
    assert a < b


def test_build_resource(tmp_path: Path) -> None:
    layout = synth.build_resource(tmp_path / "res", [FileSpec(instance=BASE, name=Naming.LEGACY)])
    assert layout.catalog == "scan_1_catalog.xml"
    assert layout.files[0].path == synth.legacy_name(BASE)
    assert (tmp_path / "res" / layout.files[0].path).is_file()
