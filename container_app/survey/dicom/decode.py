"""Raw element bytes to the strings XNAT's DICOM library would return: shared by both readers.

First value only, as stored, padding removed; text in the dataset's SpecificCharacterSet; binary
numbers in decimal, in the dataset's byte order.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from functools import lru_cache
from typing import Protocol

from pydicom.charset import convert_encodings, decode_bytes

from container_app.core.naming import first_value
from container_app.survey.dicom.native import NATIVE
from container_app.survey.dicom.read_plan import SPECIFIC_CHARACTER_SET, Decoding, ReadPlan

_VALID_UID = re.compile(r"[0-9]+(\.[0-9]+)*")


class _AsciiFirstValues(Protocol):
    def __call__(self, raw: dict[int, bytes], ascii_keywords: Mapping[int, str], text_keywords: Mapping[int, str],
                 values: dict[str, str], /) -> list[int]: ...


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
            encodings = _encodings(raw.get(SPECIFIC_CHARACTER_SET, b""))
            text = decode_bytes(data, encodings, {0x5C, 0x3D, 0x5E} if decoder.vr == "PN" else {0x5C})
            value = first_value(text)
            if value is not None:
                values[decoder.keyword] = value
    return values


def uid_value(raw: bytes) -> str | None:
    """The first value of a UI element's raw bytes (file meta UIDs are ASCII by definition)."""
    return first_value(raw.decode("ascii", "replace"))


def is_valid_uid(value: str | None) -> bool:
    return value is not None and len(value) <= 64 and _VALID_UID.fullmatch(value) is not None


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


#: The one in use; tests swap it (module attribute, looked up at each call) to compare C with Python.
_ascii_first_values: _AsciiFirstValues = (NATIVE.ascii_first_values if NATIVE is not None
                                          else _ascii_first_values_python)
