"""The pydicom fallback: every file the fast path gives up on.

pydicom reads the same elements; their raw bytes go through the same decoder as the fast path's,
so both readers give XNAT's strings.

pydicom inflates a deflated dataset whole before parsing it (`zlib.decompress` of the rest of the
file, in `filereader.read_partial`), so it is never left to: it reads the file through
`_NoReadToEnd`, which stops it at that step, and the dataset is then parsed by pydicom from
`_InflatedDataset`, inflated as pydicom reads on and never past the cap (`inflate`).
"""

from __future__ import annotations

import io
import os
import struct
from typing import BinaryIO, cast

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag

from container_app.survey import anchored_reads
from container_app.survey.dicom.decode import decode_values, is_valid_uid
from container_app.survey.dicom.inflate import Inflater
from container_app.survey.dicom.read_plan import MEDIA_STORAGE_DIRECTORY, ParsedHeader, ReadPlan, TruncatedFile

_PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


def read_with_pydicom(path: str, plan: ReadPlan) -> ParsedHeader:
    """The wanted elements of one file, by pydicom; opened through `anchored_reads` (relative to the
    resource folder the survey holds: no link followed, no FIFO waited on).

    Raises TruncatedFile, HeaderTooLarge or InvalidDicomError (and pydicom's own), OSError.
    """
    tags = list(plan.tags)
    needs_force = False
    with _NoReadToEnd(io.FileIO(anchored_reads.open_path(path), "r")) as handle:
        try:
            ds, meta, little = _read(handle, tags, force=False)
        except InvalidDicomError:
            handle.seek(0)
            ds, meta, little = _read(handle, tags, force=True)
            needs_force = True
        except (EOFError, struct.error) as exc:
            raise TruncatedFile from exc
    raw: dict[int, bytes] = {}
    for tag in tags:
        if tag in ds:
            element = ds.get_item(tag)
            value = element.value if element is not None else None
            if isinstance(value, bytes):
                raw[tag] = value
            elif value is not None:
                raw[tag] = str(value).encode("utf-8")
    values = decode_values(raw, plan, little)
    if needs_force and not is_valid_uid(values.get("SOPClassUID")):
        raise InvalidDicomError("not a DICOM dataset")
    meta_uid = str(meta.get("MediaStorageSOPInstanceUID", "")) or None if meta is not None else None
    if meta is not None and meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        values.setdefault("SOPClassUID", MEDIA_STORAGE_DIRECTORY)
    return ParsedHeader(values, meta_uid, needs_force)


def _read(handle: _NoReadToEnd, tags: list[int], *, force: bool) -> tuple[Dataset, FileMetaDataset | None, bool]:
    """(dataset, file meta, little endian) as dcmread gives them, a deflated dataset read within the cap."""
    try:
        ds = pydicom.dcmread(handle, stop_before_pixels=True, specific_tags=tags, force=force)
    except _DeflatedDatasetAt as deflated:
        return _read_deflated(handle, deflated.offset, tags)
    little = getattr(ds, "original_encoding", (None, True))[1] is not False
    return ds, getattr(ds, "file_meta", None), little


def _read_deflated(handle: _NoReadToEnd, offset: int, tags: list[int]) -> tuple[Dataset, FileMetaDataset, bool]:
    """What dcmread would have read from a deflated file, whose dataset starts at `offset`."""
    fd = handle.fileno()
    head = os.pread(fd, offset, 0)
    # The meta again, as dcmread read it just now (after "DICM", or from the start when forced without it).
    meta_start = 132 if head[128:132] == b"DICM" else 0
    meta = FileMetaDataset(read_dataset(io.BytesIO(head[meta_start:]), is_implicit_VR=False, is_little_endian=True,
                                        stop_when=_past_meta))
    stream = _InflatedDataset(Inflater(fd, offset, os.fstat(fd).st_size))
    try:
        ds = read_dataset(cast(BinaryIO, stream), is_implicit_VR=False, is_little_endian=True,
                          stop_when=_at_pixel_data, specific_tags=tags)
    except (EOFError, struct.error) as exc:
        raise TruncatedFile from exc
    if stream.ran_out():
        raise TruncatedFile
    return ds, meta, True


class _DeflatedDatasetAt(Exception):
    """pydicom is about to inflate the rest of the file, from `offset` on."""

    def __init__(self, offset: int) -> None:
        super().__init__(offset)
        self.offset = offset


class _NoReadToEnd(io.BufferedReader):
    """The file as pydicom reads it, except that reading to the end stops it.

    pydicom reads a file to its end only to inflate a deflated dataset whole (pydicom 3), which
    is the uncapped inflation this module exists to avoid.
    """

    def read(self, size: int | None = -1, /) -> bytes:
        if size is None or size < 0:
            raise _DeflatedDatasetAt(self.tell())
        return super().read(size)


class _InflatedDataset:
    """The inflated dataset as a file pydicom can read: inflated as pydicom reads on, never past the cap."""

    def __init__(self, inflater: Inflater) -> None:
        self._inflater = inflater
        self._pos = 0
        self._overran = False  # a read went past the end: the file ends inside an element

    def read(self, size: int = -1) -> bytes:
        if size < 0:  # pydicom reads with sizes; reading to the end would be the uncapped inflation
            raise ValueError("the inflated dataset is read in steps only")
        end = self._pos + size
        self._inflater.extend_to(end)
        buffer = self._inflater.buffer
        data = bytes(buffer[self._pos : end])
        if len(data) < size and (data or self._pos > len(buffer)):
            self._overran = True  # cut inside an element (an empty read right at the end is the dataset's end)
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # pydicom skips unwanted values by seeking: nothing is inflated until the next read.
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            raise ValueError("the end of a deflated dataset is not known before it is inflated")
        return self._pos

    def tell(self) -> int:
        return self._pos

    def ran_out(self) -> bool:
        """Whether the read reached the end of a cut stream, or went past the end of a whole one."""
        at_end = self._inflater.finished and self._pos >= len(self._inflater.buffer)
        return self._overran or (at_end and not self._inflater.ended)


def _past_meta(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag >> 16 != 2


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_DATA_TAGS
