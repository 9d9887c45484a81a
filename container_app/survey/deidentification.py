"""Reading the copies of a differing duplicate group for their de-identification signals (issue 15).

Only copies of groups whose bytes differ come here, so a conforming archive pays nothing. Each copy
is read whole by pydicom, a deflated dataset no further than the one inflation cap (`inflate`); the
pixel data only for the sha256 of its value bytes, streamed. Values stay in this process's memory:
what leaves it is `core.deidentification.CopySignals` (codes, keywords, booleans and digests).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from types import ModuleType
from typing import BinaryIO, cast

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.sr.codedict import codes
from pydicom.tag import BaseTag

from container_app.core.deidentification import (
    LONGITUDINAL,
    YES_NO,
    CopySignals,
    ProfileTable,
    cid7050_codes,
    coded,
    method_tokens,
    profile_table,
)
from container_app.core.naming import is_legacy_name
from container_app.survey import anchored_reads
from container_app.survey.dicom import fallback
from container_app.survey.dicom.inflate import MAX_INFLATED_HEADER_BYTES, HeaderTooLarge, Inflater

#: The edition of PS3.15 table E.1-1 used, as Kitware's dicom-anonymizer names its module.
TABLE_EDITION = "2026c"
_TABLE_MODULE = f"dicomfields_{TABLE_EDITION}"
_PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_STEP = 1 << 20
_UNDEFINED = 0xFFFFFFFF
_NON_FILE = r"[^A-Za-z0-9_.-]"  # what XNAT's legacy namer replaced by "_" (demo/names.py legacy_name)


@dataclass(frozen=True, slots=True)
class XnatLabels:
    """The labels XNAT's default anonymization script writes (PatientID: session, PatientName: subject)."""

    session: str | None
    subject: str | None = None  # not in the archive layout: known inside XNAT only


def _load_table_module() -> ModuleType:
    """The table's data module alone: the package's __init__ imports its anonymizer (and tqdm), not needed."""
    package = importlib.util.find_spec("dicomanonymizer")
    if package is None or not package.submodule_search_locations:
        raise RuntimeError("the dicom-anonymizer package is not installed")
    folder = os.path.join(next(iter(package.submodule_search_locations)), "dicom_anonymization_databases")
    spec = importlib.util.spec_from_file_location(f"_e11_{TABLE_EDITION}", os.path.join(folder, f"{_TABLE_MODULE}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def table() -> ProfileTable:
    """PS3.15 E.1-1 (Basic Application Level Confidentiality Profile), from dicom-anonymizer's rows."""
    return profile_table(_load_table_module().ALL_TAGS, TABLE_EDITION)


@cache
def _cid7050() -> frozenset[str]:
    """CID 7050 De-identification Method's DCM code values, from pydicom's CID dictionary."""
    from pydicom.sr._cid_dict import cid_concepts

    return frozenset(getattr(codes.DCM, name).value for name in cid_concepts[7050]["DCM"])


def signals_chunk(task: tuple[str, Sequence[str], XnatLabels]) -> list[tuple[str, CopySignals | None]]:
    """The signals of some copies in one folder (a worker's task); None for a copy that could not be read."""
    directory, names, labels = task
    results: list[tuple[str, CopySignals | None]] = []
    for name in names:
        try:
            results.append((name, read_signals(os.path.join(directory, name), name, labels)))
        except Exception:  # a copy pydicom cannot read whole gives no signals; its group stays unjudged
            results.append((name, None))
    return results


def read_signals(path: str, name: str, labels: XnatLabels) -> CopySignals:
    """One copy's de-identification signals. Raises OSError, HeaderTooLarge or pydicom's errors."""
    with fallback._NoReadToEnd(io.FileIO(path, "r", opener=_no_follow)) as handle:
        ds: Dataset
        try:
            ds = pydicom.dcmread(handle, stop_before_pixels=True, force=True)
            pixels = _pixel_digest_from_file(handle, ds)
        except fallback._DeflatedDatasetAt as deflated:
            ds, pixels = _read_deflated(handle.fileno(), deflated.offset)
    return signals_of(ds, name, labels, pixels)


def _pixel_digest_from_file(handle: io.BufferedReader, ds: Dataset) -> str | None:
    """sha256 of the pixel data element's value bytes, streamed from where pydicom stopped before it."""
    fd = handle.fileno()
    start, size = handle.tell(), os.fstat(fd).st_size
    head = os.pread(fd, 12, start)
    _implicit, little = getattr(ds, "original_encoding", (False, True))
    value_start, length = _element_value(head, little is not False, implicit=bool(_implicit))
    if value_start is None:
        return None
    end = size if length == _UNDEFINED else min(size, start + value_start + length)
    digest = hashlib.sha256()
    offset = start + value_start
    while offset < end:
        chunk = os.pread(fd, min(_STEP, end - offset), offset)
        if not chunk:
            break
        digest.update(chunk)
        offset += len(chunk)
    return digest.hexdigest()


def _element_value(head: bytes, little: bool, *, implicit: bool) -> tuple[int | None, int]:
    """(offset of the value in the element, its length) when `head` starts a pixel data element."""
    if len(head) < 8:
        return None, 0
    order = "<" if little else ">"
    group, element = struct.unpack(f"{order}HH", head[:4])
    if (group << 16 | element) not in _PIXEL_DATA_TAGS:
        return None, 0
    if implicit:
        return 8, int(struct.unpack(f"{order}I", head[4:8])[0])
    if head[4:6] in _LONG_VRS:
        if len(head) < 12:
            return None, 0
        return 12, int(struct.unpack(f"{order}I", head[8:12])[0])
    return 8, int(struct.unpack(f"{order}H", head[6:8])[0])


def _read_deflated(fd: int, offset: int) -> tuple[Dataset, str | None]:
    """A deflated dataset inflated no further than the cap; its pixel digest only when it ends within it."""
    inflater = Inflater(fd, offset, os.fstat(fd).st_size)
    with contextlib.suppress(HeaderTooLarge):  # what fits is parsed; pixel data past the cap is not hashed
        inflater.extend_to(MAX_INFLATED_HEADER_BYTES + 1)
    buffer = bytes(inflater.buffer)
    stream = io.BytesIO(buffer)
    ds = read_dataset(cast(BinaryIO, stream), is_implicit_VR=False, is_little_endian=True, stop_when=_at_pixels)
    start = stream.tell()
    value_start, length = _element_value(buffer[start : start + 12], True, implicit=False)
    if value_start is None:
        return ds, None
    end = len(buffer) if length == _UNDEFINED else start + value_start + length
    if not inflater.ended or end > len(buffer):
        return ds, None  # the value goes on past what may be inflated
    return ds, hashlib.sha256(buffer[start + value_start : end]).hexdigest()


def signals_of(ds: Dataset, name: str, labels: XnatLabels, pixel_digest: str | None) -> CopySignals:
    """The signals of a dataset read without its pixel data. Values are compared here and dropped."""
    profile = table()
    digests: dict[str, str] = {}
    identifying: set[str] = set()
    private = False
    worth_converting: list[int] = []
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if raw is None or tag >> 16 == 2:
            continue
        facts = _tag_facts(tag)
        value = raw.value
        data = value if isinstance(value, bytes) else repr(value).encode("utf-8", "surrogateescape")
        digests[facts.keyword] = hashlib.blake2b(data, digest_size=16).hexdigest()
        private = private or facts.private
        if _worth_converting(raw, facts):
            worth_converting.append(tag)
    for looked_at in worth_converting:
        element = ds[looked_at]
        if element.VR == "SQ":
            if profile.keyword_for(element.tag) and not element.is_empty:
                identifying.add(element.keyword or profile.keyword_for(element.tag) or "")
            elif any(_identifying_in(item, profile) for item in element.value or ()):
                identifying.add(element.keyword or f"({element.tag.group:04X},{element.tag.element:04X})")
            continue
        listed = profile.keyword_for(element.tag)
        if listed and not element.is_empty:
            identifying.add(listed)
    methods = ds.get("DeidentificationMethod")
    texts = [] if methods is None else [str(v) for v in (methods if isinstance(methods, Sequence)
                                                         and not isinstance(methods, str) else [methods])]
    code_items = [(item.get("CodingSchemeDesignator"), item.get("CodeValue"))
                  for item in ds.get("DeidentificationMethodCodeSequence") or ()]
    return CopySignals(
        patient_identity_removed=coded(_text(ds, "PatientIdentityRemoved"), YES_NO),
        methods=method_tokens(texts),
        method_codes=cid7050_codes(code_items, _cid7050()),
        longitudinal_temporal_information_modified=coded(_text(ds, "LongitudinalTemporalInformationModified"),
                                                         LONGITUDINAL),
        private_tags=private,
        identifying_attributes=tuple(sorted(identifying)),
        matches_xnat_labels=_matches_labels(ds, labels),
        patient_name_in_legacy_name=_in_legacy_name(ds, name),
        value_digests=digests,
        pixel_data_sha256=pixel_digest,
    )


@dataclass(frozen=True, slots=True)
class _TagFacts:
    """What `signals_of` asks of a tag, the same in every file: looked up once per tag (`_tag_facts`)."""

    keyword: str  # the digest's key: pydicom's keyword, else `(gggg,eeee)`
    private: bool
    dictionary_vr: str | None  # None for a private or unknown tag
    listed: bool  # in table E.1-1


@lru_cache(maxsize=1 << 16)
def _tag_facts(tag: int) -> _TagFacts:
    # Asked for each element of every copy read: pydicom's dictionary lookups and the table's masked rows
    # cost more than the digest itself.
    try:
        dictionary_vr: str | None = str(pydicom.datadict.dictionary_VR(tag))
    except KeyError:
        dictionary_vr = None
    keyword = pydicom.datadict.keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return _TagFacts(keyword, BaseTag(tag).is_private, dictionary_vr, bool(table().keyword_for(tag)))


def _worth_converting(raw: object, facts: _TagFacts) -> bool:
    """Whether the identifying-attribute check must look at a top-level element's value: one of table E.1-1,
    or a sequence (or what may be one). Converting every element of a header costs ~10 ms per copy on
    headers with private blocks (issue 17's legacy benchmark); the others are left raw, never converted."""
    if not isinstance(raw, RawDataElement):
        return True  # already converted (a deflated dataset, an edited one): cheap to look at
    vr = raw.VR if raw.VR not in (None, "UN") else facts.dictionary_vr  # pydicom may read UN as known
    return facts.listed or vr in ("SQ", None) or raw.length == _UNDEFINED


def _identifying_in(item: Dataset, profile: ProfileTable) -> bool:
    return any(profile.keyword_for(e.tag) and not e.is_empty for e in item)


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    return None if value is None else str(value)


def _matches_labels(ds: Dataset, labels: XnatLabels) -> bool | None:
    """Whether the copy carries XNAT's labels as its default DicomEdit script writes them."""
    if not labels.session:
        return None
    if (_text(ds, "PatientID") or "").strip() != labels.session:
        return False
    return labels.subject is None or (_text(ds, "PatientName") or "").strip() == labels.subject


def _in_legacy_name(ds: Dataset, name: str) -> bool:
    """Whether PatientName is the first part of the copy's legacy (pre-1.8.7) file name, as that namer wrote it."""
    base = name.rsplit("/", 1)[-1]
    patient = (_text(ds, "PatientName") or "").strip()
    if not patient or not is_legacy_name(base, _text(ds, "SOPClassUID"), _text(ds, "SOPInstanceUID")):
        return False
    return base.startswith(re.sub(_NON_FILE, "_", patient) + ".")


def _no_follow(path: str, flags: int) -> int:
    # Read-only whatever `flags` say; through the survey's anchored reads, so no folder swapped for a
    # link (nor the file itself) is followed and a FIFO is refused, never waited on.
    return anchored_reads.open_path(path)


def _at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_DATA_TAGS
