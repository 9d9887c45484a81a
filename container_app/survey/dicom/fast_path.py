"""The fast path: read just the bytes up to the last tag the survey needs, straight from the file.

It understands the encodings found in archives (explicit and implicit VR little endian, explicit
big endian, deflated, files without preamble) and gives up (`FastPathUnsupported`) on anything
else, which then goes to pydicom (`fallback`). A deflated dataset is inflated only as far as the
walk reads, and never past the cap (`inflate`). The element walk over plain elements runs in the C
module where it is built (`native`); the `ElementParser` here handles everything it leaves.
"""

from __future__ import annotations

import os
import re
import struct
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from container_app.survey.dicom.decode import decode_values, is_valid_uid, uid_value
from container_app.survey.dicom.inflate import Inflater
from container_app.survey.dicom.native import NATIVE
from container_app.survey.dicom.read_plan import MEDIA_STORAGE_DIRECTORY, ParsedHeader, ReadPlan, TruncatedFile

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
GZIP_MAGIC = b"\x1f\x8b"
#: Top-level pixel data elements: what a cut file most often loses.
PIXEL_DATA_TAGS: Mapping[int, str] = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData",
                                      0x7FE00009: "DoubleFloatPixelData"}

_MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
_MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
_TRANSFER_SYNTAX_UID = 0x00020010
_META_TAGS = {_MEDIA_STORAGE_SOP_CLASS_UID: "", _MEDIA_STORAGE_SOP_INSTANCE_UID: "", _TRANSFER_SYNTAX_UID: ""}
_NOTHING: Mapping[int, str] = {}
_ITEM, _ITEM_END, _SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"})
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
                        b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})
_VALID_VR = re.compile(rb"[A-Z]{2}")
_FIRST_READ = 8192
_MAX_DEPTH = 32
#: A deflated window's size until its stream is inflated to the end: not known, so never reached.
_NOT_YET_KNOWN = sys.maxsize


class FastPathUnsupported(Exception):
    """The fast path cannot read this file; pydicom gets it."""


class DamagedDeflateStream(FastPathUnsupported):
    """zlib refused the deflate stream. pydicom gets it too (as before); the content check counts it as damage."""


class Window:
    """Random access to a file (or a decompressed stream) without reading what is skipped.

    `size` is the file's size; for a deflated file, the end of the inflated stream once it is
    known (`_NOT_YET_KNOWN` before). `more(pos)` tells whether there is a byte at `pos`.
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.size = fd, size
        self.base = 0
        # bytes read from the file; for a deflated file, the inflater's buffer (meta, then what is inflated)
        self.data: bytes | bytearray = os.pread(fd, min(_FIRST_READ, size), 0)
        self._inflater: Inflater | None = None
        self.complete = True  # False when a deflate stream ends before its end marker: the file was cut

    def inflate_from(self, offset: int) -> None:
        """Everything from `offset` on is a raw deflate stream; offsets beyond it address the inflated bytes.

        They are inflated as they are asked for, never past the cap (HeaderTooLarge beyond it).
        """
        head = self.get(0, offset)
        self._inflater = Inflater(self.fd, offset, self.size, head)
        self.data, self.base, self.size, self.complete = self._inflater.buffer, 0, _NOT_YET_KNOWN, False
        self._inflate_to(offset + _FIRST_READ)

    def _inflate_to(self, end: int) -> None:
        assert self._inflater is not None
        try:
            self._inflater.extend_to(end)
        except zlib.error as exc:
            raise DamagedDeflateStream(f"deflate stream: {exc}") from exc
        if self._inflater.finished:
            self.size, self.complete = len(self.data), self._inflater.ended

    def more(self, pos: int) -> bool:
        """Whether there is a byte at `pos` (inflating up to it; DamagedDeflateStream when damage comes first)."""
        if self._inflater is not None and pos >= len(self.data):
            self._inflate_to(pos + 1)
        return pos < self.size

    def get(self, start: int, end: int) -> bytes:
        if self._inflater is not None:
            if end > len(self.data):
                self._inflate_to(end)
                if end > len(self.data):  # the stream ended first
                    raise TruncatedFile
            return bytes(self.data[start:end])
        if end > self.size:
            raise TruncatedFile
        if start < self.base or end > self.base + len(self.data):
            length = max(end - start, _FIRST_READ)
            self.data, self.base = os.pread(self.fd, min(length, self.size - start), start), start
        return bytes(self.data[start - self.base : end - self.base])  # already bytes: no copy


# --- the element walk: plain elements in bulk (the C module's `walk`, in Python) -------------------

_EXPLICIT_LE_HEADER = struct.Struct("<HH2sH").unpack_from
_IMPLICIT_LE_HEADER = struct.Struct("<HHI").unpack_from
_U32_LE = struct.Struct("<I").unpack_from


def _fast_explicit_le(data: bytes | bytearray, base: int, pos: int, stop: int, wanted: Mapping[int, str],
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
            values[tag] = bytes(data[start - base : start - base + length])
        pos = start + length
    return pos, False


def _fast_implicit_le(data: bytes | bytearray, base: int, pos: int, stop: int, wanted: Mapping[int, str],
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
            values[tag] = bytes(data[start - base : start - base + length])
        pos = start + length
    return pos, False


def _walk_python(data: bytes | bytearray, base: int, pos: int, stop: int, wanted: Mapping[int, str],
                 values: dict[int, bytes], implicit: bool, skip_sequences: bool = True, /) -> tuple[int, bool]:
    """The Python loops never step over sequences: `skip_sequences` only matters to the C walker."""
    return (_fast_implicit_le if implicit else _fast_explicit_le)(data, base, pos, stop, wanted, values)


class _Walker(Protocol):
    def __call__(self, data: bytes | bytearray, base: int, pos: int, stop: int, wanted: Mapping[int, str],
                 values: dict[int, bytes], implicit: bool, skip_sequences: bool = True, /) -> tuple[int, bool]: ...


#: The walk in use. The C walker also steps over undefined-length sequences that lie wholly in the
#: buffer, so it may stop later than the Python loops; where either stops, `ElementParser` carries
#: on by the same rules, so the values read are the same (tests compare the two on every test file
#: and on fuzzed ones, swapping this module attribute, which is looked up at each call).
_walk: _Walker = NATIVE.walk if NATIVE is not None else _walk_python


# --- the general parser: whatever the walk leaves ---------------------------------------------------


class ElementParser:
    """Walks the elements of a dataset, keeping the raw values of the wanted tags."""

    def __init__(self, window: Window, little: bool, implicit: bool) -> None:
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
            raise FastPathUnsupported(f"invalid VR at offset {pos}")
        if vr in _LONG_VRS:
            return tag, vr, self.u32.unpack(self.w.get(pos + 8, pos + 12))[0], pos + 12
        return tag, vr, struct.unpack_from("<H" if self.little else ">H", raw, 6)[0], pos + 8

    def read(self, pos: int, plan: ReadPlan) -> dict[int, bytes]:
        values: dict[int, bytes] = {}
        wanted, stop, implicit = plan.tags, plan.stop_after, self.implicit
        while self.w.more(pos):
            if self.little:
                pos, finished = _walk(self.w.data, self.w.base, pos, stop, wanted, values, implicit)
                if finished or not self.w.more(pos):
                    break
            # One element the fast loops leave to us: near the buffer's end, undefined length, odd VR.
            tag, vr, length, pos = self.header(pos, self.implicit)
            if tag > stop:
                break
            if length == _UNDEFINED:
                if tag in wanted:
                    raise FastPathUnsupported("a wanted element has undefined length")
                pos = self.skip_sequence(pos, self.implicit or vr == b"UN", 0)
                continue
            if tag in wanted:
                values[tag] = self.w.get(pos, pos + length)
            pos += length
        size = self.w.size  # known here unless the walk stopped inside the stream
        if pos > size or (pos >= size and not self.w.complete):  # ran out of a cut deflate stream
            raise TruncatedFile
        return values

    def skip_sequence(self, pos: int, implicit: bool, depth: int) -> int:
        if depth > _MAX_DEPTH:
            raise FastPathUnsupported("sequences nested too deep")
        while True:
            group, element, length = self.tag_len.unpack(self.w.get(pos, pos + 8))
            tag, pos = (group << 16) | element, pos + 8
            if tag == _SEQUENCE_END:
                return pos
            if tag != _ITEM:
                raise FastPathUnsupported(f"expected an item at offset {pos - 8}")
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
        while self.w.more(pos):
            if self.little:  # plain elements in bulk; pixel data small enough to sit in the buffer is noted
                pos, _passed = _walk(self.w.data, self.w.base, pos, 0xFFFFFFFF, PIXEL_DATA_TAGS, pixels,
                                     self.implicit)
                last_tag = max(pixels, default=last_tag)
                if not self.w.more(pos):
                    break
            tag, vr, length, pos = self.header(pos, self.implicit)
            last_tag = tag
            if length == _UNDEFINED:
                if tag in PIXEL_DATA_TAGS:  # encapsulated: fragments are items
                    pos = self.skip_sequence(pos, True, 0)
                else:
                    pos = self.skip_sequence(pos, self.implicit or vr == b"UN", 0)
            else:
                pos += length
        return pos, last_tag


# --- the layout: preamble, file meta, transfer syntax ----------------------------------------------


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the dataset starts and how it is encoded."""

    dataset_start: int
    little: bool
    implicit: bool
    deflated: bool
    has_preamble: bool
    meta: Mapping[int, bytes]


def read_layout(window: Window) -> Layout:
    head = window.data
    if len(head) >= 132 and head[128:132] == b"DICM":
        return _with_meta(window, 132, has_preamble=True)
    if len(head) >= 8 and head[0:2] == b"\x02\x00" and _VALID_VR.fullmatch(head[4:6]):
        return _with_meta(window, 0, has_preamble=False)
    if len(head) < 8:
        raise FastPathUnsupported("too short to be DICOM")
    # A bare dataset: XNAT (and pydicom's force) guess the encoding from its first element.
    implicit = not _VALID_VR.fullmatch(head[4:6])
    return Layout(0, little=True, implicit=implicit, deflated=False, has_preamble=False, meta={})


def _with_meta(window: Window, pos: int, has_preamble: bool) -> Layout:
    """Read the file meta group (always explicit VR little endian)."""
    parser = ElementParser(window, little=True, implicit=False)
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
            raise FastPathUnsupported("undefined length in file meta")
        meta[tag] = window.get(value_pos, value_pos + length)
        pos = value_pos + length
    syntax = uid_value(meta.get(_TRANSFER_SYNTAX_UID, b"")) or ""
    if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        window.inflate_from(pos)
        return Layout(pos, True, False, True, has_preamble, meta)
    if syntax == IMPLICIT_VR_LITTLE_ENDIAN:
        return Layout(pos, True, True, False, has_preamble, meta)
    if syntax == EXPLICIT_VR_BIG_ENDIAN:
        return Layout(pos, False, False, False, has_preamble, meta)
    if not syntax:
        raise FastPathUnsupported("no transfer syntax in file meta")
    # Every other transfer syntax encodes the dataset as explicit VR little endian.
    return Layout(pos, True, False, False, has_preamble, meta)


def read_fast(window: Window, plan: ReadPlan) -> ParsedHeader:
    """The wanted elements of one file, or FastPathUnsupported (or TruncatedFile)."""
    if window.data[:2] == GZIP_MAGIC:
        raise FastPathUnsupported("gzip")
    layout = read_layout(window)
    parser = ElementParser(window, layout.little, layout.implicit)
    raw = parser.read(layout.dataset_start, plan)
    values = decode_values(raw, plan, layout.little)
    media_class = uid_value(layout.meta.get(_MEDIA_STORAGE_SOP_CLASS_UID, b""))
    if media_class == MEDIA_STORAGE_DIRECTORY:
        values.setdefault("SOPClassUID", MEDIA_STORAGE_DIRECTORY)
    meta_uid = uid_value(layout.meta.get(_MEDIA_STORAGE_SOP_INSTANCE_UID, b""))
    if not layout.has_preamble and not is_valid_uid(values.get("SOPClassUID")):
        # Without "DICM" the bytes earn the benefit of the doubt only with a real SOP Class UID.
        raise FastPathUnsupported("no preamble and no valid SOP Class UID")
    return ParsedHeader(values, meta_uid, needs_force=not layout.has_preamble)
