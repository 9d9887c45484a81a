"""Synthetic instances: valid deterministic UIDs, and real DICOM in the encodings they claim."""

from __future__ import annotations

import dataclasses
import io
import re
import struct
import zlib
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

from container_app.demo import synth
from tests.helpers.demo import BASE

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


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
