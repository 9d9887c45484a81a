"""The synthetic data every other test relies on: real DICOM, the encodings it claims, XNAT's names."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import os
import re
import struct
import time
import xml.etree.ElementTree as ET
import zlib
from collections import defaultdict
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from container_app.core import naming
from container_app.demo import synth
from container_app.demo.archive import DEMO_PATIENT_NAME, build_demo_archive
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
    TruncateAt,
)

CONFORMANCE = next((p for p in (Path(__file__).resolve().parent / "data" / "conformance",
                                 Path(__file__).resolve().parents[2] / "shared" / "conformance")
                    if p.is_dir()), Path(__file__).resolve().parent / "data" / "conformance")
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
CAT = "{http://nrg.wustl.edu/catalog}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"

BASE = InstanceSpec(sop_instance_uid=synth.uid("test", "instance", 1), series_number="4", instance_number="2")


def _conformance(name: str) -> Path:
    path = CONFORMANCE / name
    if not path.exists():
        pytest.skip(f"conformance data not available at {path}")
    return path


def _dataset_offset(data: bytes) -> int:
    """Where the dataset starts after the preamble, prefix and the file meta group (always explicit LE)."""
    assert data[128:132] == b"DICM"
    assert data[132:138] == b"\x02\x00\x00\x00UL"
    (group_length,) = struct.unpack("<I", data[140:144])
    return 144 + int(group_length)


# --- UIDs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("parts", [(), ("a",), ("a", 1), ("x" * 500,), (0,), ("study", "series", 999999)])
def test_uid_is_valid(parts: tuple[str | int, ...]) -> None:
    value = synth.uid(*parts)
    assert len(value) <= 64
    assert UID_RE.match(value)
    assert all(c == "0" or not c.startswith("0") for c in value.split("."))
    assert value.startswith(synth.UID_ROOT)
    assert synth.uid(*parts) == value


def test_uid_distinct_and_int_str_equivalent() -> None:
    values = {synth.uid("s", i) for i in range(2000)}
    assert len(values) == 2000
    assert synth.uid("a", 1) == synth.uid("a", "1")
    assert synth.uid("a", "b") != synth.uid("ab")


# --- Encodings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", sorted(synth.TRANSFER_SYNTAXES))
def test_each_transfer_syntax_parses_and_says_what_it_is(ts: str) -> None:
    spec = dataclasses.replace(BASE, transfer_syntax=ts)
    data = synth.instance_bytes(spec)
    ds = dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == ts
    assert ds.file_meta.MediaStorageSOPInstanceUID == spec.sop_instance_uid
    assert ds.file_meta.MediaStorageSOPClassUID == spec.sop_class_uid
    assert ds.SOPClassUID == synth.MR_IMAGE_STORAGE
    assert ds.SOPInstanceUID == spec.sop_instance_uid
    assert ds.PatientName == "Doe^Jane"
    assert (ds.Rows, ds.Columns, ds.BitsAllocated) == (16, 16, 16)
    assert len(ds.PixelData) == 16 * 16 * 2
    # Pixel values are 12-bit in the file's own byte order: a missing byte swap would show as big values.
    order = "<" if ts != ExplicitVRBigEndian else ">"
    assert max(struct.unpack(f"{order}256H", ds.PixelData)) < 4096


def test_explicit_little_endian_bytes() -> None:
    data = synth.instance_bytes(BASE)
    start = _dataset_offset(data)
    assert data[start : start + 6] == b"\x08\x00\x08\x00CS"  # ImageType, explicit VR, LE tag
    assert b"\x28\x00\x10\x00US\x02\x00\x10\x00" in data  # Rows = 16, little endian


def test_implicit_vr_has_no_vr_letters() -> None:
    data = synth.instance_bytes(dataclasses.replace(BASE, transfer_syntax=ImplicitVRLittleEndian))
    start = _dataset_offset(data)
    assert data[start : start + 4] == b"\x08\x00\x08\x00"
    assert data[start + 4 : start + 6] != b"CS"
    assert struct.unpack("<I", data[start + 4 : start + 8])[0] == len("ORIGINAL\\PRIMARY\\M\\NONE ")  # padded
    assert b"\x28\x00\x10\x00\x02\x00\x00\x00\x10\x00" in data  # Rows: tag, 4-byte length, value


def test_big_endian_is_really_big_endian() -> None:
    data = synth.instance_bytes(dataclasses.replace(BASE, transfer_syntax=ExplicitVRBigEndian))
    start = _dataset_offset(data)
    assert data[start : start + 6] == b"\x00\x08\x00\x08CS"
    assert b"\x00\x28\x00\x10US\x00\x02\x00\x10" in data  # Rows = 16, big endian throughout
    assert b"\x28\x00\x10\x00US" not in data
    pixels_at = data.rindex(b"\x7f\xe0\x00\x10OW")
    raw = data[pixels_at + 12 :]
    assert len(raw) == 512
    assert max(struct.unpack(">256H", raw)) < 4096


def test_deflated_is_really_deflated() -> None:
    data = synth.instance_bytes(dataclasses.replace(BASE, transfer_syntax=DeflatedExplicitVRLittleEndian))
    start = _dataset_offset(data)
    body = data[start:]
    assert b"Doe^Jane" not in body and b"\x08\x00\x08\x00CS" not in body
    inflated = zlib.decompressobj(-zlib.MAX_WBITS).decompress(body)
    assert inflated.startswith(b"\x08\x00\x08\x00CS")
    assert b"Doe^Jane" in inflated
    plain = synth.instance_bytes(BASE)
    assert inflated == plain[_dataset_offset(plain) :]


@pytest.mark.parametrize("ts", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, ExplicitVRBigEndian])
def test_no_preamble_needs_force(ts: str) -> None:
    spec = dataclasses.replace(BASE, preamble=False, transfer_syntax=ts)
    data = synth.instance_bytes(spec)
    assert data[128:132] != b"DICM"
    assert data[:4] == (b"\x00\x08\x00\x08" if ts == ExplicitVRBigEndian else b"\x08\x00\x08\x00")
    assert ts.encode() not in data and b"DICM" not in data  # no file meta at all
    with pytest.raises(InvalidDicomError):
        dcmread(io.BytesIO(data))
    ds = dcmread(io.BytesIO(data), force=True)
    assert ds.SOPInstanceUID == spec.sop_instance_uid
    assert ds.InstanceNumber == 2
    assert "TransferSyntaxUID" not in ds.file_meta


def test_deflated_without_preamble_is_refused() -> None:
    with pytest.raises(ValueError, match="deflated"):
        synth.instance_bytes(dataclasses.replace(BASE, preamble=False,
                                                 transfer_syntax=DeflatedExplicitVRLittleEndian))


@pytest.mark.parametrize("undefined", [False, True])
def test_enhanced_multiframe(undefined: bool) -> None:
    spec = synth.enhanced_mr(BASE, 6, undefined_length=undefined)
    data = synth.instance_bytes(spec)
    ds = dcmread(io.BytesIO(data))
    assert ds.SOPClassUID == synth.ENHANCED_MR_IMAGE_STORAGE
    assert ds.NumberOfFrames == 6
    assert len(ds.PerFrameFunctionalGroupsSequence) == 6
    assert [i.FrameContentSequence[0].InStackPositionNumber for i in ds.PerFrameFunctionalGroupsSequence] == [
        1, 2, 3, 4, 5, 6]
    assert len(ds.PixelData) == 6 * 16 * 16 * 2
    assert ds["PerFrameFunctionalGroupsSequence"].is_undefined_length is undefined
    # Sequence delimiters only appear when lengths are undefined.
    assert (b"\xfe\xff\xdd\xe0" in data) is undefined
    assert (b"\xfe\xff\x0d\xe0" in data) is undefined


def test_per_frame_items_can_disagree_with_frames() -> None:
    ds = dcmread(io.BytesIO(synth.instance_bytes(synth.enhanced_mr(BASE, 4, per_frame_items=3))))
    assert ds.NumberOfFrames == 4
    assert len(ds.PerFrameFunctionalGroupsSequence) == 3


def test_extra_omit_and_meta_mismatch() -> None:
    spec = dataclasses.replace(
        BASE,
        extra={"ImageComments": "hello", "SeriesNumber": "7"},
        omit=frozenset({"SOPClassUID", "PatientBirthDate"}),
        media_storage_sop_instance_uid="1.2.3.4",
    )
    ds = dcmread(io.BytesIO(synth.instance_bytes(spec)))
    assert ds.ImageComments == "hello"
    assert ds.SeriesNumber == 7
    assert "SOPClassUID" not in ds and "PatientBirthDate" not in ds
    assert "MediaStorageSOPClassUID" not in ds.file_meta
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert ds.SOPInstanceUID == BASE.sop_instance_uid
    with pytest.raises(ValueError, match="keyword"):
        synth.instance_bytes(dataclasses.replace(BASE, extra={"NotAKeyword": 1}))


def test_optional_fields_none_omits_empty_string_writes_blank() -> None:
    ds = dcmread(io.BytesIO(synth.instance_bytes(dataclasses.replace(BASE, series_number=None,
                                                                      patient_name=""))))
    assert "SeriesNumber" not in ds
    assert "PatientName" in ds and ds.PatientName == ""


def test_instance_bytes_deterministic_and_distinct() -> None:
    assert synth.instance_bytes(BASE) == synth.instance_bytes(BASE)
    other = dataclasses.replace(BASE, sop_instance_uid=synth.uid("test", "instance", 2))
    a, b = synth.instance_bytes(BASE), synth.instance_bytes(other)
    assert dcmread(io.BytesIO(a)).PixelData != dcmread(io.BytesIO(b)).PixelData


def test_write_instance(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.dcm"
    synth.write_instance(path, BASE)
    assert path.read_bytes() == synth.instance_bytes(BASE)


# --- XNAT names -----------------------------------------------------------------------------------


def _spec(sop_class: str, sop_instance: str, study: str, series: str | None, instance: str | None) -> InstanceSpec:
    return InstanceSpec(sop_class_uid=sop_class, sop_instance_uid=sop_instance, study_instance_uid=study,
                        series_number=series, instance_number=instance)


def test_xnat_name_check_vector() -> None:
    study = "1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034"
    instance = "1.3.12.2.1107.5.2.32.35177.3.2006121409365951632817982"
    assert synth.xnat_name(_spec("1.2.840.10008.5.1.4.1.1.4", instance, study, "4", "2")) == (
        f"{study}-4-2-1qs88hj.dcm")
    assert synth.xnat_name(_spec("9.9.9.9.9.123.456.789", instance, study, "4", "1")) == f"{study}-4-1-1m0zhq7.dcm"


def test_xnat_name_conformance_vectors() -> None:
    vectors = json.loads(_conformance("xnat_naming_vectors.json").read_text())[:20]
    assert len(vectors) == 20
    for v in vectors:
        spec = _spec(v["sop_class_uid"], v["sop_instance_uid"], v["study_instance_uid"], v["series_number"],
                     v["instance_number"])
        assert synth.xnat_name(spec) == v["expected"]


def test_xnat_name_values_as_stored() -> None:
    spec = dataclasses.replace(BASE, series_number=None, instance_number="04")
    name = synth.xnat_name(spec)
    assert f"-no-value-for-SeriesNumber-04-{synth.xnat_hash([BASE.sop_class_uid, BASE.sop_instance_uid])}" in name
    assert "-4-1-" in synth.xnat_name(dataclasses.replace(BASE, instance_number="1\\2"))
    assert "-4-no-value-for-InstanceNumber-" in synth.xnat_name(dataclasses.replace(BASE, instance_number=" "))
    omitted = dataclasses.replace(BASE, omit=frozenset({"SOPClassUID"}))
    assert synth.xnat_name(omitted).endswith(
        synth.xnat_hash(["no-value-for-SOPClassUID", BASE.sop_instance_uid]) + ".dcm")
    assert "-4-9-" in synth.xnat_name(dataclasses.replace(BASE, extra={"InstanceNumber": 9}))


def test_legacy_hash_conformance() -> None:
    for v in json.loads(_conformance("xnat_legacy_names.json").read_text()):
        hash_part = v["legacy_name"].removesuffix(".dcm").rsplit(".", 1)[1]
        assert synth.legacy_hash(v["sop_class_uid"], v["sop_instance_uid"]) == hash_part


def test_legacy_name_conformance_full_names() -> None:
    for v in json.loads(_conformance("xnat_legacy_names.json").read_text()):
        patient, modality, description, series, instance, date, time_, _hash, _dcm = v["legacy_name"].split(".")
        spec = InstanceSpec(
            sop_class_uid=v["sop_class_uid"], sop_instance_uid=v["sop_instance_uid"], patient_name=patient,
            modality=modality, study_description=description.replace("_", " "), series_number=series,
            instance_number=instance, study_date=date, study_time=time_ + ".123",
        )
        assert synth.legacy_name(spec) == v["legacy_name"]


def test_legacy_name_rules_from_xnat_unit_test() -> None:
    # XNAT's SOPHashDicomFileNamerTest: StudyID stands in for a missing PatientName, fraction dropped.
    spec = InstanceSpec(sop_class_uid="1.2.3.4.5", sop_instance_uid="2.4.6.8.10", patient_name=None,
                        study_id="StudyID", modality="OT", study_description="Study Description",
                        series_number="1", instance_number="42", study_date="20101101",
                        study_time="130130.12345")
    java_hash = (naming.java_string_hash("1.2.3.4.5") + 37 * naming.java_string_hash("2.4.6.8.10")) & 0xFFFFFFFF
    assert synth.legacy_name(spec) == (
        f"StudyID.OT.Study_Description.1.42.20101101.130130.{naming.base36(java_hash)}.dcm")
    nothing = dataclasses.replace(spec, study_id=None, study_time=None, study_description=None)
    assert synth.legacy_name(nothing).startswith("NULL.OT.1.42.20101101.")


def test_legacy_name_carries_patient_name_sanitised() -> None:
    spec = dataclasses.replace(BASE, patient_name="O'Brien^Mary Ann", study_time="10:15:30.5")
    name = synth.legacy_name(spec)
    assert name.startswith("O_Brien_Mary_Ann.MR.Brain_MRI.4.2.20240102.101530.")
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)




# --- Damage ---------------------------------------------------------------------------------------


def test_truncate_and_offsets(tmp_path: Path) -> None:
    data = synth.instance_bytes(BASE)
    header_cut = synth.truncation_offset(data, TruncateAt.HEADER)
    pixel_cut = synth.truncation_offset(data, TruncateAt.PIXEL_DATA)
    assert header_cut < data.index(b"Doe^Jane") < pixel_cut < len(data)
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    synth.truncate(path, header_cut)
    assert path.read_bytes() == data[:header_cut]
    # pydicom reads what is there without complaint: SOPClassUID is simply gone.
    assert "SOPClassUID" not in dcmread(path, force=True)
    with pytest.raises(ValueError):
        synth.truncate(path, header_cut + 1)


def test_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    synth.write_instance(path, BASE)
    assert synth.gzip_file(path) == path
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(path.read_bytes()) == synth.instance_bytes(BASE)
    moved = synth.gzip_file(path, suffix=".gz")
    assert moved.name == "x.dcm.gz" and not path.exists()


def test_not_dicom_and_dicomdir(tmp_path: Path) -> None:
    synth.write_not_dicom(tmp_path / "notes.txt")
    with pytest.raises(InvalidDicomError):
        dcmread(tmp_path / "notes.txt")
    synth.write_dicomdir(tmp_path / "DICOMDIR")
    ds = dcmread(tmp_path / "DICOMDIR")
    assert ds.file_meta.MediaStorageSOPClassUID == synth.MEDIA_STORAGE_DIRECTORY_STORAGE
    assert "SOPClassUID" not in ds
    assert len(ds.DirectoryRecordSequence) == 0


def test_png_is_png() -> None:
    data = synth.png_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert b"IEND" in data[-12:]


# --- Layouts --------------------------------------------------------------------------------------


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
    real = _conformance("xnat-scan5-duplicates/scan_5_catalog.xml").read_text()
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


# --- Demo -----------------------------------------------------------------------------------------


def _header_name(path: Path) -> tuple[tuple[str, str], str] | None:
    """The (class, instance) key and expected name read from a file, or None for a bad file."""
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return None
    if "SOPClassUID" not in ds:
        return None

    def value(keyword: str) -> str:
        elem = ds.get(keyword)
        raw = "" if elem is None else str(ds[keyword].value if not ds[keyword].VM > 1 else ds[keyword].value[0])
        return raw.strip() or f"no-value-for-{keyword}"

    key = (value("SOPClassUID"), value("SOPInstanceUID"))
    name = "-".join([value("StudyInstanceUID"), value("SeriesNumber"), value("InstanceNumber"),
                     synth.xnat_hash(list(key))]) + ".dcm"
    return key, name


def test_demo_archive_matches_manifest(tmp_path: Path) -> None:
    started = time.perf_counter()
    manifest = build_demo_archive(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert manifest.session_root == tmp_path / "DEMO" / "arc001" / "DEMO_MR1"

    # Survey the DICOM resources independently of the manifest, from the files themselves.
    totals: dict[str, int] = defaultdict(int)
    uids: set[tuple[str, str]] = set()
    for scan in sorted((manifest.session_root / "SCANS").iterdir()):
        folder = scan / "DICOM"
        assert (folder / f"scan_{scan.name}_catalog.xml").is_file()
        groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for path in sorted(folder.iterdir()):
            if path.name.endswith("_catalog.xml"):
                continue
            totals["files"] += 1
            result = _header_name(path)
            if result is None:
                totals["bad"] += 1
                continue
            key, expected = result
            groups[key].append((path.name, expected))
            if DEMO_PATIENT_NAME.replace("^", "_") in path.name:
                totals["identifying"] += 1
        uids |= set(groups)
        for members in groups.values():
            if len(members) == 1:
                totals["mismatched" if members[0][0] != members[0][1] else "conforming"] += 1
            elif len({expected for _, expected in members}) == 1:
                totals["duplicate_groups"] += 1
                totals["files_in_duplicates"] += len(members)
            else:
                totals["nonactionable"] += 1

    assert totals["files"] == manifest.total_files == 30
    assert len(uids) == manifest.total_uids
    assert totals["conforming"] == manifest.conforming == 10
    assert totals["mismatched"] == manifest.mismatched == 10
    assert totals["duplicate_groups"] == manifest.duplicate_groups == 4
    assert totals["files_in_duplicates"] == manifest.files_in_duplicates == 8
    assert totals["nonactionable"] == manifest.nonactionable_duplicate_groups == 0
    assert totals["bad"] == manifest.bad_files == 2
    assert totals["identifying"] == manifest.identifying_names == 12

    # The layout's plants agree with the manifest too.
    layout = manifest.layout
    dicom_files = [f for r in layout.resources if r.format == "DICOM" for f in r.files]
    assert len(dicom_files) == manifest.total_files
    assert sum(f.is_bad for f in dicom_files) == manifest.bad_files
    assert len(layout.with_plant(Plant.LEGACY_NAME)) == manifest.identifying_names
    assert len(layout.with_plant(Plant.DUPLICATE_IDENTICAL)) == 6
    assert len(layout.with_plant(Plant.DUPLICATE_DIFFERENT)) == 2
    assert {f.name for f in layout.with_plant(Plant.CLIENT_NAME)} == {"IM0001", "IM0002"}
    assert {r.scan_id for r in layout.resources if r.scan_id} == set(manifest.resource_status)
    snapshots = manifest.session_root / "RESOURCES" / "SNAPSHOTS"
    assert (snapshots / "SNAPSHOTS_catalog.xml").is_file()
    assert len(list(snapshots.glob("*.png"))) == 4
    # Scan 2 is implicit VR, as pre-upgrade scanners often wrote.
    legacy = next(iter((manifest.session_root / "SCANS/2/DICOM").glob("Doe_Jane*.dcm")))
    assert dcmread(legacy).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert dcmread(manifest.session_root / "SCANS/1/DICOM" / layout.resource("1").files[0].name
                   ).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_demo_archive_is_deterministic(tmp_path: Path) -> None:
    def snapshot(root: Path) -> list[tuple[str, bytes, float]]:
        return [(str(p.relative_to(root)), p.read_bytes() if p.is_file() else b"", p.stat().st_mtime)
                for p in sorted(root.rglob("*"))]

    build_demo_archive(tmp_path / "a")
    build_demo_archive(tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
