"""What to read from a DICOM file, and what reading it gives: shared by the fast path and the fallback.

A `ReadPlan` is built once per run from the naming template and shared by every worker; both
readers hand back a `ParsedHeader`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR, tag_for_keyword

from container_app.core.vocabulary import ALWAYS_KEYWORDS

#: The SOP Class UID of a DICOMDIR: XNAT's survey must not take it for an instance.
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
#: Read with the wanted elements, but only to decode them.
SPECIFIC_CHARACTER_SET = 0x00080005

#: Binary VRs whose first value XNAT's DICOM library returns as a number in decimal (e.g. Rows "512").
_BINARY_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "UV": "Q", "SV": "q", "FL": "f", "FD": "d"}
#: VRs whose values may hold characters outside ASCII, decoded with the SpecificCharacterSet.
_TEXT_VRS = frozenset({"PN", "LO", "SH", "ST", "LT", "UT", "UC"})


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
        tags[SPECIFIC_CHARACTER_SET] = "SpecificCharacterSet"  # read, but only to decode the others
        return cls(tags=tags, stop_after=max(tags), decoders=decoders,
                   ascii_keywords={t: d.keyword for t, d in decoders.items() if d.decoding is Decoding.ASCII},
                   text_keywords={t: d.keyword for t, d in decoders.items() if d.decoding is Decoding.TEXT})


def _decoder(tag: int, keyword: str) -> ElementDecoder:
    vr = dictionary_VR(tag).split(" or ")[0]  # "US or SS": the first, as XNAT's dictionary does
    if vr in _BINARY_NUMBERS:
        return ElementDecoder(keyword, Decoding.BINARY, vr, _BINARY_NUMBERS[vr])
    return ElementDecoder(keyword, Decoding.TEXT if vr in _TEXT_VRS else Decoding.ASCII, vr)


@dataclass(frozen=True, slots=True)
class ParsedHeader:
    """What reading one file's header gives, by either reader."""

    values: dict[str, str]  # keyword -> first value, as XNAT would use it
    meta_instance_uid: str | None  # the file meta's MediaStorageSOPInstanceUID
    needs_force: bool  # no "DICM" preamble: pydicom reads it only with force=True


class TruncatedFile(Exception):
    """The file ends inside an element (raised by both readers, so a cut file gets one verdict)."""
