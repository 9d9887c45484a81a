"""The pydicom fallback: every file the fast path gives up on.

pydicom reads the same elements; their raw bytes go through the same decoder as the fast path's,
so both readers give XNAT's strings.
"""

from __future__ import annotations

import struct

import pydicom
from pydicom.errors import InvalidDicomError

from container_app.survey.dicom.decode import decode_values, is_valid_uid
from container_app.survey.dicom.read_plan import MEDIA_STORAGE_DIRECTORY, ParsedHeader, ReadPlan, TruncatedFile


def read_with_pydicom(path: str, plan: ReadPlan) -> ParsedHeader:
    """The wanted elements of one file, by pydicom. Raises TruncatedFile or InvalidDicomError (and pydicom's own)."""
    tags = list(plan.tags)
    needs_force = False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
    except InvalidDicomError:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags, force=True)
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
    little = getattr(ds, "original_encoding", (None, True))[1] is not False
    values = decode_values(raw, plan, little)
    if needs_force and not is_valid_uid(values.get("SOPClassUID")):
        raise InvalidDicomError("not a DICOM dataset")
    meta = getattr(ds, "file_meta", None)
    meta_uid = str(meta.get("MediaStorageSOPInstanceUID", "")) or None if meta is not None else None
    if meta is not None and meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        values.setdefault("SOPClassUID", MEDIA_STORAGE_DIRECTORY)
    return ParsedHeader(values, meta_uid, needs_force)
