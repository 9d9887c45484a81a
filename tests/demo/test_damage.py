"""Damaged and foreign files: truncation, gzip, non-DICOM files, DICOMDIRs and PNGs."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from container_app.demo import synth
from container_app.demo.synth import TruncateAt
from tests.helpers.demo import BASE


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
