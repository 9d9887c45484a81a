"""Reading DICOM headers: the only module that parses DICOM.

The fast path reads just the bytes up to the last tag the survey needs, straight from the file,
and understands the encodings found in archives (explicit and implicit VR little endian, explicit
big endian, deflated, files without preamble). Anything it does not recognise goes to pydicom,
which reads the same elements; both hand back the raw bytes of each element so one decoder turns
them into the strings XNAT's DICOM library would return.
"""

from __future__ import annotations

import enum
import hashlib
import os
import re
import stat
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import ModuleType
from typing import Protocol

import pydicom
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.errors import InvalidDicomError

from container_app.core.naming import first_value
from container_app.core.records import ContentCheck, FileRecord, HeaderValues
from container_app.core.vocabulary import ALWAYS_KEYWORDS, Reason

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"

#: Binary VRs whose first value XNAT's DICOM library returns as a number in decimal (e.g. Rows "512").
_BINARY_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}
#: VRs whose values may hold characters outside ASCII, decoded with the SpecificCharacterSet.
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})

_SPECIFIC_CHARACTER_SET = 0x00080005
_MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
_MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
_TRANSFER_SYNTAX_UID = 0x00020010
_NOTHING: Mapping[int, str] = {}
_PIXEL_DATA_TAGS: Mapping[int, str] = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData",
                                       0x7FE00009: "DoubleFloatPixelData"}
_META_TAGS = {_MEDIA_STORAGE_SOP_CLASS_UID: "", _MEDIA_STORAGE_SOP_INSTANCE_UID: "", _TRANSFER_SYNTAX_UID: ""}
_PIXEL_DATA = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"})
_VALID_VR = re.compile(rb"[A-Z]{2}")
_VALID_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_FIRST_READ = 8192
_MAX_DEPTH = 32
_GZIP_MAGIC = b"\x1f\x8b"


class _Unsupported(Exception):
    """The fast path cannot read this file; pydicom gets it."""


class _Truncated(Exception):
    """The file ends inside an element."""


class Decoding(enum.Enum):
    """How an element's raw bytes become the string XNAT would use."""

    ASCII = "ascii"  # UIDs, codes, numbers as text, dates: ASCII in every character set
    TEXT = "text"  # PN, LO, SH, ST, LT, UT, UC: may need the SpecificCharacterSet
    BINARY = "binary"  # US, SL, FD...: the first number, in decimal


@dataclass(frozen=True, slots=True)
class ElementDecoder:
    keyword: str
    decoding: Decoding
    vr: str
    binary_format: str = ""  # struct format of one value, for Decoding.BINARY


@dataclass(frozen=True, slots=True)
class ReadPlan:
    """Which elements to read: built once per run from the template, shared by every worker."""

    tags: Mapping[int, str]  # tag -> keyword
    stop_after: int  # the highest tag needed; parsing stops past it
    decoders: Mapping[int, ElementDecoder] = field(default_factory=dict)  # tag -> how to decode it
    # The same, split for the first pass of decode_values: tag -> keyword
    ascii_keywords: dict[int, str] = field(default_factory=dict)  # always read as ASCII
    text_keywords: dict[int, str] = field(default_factory=dict)  # read as ASCII when they are plain ASCII

    @classmethod
    def for_keywords(cls, keywords: Iterable[str]) -> ReadPlan:
        tags: dict[int, str] = {}
        for keyword in (*ALWAYS_KEYWORDS, *keywords):
            tag = tag_for_keyword(keyword)
            if tag is None:  # the template parser already refused unknown keywords
                raise ValueError(keyword)
            tags[tag] = keyword
        decoders = {tag: _decoder(tag, keyword) for tag, keyword in tags.items()}
        tags[_SPECIFIC_CHARACTER_SET] = "SpecificCharacterSet"  # read, but only to decode the others
        return cls(tags=tags, stop_after=max(tags), decoders=decoders,
                   ascii_keywords={t: d.keyword for t, d in decoders.items() if d.decoding is Decoding.ASCII},
                   text_keywords={t: d.keyword for t, d in decoders.items() if d.decoding is Decoding.TEXT})


def _decoder(tag: int, keyword: str) -> ElementDecoder:
    vr = dictionary_VR(tag).split(" or ")[0]  # "US or SS": the first, as XNAT's dictionary does
    if vr in _BINARY_NUMBERS:
        return ElementDecoder(keyword, Decoding.BINARY, vr, _BINARY_NUMBERS[vr])
    return ElementDecoder(keyword, Decoding.TEXT if vr in _TEXT_VRS else Decoding.ASCII, vr)


class _Window:
    """Random access to a file (or a decompressed stream) without reading what is skipped."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.base = 0
        self.data = os.pread(fd, min(_FIRST_READ, size), 0)
        self._inflate: zlib._Decompress | None = None
        self._inflated_from = 0
        self.complete = True  # False when a deflate stream ends before its end marker: the file was cut

    def inflate_from(self, offset: int) -> None:
        """Everything from `offset` on is a raw deflate stream; offsets beyond it address the inflated bytes."""
        head = self.get(0, offset)
        self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        compressed = os.pread(self.fd, self.size - offset, offset)
        try:
            self.data = head + self._inflate.decompress(compressed, 0)
        except zlib.error as exc:
            raise _Unsupported(f"deflate stream: {exc}") from exc
        self.base, self._inflated_from, self.size = 0, offset, len(self.data)
        self.complete = self._inflate.eof

    def get(self, start: int, end: int) -> bytes:
        if end > self.size:
            raise _Truncated
        if start < self.base or end > self.base + len(self.data):
            if self._inflate is not None:
                raise _Truncated
            length = max(end - start, _FIRST_READ)
            self.data, self.base = os.pread(self.fd, min(length, self.size - start), start), start
        return self.data[start - self.base : end - self.base]


_EXPLICIT_LE_HEADER = struct.Struct("<HH2sH").unpack_from
_IMPLICIT_LE_HEADER = struct.Struct("<HHI").unpack_from
_U32_LE = struct.Struct("<I").unpack_from
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
                        b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})


def _fast_explicit_le(data: bytes, base: int, pos: int, stop: int, wanted: Mapping[int, str],
                      values: dict[int, bytes]) -> tuple[int, bool]:
    """The hot loop: elements lying wholly in the buffer, in explicit VR little endian.

    Returns where it stopped and whether the last wanted tag is passed. Anything unusual (an
    undefined length, an unknown VR, the buffer's end) is left to the general parser.
    """
    limit = base + len(data) - 12
    while base <= pos <= limit:
        offset = pos - base
        group, element, vr, length = _EXPLICIT_LE_HEADER(data, offset)
        tag = (group << 16) | element
        if tag > stop:
            return pos, True
        if vr in _SHORT_VRS:
            start = pos + 8
        elif vr in _LONG_VRS:
            length = _U32_LE(data, offset + 8)[0]
            if length == _UNDEFINED:
                return pos, False
            start = pos + 12
        else:
            return pos, False
        if tag in wanted:
            if start + length > base + len(data):
                return pos, False
            values[tag] = data[start - base : start - base + length]
        pos = start + length
    return pos, False


def _fast_implicit_le(data: bytes, base: int, pos: int, stop: int, wanted: Mapping[int, str],
                      values: dict[int, bytes]) -> tuple[int, bool]:
    """The hot loop for implicit VR little endian; same contract as `_fast_explicit_le`."""
    limit = base + len(data) - 8
    while base <= pos <= limit:
        group, element, length = _IMPLICIT_LE_HEADER(data, pos - base)
        tag = (group << 16) | element
        if tag > stop:
            return pos, True
        if length == _UNDEFINED or group == 0xFFFE:
            return pos, False
        start = pos + 8
        if tag in wanted:
            if start + length > base + len(data):
                return pos, False
            values[tag] = data[start - base : start - base + length]
        pos = start + length
    return pos, False


def _walk_python(data: bytes, base: int, pos: int, stop: int, wanted: Mapping[int, str],
                 values: dict[int, bytes], implicit: bool, skip_sequences: bool = True, /) -> tuple[int, bool]:
    """The Python loops never step over sequences: `skip_sequences` only matters to the C walker."""
    return (_fast_implicit_le if implicit else _fast_explicit_le)(data, base, pos, stop, wanted, values)


class _Walker(Protocol):
    def __call__(self, data: bytes, base: int, pos: int, stop: int, wanted: Mapping[int, str],
                 values: dict[int, bytes], implicit: bool, skip_sequences: bool = True, /) -> tuple[int, bool]: ...


class _AsciiFirstValues(Protocol):
    def __call__(self, raw: dict[int, bytes], ascii_keywords: Mapping[int, str], text_keywords: Mapping[int, str],
                 values: dict[str, str], /) -> list[int]: ...


def _native_module() -> ModuleType | None:
    """The C module (`_walk.c`) when it was built and not turned off, else None: the Python code then.

    The C walker also steps over undefined-length sequences that lie wholly in the buffer, so it may
    stop later than the Python loops; where either stops, `_Parser` carries on by the same rules, so
    the values read are the same (tests compare the two on every test file and on fuzzed ones).
    """
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:
        from container_app.survey.dicom import _walk as native
    except ImportError:
        return None
    return native


#: Set to 1 to run the pure-Python code even where the C module is built (comparisons, benchmarks).
PURE_PYTHON_ENV = "XNAT_RESOURCE_SURVEY_PURE_PYTHON"
_NATIVE = _native_module()
ACCELERATED = _NATIVE is not None
_walk: _Walker = _NATIVE.walk if _NATIVE is not None else _walk_python


class _Parser:
    """Walks the elements of a dataset, keeping the raw values of the wanted tags."""

    def __init__(self, window: _Window, little: bool, implicit: bool) -> None:
        self.w, self.little, self.implicit = window, little, implicit
        self.u16 = struct.Struct("<HH" if little else ">HH")
        self.u32 = struct.Struct("<I" if little else ">I")
        self.tag_len = struct.Struct("<HHI" if little else ">HHI")

    def header(self, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int]:
        """(tag, VR or None when implicit, value length, position of the value)."""
        if implicit:
            group, element, length = self.tag_len.unpack(self.w.get(pos, pos + 8))
            return (group << 16) | element, None, length, pos + 8
        raw = self.w.get(pos, pos + 8)
        group, element = self.u16.unpack_from(raw)
        tag = (group << 16) | element
        if group == 0xFFFE:
            return tag, None, self.u32.unpack_from(raw, 4)[0], pos + 8
        vr = raw[4:6]
        if not _VALID_VR.fullmatch(vr):
            raise _Unsupported(f"invalid VR at offset {pos}")
        if vr in _LONG_VRS:
            return tag, vr, self.u32.unpack(self.w.get(pos + 8, pos + 12))[0], pos + 12
        return tag, vr, struct.unpack_from("<H" if self.little else ">H", raw, 6)[0], pos + 8

    def read(self, pos: int, plan: ReadPlan) -> dict[int, bytes]:
        values: dict[int, bytes] = {}
        size, wanted, stop, implicit = self.w.size, plan.tags, plan.stop_after, self.implicit
        while pos < size:
            if self.little:
                pos, finished = _walk(self.w.data, self.w.base, pos, stop, wanted, values, implicit)
                if finished or pos >= size:
                    break
            # One element the fast loops leave to us: near the buffer's end, undefined length, odd VR.
            tag, vr, length, pos = self.header(pos, self.implicit)
            if tag > stop:
                break
            if length == _UNDEFINED:
                if tag in wanted:
                    raise _Unsupported("a wanted element has undefined length")
                pos = self.skip_sequence(pos, self.implicit or vr == b"UN", 0)
                continue
            if tag in wanted:
                values[tag] = self.w.get(pos, pos + length)
            pos += length
        if pos > size or (pos >= size and not self.w.complete):  # ran out of a cut deflate stream
            raise _Truncated
        return values

    def skip_sequence(self, pos: int, implicit: bool, depth: int) -> int:
        if depth > _MAX_DEPTH:
            raise _Unsupported("sequences nested too deep")
        while True:
            group, element, length = self.tag_len.unpack(self.w.get(pos, pos + 8))
            tag, pos = (group << 16) | element, pos + 8
            if tag == _SEQUENCE_END:
                return pos
            if tag != _ITEM:
                raise _Unsupported(f"expected an item at offset {pos - 8}")
            if length != _UNDEFINED:
                pos += length
                continue
            while True:
                if self.little:  # the item's plain elements, up to its end or a nested sequence
                    pos, _ended = _walk(self.w.data, self.w.base, pos, _ITEM_END - 1, _NOTHING, {}, implicit)
                tag, vr, length, pos = self.header(pos, implicit)
                if tag == _ITEM_END:
                    break
                if length == _UNDEFINED:
                    pos = self.skip_sequence(pos, implicit or vr == b"UN", depth + 1)
                else:
                    pos += length

    def last_element_end(self, pos: int) -> tuple[int, int]:
        """Walk every top-level element: (end of the last one as declared, its tag)."""
        last_tag = 0
        pixels: dict[int, bytes] = {}
        while pos < self.w.size:
            if self.little:  # plain elements in bulk; pixel data small enough to sit in the buffer is noted
                pos, _passed = _walk(self.w.data, self.w.base, pos, 0xFFFFFFFF, _PIXEL_DATA_TAGS, pixels,
                                     self.implicit)
                last_tag = max(pixels, default=last_tag)
                if pos >= self.w.size:
                    break
            tag, vr, length, pos = self.header(pos, self.implicit)
            last_tag = tag
            if length == _UNDEFINED:
                if tag in _PIXEL_DATA:  # encapsulated: fragments are items
                    pos = self.skip_sequence(pos, True, 0)
                else:
                    pos = self.skip_sequence(pos, self.implicit or vr == b"UN", 0)
            else:
                pos += length
        return pos, last_tag


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where the dataset starts and how it is encoded."""

    dataset_start: int
    little: bool
    implicit: bool
    deflated: bool
    has_preamble: bool
    meta: Mapping[int, bytes]


def _layout(window: _Window) -> _Layout:
    head = window.data
    if len(head) >= 132 and head[128:132] == b"DICM":
        return _with_meta(window, 132, has_preamble=True)
    if len(head) >= 8 and head[0:2] == b"\x02\x00" and _VALID_VR.fullmatch(head[4:6]):
        return _with_meta(window, 0, has_preamble=False)
    if len(head) < 8:
        raise _Unsupported("too short to be DICOM")
    # A bare dataset: XNAT (and pydicom's force) guess the encoding from its first element.
    implicit = not _VALID_VR.fullmatch(head[4:6])
    return _Layout(0, little=True, implicit=implicit, deflated=False, has_preamble=False, meta={})


def _with_meta(window: _Window, pos: int, has_preamble: bool) -> _Layout:
    """Read the file meta group (always explicit VR little endian)."""
    parser = _Parser(window, little=True, implicit=False)
    meta: dict[int, bytes] = {}
    # The fast loop stops at the first tag past group 0002 without interpreting it.
    # No sequence skipping: one of undefined length in the meta sends the file to pydicom, below.
    pos, _finished = _walk(window.data, window.base, pos, 0x0002FFFF, _META_TAGS, meta, False, False)
    while pos < window.size:
        # Look at the group first: the dataset after the meta may be implicit VR, big endian or deflated,
        # so its first element must not be parsed as explicit VR little endian.
        if window.get(pos, pos + 2) != b"\x02\x00":
            break
        tag, _vr, length, value_pos = parser.header(pos, implicit=False)
        if length == _UNDEFINED:
            raise _Unsupported("undefined length in file meta")
        meta[tag] = window.get(value_pos, value_pos + length)
        pos = value_pos + length
    syntax = _uid(meta.get(_TRANSFER_SYNTAX_UID, b"")) or ""
    if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        window.inflate_from(pos)
        return _Layout(pos, True, False, True, has_preamble, meta)
    if syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        return _Layout(pos, True, True, False, has_preamble, meta)
    if syntax == EXPLICIT_VR_BIG_ENDIAN:
        return _Layout(pos, False, False, False, has_preamble, meta)
    if not syntax:
        raise _Unsupported("no transfer syntax in file meta")
    # Every other transfer syntax encodes the dataset as explicit VR little endian.
    return _Layout(pos, True, False, False, has_preamble, meta)


def _uid(raw: bytes) -> str | None:
    return first_value(raw.decode("ascii", "replace"))


def _is_valid_uid(value: str | None) -> bool:
    return value is not None and len(value) <= 64 and _VALID_UID.fullmatch(value) is not None


# --- decoding: shared by the fast path and the pydicom fallback -----------------------------------


def _binary_first_value(data: bytes, fmt: str, little: bool) -> str | None:
    size = struct.calcsize(fmt)
    if len(data) < size:
        return None
    number = struct.unpack(("<" if little else ">") + fmt, data[:size])[0]
    if isinstance(number, float):
        return repr(_shortest_float32(number) if fmt == "f" else number)
    return str(number)


def _shortest_float32(number: float) -> float:
    """The shortest decimal that reads back as the same 32-bit float (as Java's Float.toString writes it)."""
    for digits in range(1, 10):
        candidate = float(f"{number:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == number:
            return candidate
    return number  # NaN and infinities


@lru_cache(maxsize=64)
def _encodings(charset: bytes) -> list[str]:
    """Python codecs for a SpecificCharacterSet value; archives hold only a handful of distinct ones."""
    terms = [t.strip() for t in charset.decode("ascii", "replace").split("\\")] if charset else []
    return list(convert_encodings(terms or ["ISO_IR 6"]))


def decode_values(raw: Mapping[int, bytes], plan: ReadPlan, little: bool = True) -> dict[str, str]:
    """Raw element bytes to the strings XNAT would use: first value, as stored, padding removed.

    `little` is the dataset's byte order, for the binary numbers (US, SL, FD...) that a template may read.
    """
    values: dict[str, str] = {}
    # Plain ASCII reads the same in every character set DICOM allows: most elements are done here.
    left = _ascii_first_values(raw if isinstance(raw, dict) else dict(raw), plan.ascii_keywords, plan.text_keywords,
                               values)
    decoders = plan.decoders
    for tag in left:
        decoder = decoders.get(tag)
        if decoder is None:
            continue
        data = raw[tag]
        if decoder.decoding is Decoding.BINARY:
            number = _binary_first_value(data, decoder.binary_format, little)
            if number is not None:
                values[decoder.keyword] = number
        else:  # text beyond ASCII (or with ISO 2022 escape sequences) needs pydicom's decoder
            encodings = _encodings(raw.get(_SPECIFIC_CHARACTER_SET, b""))
            text = decode_bytes(data, encodings, {0x5C, 0x3D, 0x5E} if decoder.vr == "PN" else {0x5C})
            value = first_value(text)
            if value is not None:
                values[decoder.keyword] = value
    return values


def _ascii_first_values_python(raw: dict[int, bytes], ascii_keywords: Mapping[int, str],
                               text_keywords: Mapping[int, str], values: dict[str, str], /) -> list[int]:
    """The first pass of decode_values (the C module's `ascii_first_values`, in Python).

    Elements always read as ASCII, and text elements that are plain ASCII, get their first value in
    `values`; the tags of the others are returned. Delimiter, padding and "replace" all act byte for
    byte, so the first value is cut out before decoding.
    """
    left: list[int] = []
    for tag, data in raw.items():
        keyword = ascii_keywords.get(tag)
        if keyword is None:
            keyword = text_keywords.get(tag)
            if keyword is None or not data.isascii() or b"\x1b" in data:
                left.append(tag)
                continue
        first = data.split(b"\\", 1)[0].strip(b" \0")
        if first:
            values[keyword] = first.decode("ascii", "replace")
    return left


_ascii_first_values: _AsciiFirstValues = (_NATIVE.ascii_first_values if _NATIVE is not None
                                          else _ascii_first_values_python)


# --- the public entry points -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Parsed:
    values: dict[str, str]
    meta_instance_uid: str | None
    needs_force: bool


def read_header(path: str, plan: ReadPlan, *, fast: bool = True) -> _Parsed:
    """Parse the wanted elements of one DICOM file. Raises OSError, _Truncated or InvalidDicomError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        if fast:
            try:
                return _read_fast(_Window(fd, size), plan)
            except _Unsupported:
                pass
        return _read_with_pydicom(path, plan)
    finally:
        os.close(fd)


def _read_fast(window: _Window, plan: ReadPlan) -> _Parsed:
    if window.data[:2] == _GZIP_MAGIC:
        raise _Unsupported("gzip")
    layout = _layout(window)
    parser = _Parser(window, layout.little, layout.implicit)
    raw = parser.read(layout.dataset_start, plan)
    values = decode_values(raw, plan, layout.little)
    media_class = _uid(layout.meta.get(_MEDIA_STORAGE_SOP_CLASS_UID, b""))
    if media_class == MEDIA_STORAGE_DIRECTORY:
        values.setdefault("SOPClassUID", MEDIA_STORAGE_DIRECTORY)
    meta_uid = _uid(layout.meta.get(_MEDIA_STORAGE_SOP_INSTANCE_UID, b""))
    if not layout.has_preamble and not _is_valid_uid(values.get("SOPClassUID")):
        # Without "DICM" the bytes earn the benefit of the doubt only with a real SOP Class UID.
        raise _Unsupported("no preamble and no valid SOP Class UID")
    return _Parsed(values, meta_uid, needs_force=not layout.has_preamble)


def _read_with_pydicom(path: str, plan: ReadPlan) -> _Parsed:
    tags = list(plan.tags)
    needs_force = False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
    except InvalidDicomError:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags, force=True)
        needs_force = True
    except (EOFError, struct.error) as exc:
        raise _Truncated from exc
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
    if needs_force and not _is_valid_uid(values.get("SOPClassUID")):
        raise InvalidDicomError("not a DICOM dataset")
    meta = getattr(ds, "file_meta", None)
    meta_uid = str(meta.get("MediaStorageSOPInstanceUID", "")) or None if meta is not None else None
    if meta is not None and meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        values.setdefault("SOPClassUID", MEDIA_STORAGE_DIRECTORY)
    return _Parsed(values, meta_uid, needs_force)


def survey_file(directory: str, name: str, plan: ReadPlan) -> FileRecord:
    """Everything the survey needs about one directory entry, never following a link."""
    path = os.path.join(directory, name)
    try:
        st = os.lstat(path)
    except OSError as exc:
        return FileRecord(name, 0, 0, (0, 0), 0, None, (Reason.UNREADABLE,), exc.strerror)

    def record(header: HeaderValues | None, reasons: tuple[Reason, ...], detail: str | None = None,
               needs_force: bool = False) -> FileRecord:
        return FileRecord(name, st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino), st.st_nlink, header, reasons,
                          detail, needs_force)

    if stat.S_ISLNK(st.st_mode):
        return record(None, (Reason.SYMLINK,), detail="symbolic link, not followed")
    if not stat.S_ISREG(st.st_mode):
        return record(None, (Reason.NOT_A_REGULAR_FILE,), detail="not a regular file")
    try:
        parsed = read_header(path, plan)
    except _Truncated:
        return record(None, (Reason.TRUNCATED,), detail="the file ends inside its header")
    except OSError as exc:
        return record(None, (Reason.UNREADABLE,), detail=exc.strerror)
    except Exception as exc:  # pydicom raises many types on garbage; all mean "not DICOM" here
        reason = Reason.GZIP_COMPRESSED if _starts_with(path, _GZIP_MAGIC) else Reason.NOT_DICOM
        detail = "gzip-compressed file" if reason is Reason.GZIP_COMPRESSED else _short(exc)
        return record(None, (reason,), detail=detail)
    reasons: list[Reason] = []
    values = parsed.values
    if values.get("SOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        return record(HeaderValues(values), (Reason.DICOMDIR,),
                          detail="a DICOMDIR, not an instance")
    if "SOPClassUID" not in values:
        reasons.append(Reason.MISSING_SOP_CLASS_UID)
    elif "SOPInstanceUID" not in values:
        reasons.append(Reason.MISSING_SOP_INSTANCE_UID)
    if parsed.needs_force:
        reasons.append(Reason.NEEDS_FORCE)
    instance_uid = values.get("SOPInstanceUID")
    if parsed.meta_instance_uid and instance_uid and parsed.meta_instance_uid != instance_uid:
        reasons.append(Reason.MEDIA_STORAGE_UID_MISMATCH)
    if st.st_nlink > 1:
        reasons.append(Reason.HARD_LINK)
    return record(HeaderValues(values), tuple(reasons), needs_force=parsed.needs_force)


def _starts_with(path: str, magic: bytes) -> bool:
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


# --- content checks for the files a mitigation would touch ---------------------------------------


def check_content(path: str) -> ContentCheck:
    """sha256 of the whole file, and whether its elements (pixel data included) are all there."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        fd = handle.fileno()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        size = os.fstat(fd).st_size
        intact, detail = True, None
        try:
            window = _Window(fd, size)
            layout = _layout(window)
            end, last_tag = _Parser(window, layout.little, layout.implicit).last_element_end(layout.dataset_start)
            if end > window.size or not window.complete:
                intact = False
                detail = "pixel data cut short" if last_tag in _PIXEL_DATA else "the last element is cut short"
        except _Truncated:
            intact, detail = False, "the file ends inside an element"
        except _Unsupported:
            pass  # not judged: the header read already classified the file
    return ContentCheck(digest.hexdigest(), intact, detail)
