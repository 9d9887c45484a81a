"""Damaged and foreign files: truncated and gzip-compressed instances, non-DICOM files, DICOMDIRs, PNGs.

Only `truncate`, `gzip_file` and the `write_*` functions touch the file system.
"""

from __future__ import annotations

import enum
import gzip
import io
import os
import struct
import zlib
from pathlib import Path

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from container_app.demo.instances import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    MEDIA_STORAGE_DIRECTORY_STORAGE,
    uid,
    write_bytes,
)


class TruncateAt(enum.StrEnum):
    """Where to cut a file when the exact byte count does not matter."""

    HEADER = "HEADER"  # inside the SOPClassUID tag: the header cannot be read, a bad file
    PIXEL_DATA = "PIXEL_DATA"  # half-way through the pixel data: the header up to it is intact


def truncation_offset(data: bytes, at: TruncateAt, *, little_endian: bool = True) -> int:
    """How many bytes of `data` (an uncompressed instance) to keep to cut it at `at`."""
    if at is TruncateAt.HEADER:
        tag = b"\x08\x00\x16\x00" if little_endian else b"\x00\x08\x00\x16"
        return data.index(tag) + 3
    tag = b"\xe0\x7f\x10\x00" if little_endian else b"\x7f\xe0\x00\x10"
    start = data.rindex(tag)
    return start + (len(data) - start) // 2


def truncate(path: Path, keep_bytes: int) -> None:
    """Cut the file at `path` to its first `keep_bytes` bytes."""
    size = path.stat().st_size
    if not 0 <= keep_bytes < size:
        raise ValueError(f"cannot truncate {size} bytes to {keep_bytes}")
    os.truncate(path, keep_bytes)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # mtime=0 keeps the bytes deterministic


def gzip_file(path: Path, *, suffix: str = "") -> Path:
    """Replace `path` by its gzip-compressed content, at `path` + `suffix`; returns the new path."""
    target = path.with_name(path.name + suffix)
    data = gzip_bytes(path.read_bytes())
    target.write_bytes(data)
    if target != path:
        path.unlink()
    return target


NOT_DICOM_TEXT = b"Scanner operator notes: repeat of series 4 requested.\n"


def write_not_dicom(path: Path, content: bytes = NOT_DICOM_TEXT) -> None:
    """A plain file that no DICOM reader accepts, even with force."""
    write_bytes(path, content)


def dicomdir_bytes(file_set_id: str = "SYNTH") -> bytes:
    """A minimal, valid DICOMDIR of an empty file-set: a real Media Storage Directory object."""
    ds = Dataset()
    ds.FileSetID = file_set_id
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = DicomSequence()
    meta = FileMetaDataset()
    meta.FileMetaInformationGroupLength = 0
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(MEDIA_STORAGE_DIRECTORY_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(uid("synth", "dicomdir", file_set_id))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    buffer = io.BytesIO()
    dcmwrite(buffer, FileDataset("", ds, preamble=b"\x00" * 128, file_meta=meta),
             implicit_vr=False, little_endian=True, enforce_file_format=False)
    return buffer.getvalue()


def write_dicomdir(path: Path, file_set_id: str = "SYNTH") -> None:
    write_bytes(path, dicomdir_bytes(file_set_id))


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    """A small valid greyscale PNG, for snapshot resources."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(x * 255 // max(width - 1, 1) for x in range(width))  # filter byte, then a ramp
    rows = row * height
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))
