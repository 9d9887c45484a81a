"""Damaged and foreign files: cut, compressed, DICOMDIRs, not DICOM, UIDs missing or at odds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from container_app.core.vocabulary import Reason
from container_app.demo import synth
from container_app.demo.synth import TruncateAt
from container_app.survey.dicom.reader import check_content
from tests.helpers.dicom import BASE, PLAN, expected_values, parsed, record_for, write

# --- damaged and foreign files ---------------------------------------------------------------------


def test_truncated_in_header_is_a_bad_file(tmp_path: Path) -> None:
    data = synth.instance_bytes(BASE)
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: synth.truncation_offset(data, TruncateAt.HEADER)])
    record = record_for(path)
    assert record.reasons == (Reason.TRUNCATED,)
    assert record.is_bad
    assert record.header is None


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_truncated_in_pixel_data_is_read_but_not_intact(tmp_path: Path, syntax: str) -> None:
    spec = dataclasses.replace(BASE, transfer_syntax=syntax)
    data = synth.instance_bytes(spec)
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: synth.truncation_offset(data, TruncateAt.PIXEL_DATA,
                                                    little_endian=syntax != ExplicitVRBigEndian)])
    record = record_for(path)
    assert not record.is_bad
    assert record.header is not None and record.header.values == expected_values(spec)
    check = check_content(str(path))
    assert not check.intact
    assert check.detail and "pixel" in check.detail
    whole = tmp_path / "whole.dcm"
    whole.write_bytes(data)
    assert check_content(str(whole)).intact
    assert check_content(str(whole)).sha256 != check.sha256


def test_any_cut_never_raises(tmp_path: Path) -> None:
    """Cut a file at every length through its header: a verdict each time, never an exception."""
    data = synth.instance_bytes(BASE)
    stop = data.index(b"\xe0\x7f\x10\x00") + 16
    verdicts = set()
    for length in range(0, stop, 3):
        path = tmp_path / f"cut{length}"
        path.write_bytes(data[:length])
        record = record_for(path)
        verdicts.add(record.reasons[:1])
        check = check_content(str(path))
        assert check.sha256
        path.unlink()
    assert (Reason.TRUNCATED,) in verdicts
    assert (Reason.NOT_DICOM,) in verdicts


@pytest.mark.parametrize("syntax", [DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_cut_file_is_never_taken_for_a_whole_one(tmp_path: Path, syntax: str) -> None:
    """Cut anywhere after the meta: the header read fails, or the content check does.

    The one exception is inherent to DICOM: an uncompressed file cut exactly between two elements
    reads as a shorter dataset (missing values, or missing pixel data). A deflated file has no
    such exception: its stream lacks its end marker.
    """
    spec = dataclasses.replace(BASE, transfer_syntax=syntax, rows=32, cols=32)
    data = synth.instance_bytes(spec)
    deflated = syntax == DeflatedExplicitVRLittleEndian
    pixel_data = 0 if deflated else data.rindex(b"\xe0\x7f\x10\x00")
    expected = expected_values(spec)
    path = tmp_path / "cut.dcm"
    whole_header = at_a_boundary = 0
    for length in range(200, len(data) - 1, 5):
        path.write_bytes(data[:length])
        record = record_for(path)
        if record.is_bad:
            continue
        assert record.header is not None
        if record.header.values == expected:
            whole_header += 1
            if deflated or length > pixel_data:  # cut inside the pixel data element
                assert not check_content(str(path)).intact, length
        else:
            at_a_boundary += 1
            assert record.header.values.items() < expected.items(), length
    assert whole_header > 100
    if syntax == DeflatedExplicitVRLittleEndian:
        assert at_a_boundary == 0
    path.write_bytes(data)
    assert check_content(str(path)).intact


def test_gzip_compressed_dicom(tmp_path: Path) -> None:
    path = tmp_path / "f.dcm.gz"
    path.write_bytes(synth.gzip_bytes(synth.instance_bytes(BASE)))
    record = record_for(path)
    assert record.reasons == (Reason.GZIP_COMPRESSED,)
    assert record.is_bad


def test_dicomdir(tmp_path: Path) -> None:
    synth.write_dicomdir(tmp_path / "DICOMDIR")
    record = record_for(tmp_path / "DICOMDIR")
    assert record.reasons == (Reason.DICOMDIR,)
    assert record.is_bad


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", synth.NOT_DICOM_TEXT),
        ("empty", b""),
        ("snapshot.png", synth.png_bytes()),
        ("zeros", b"\0" * 4096),
        ("short", b"\x08\x00"),
        ("dicm-only", b"\0" * 128 + b"DICM"),
    ],
)
def test_not_dicom(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    record = record_for(path)
    assert record.is_bad
    assert record.reasons[0] in (Reason.NOT_DICOM, Reason.TRUNCATED, Reason.MISSING_SOP_CLASS_UID)
    if name in ("notes.txt", "empty", "snapshot.png"):
        assert record.reasons == (Reason.NOT_DICOM,)


def test_missing_sop_class_uid_is_bad(tmp_path: Path) -> None:
    path = write(tmp_path, "f.dcm", dataclasses.replace(BASE, omit=frozenset({"SOPClassUID"})))
    record = record_for(path)
    assert Reason.MISSING_SOP_CLASS_UID in record.reasons
    assert record.is_bad


def test_missing_sop_instance_uid_is_bad(tmp_path: Path) -> None:
    path = write(tmp_path, "f.dcm", dataclasses.replace(BASE, omit=frozenset({"SOPInstanceUID"})))
    record = record_for(path)
    assert Reason.MISSING_SOP_INSTANCE_UID in record.reasons
    assert record.is_bad


def test_media_storage_uid_mismatch_is_reported_not_bad(tmp_path: Path) -> None:
    spec = dataclasses.replace(BASE, media_storage_sop_instance_uid=synth.uid("headers", "other"))
    path = write(tmp_path, "f.dcm", spec)
    record = record_for(path)
    assert record.reasons == (Reason.MEDIA_STORAGE_UID_MISMATCH,)
    assert not record.is_bad
    assert parsed(path, PLAN, fast=True) == parsed(path, PLAN, fast=False)
