"""XNAT's DICOM file naming, byte for byte: the template engine, its hash, and the legacy namer.

Pure functions, no I/O. The rules are XNAT's (xnat-web `DicomFileNamer` and the pre-1.8.7
`SOPHashDicomFileNamer`); see docs in the README and `../shared/xnat-reference.md` §1.
"""

from __future__ import annotations

import re
import sys
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from operator import mul

from container_app.core.errors import TemplateError
from container_app.core.vocabulary import ALWAYS_KEYWORDS

DEFAULT_TEMPLATE = "${StudyInstanceUID}-${SeriesNumber}-${InstanceNumber}-${HashSOPClassUIDWithSOPInstanceUID}"

# XNAT's own character class is `[A-z0-9]`: A-z also spans `[ \ ] ^ _` and the backtick, so we match it exactly.
_XNAT_WORD = r"A-Za-z0-9\[\\\]^_`"
_VARIABLE = re.compile(rf"\$\{{([{_XNAT_WORD}]+)\}}")
_HAS_EXTENSION = re.compile(rf"\.[{_XNAT_WORD}]+$")
_MASK32 = 0xFFFFFFFF
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_BASE36_PAIRS = tuple(high + low for high in _BASE36 for low in _BASE36)  # "00", "01", ... "zz"
_LEGACY_HASH_MAX_DIGITS = 7  # 2**32 < 36**7
MAX_NAME_BYTES = 255


def _to_int32(value: int) -> int:
    value &= _MASK32
    return value - (1 << 32) if value & 0x80000000 else value


@lru_cache(maxsize=512)
def _powers_of_31(length: int) -> tuple[int, ...]:
    """31**(n-1-i) mod 2**32 for i in range(n): the weights of Java's string hash."""
    return tuple(pow(31, length - 1 - i, 1 << 32) for i in range(length))


@lru_cache(maxsize=4096)
def java_string_hash(text: str) -> int:
    """Java's `String.hashCode()`: over UTF-16 code units, in signed 32-bit arithmetic."""
    if text.isascii():
        units: Iterable[int] = text.encode("ascii")  # an ASCII byte is its own UTF-16 code unit
    else:
        units = array("H", text.encode("utf-16-le", "surrogatepass"))
        if sys.byteorder == "big":
            units.byteswap()
    # The weighted sum in C (map/sum) instead of a Python loop: UIDs are hashed once per file.
    return _to_int32(sum(map(mul, units, _powers_of_31(len(units)))))  # type: ignore[arg-type]


def java_list_hash(values: Iterable[str]) -> int:
    """Java's `List<String>.hashCode()` (AbstractList): `31*h + e.hashCode()` from 1."""
    h = 1
    for value in values:
        h = (31 * h + java_string_hash(value)) & _MASK32
    return _to_int32(h)


def base36(value: int) -> str:
    """Unsigned 32-bit value in lowercase base 36 without padding, as `Long.toString(v, 36)`."""
    value &= _MASK32
    pairs = []
    while True:  # two digits per step: this runs once per file
        value, rem = divmod(value, 36 * 36)
        pairs.append(_BASE36_PAIRS[rem])
        if not value:
            return "".join(reversed(pairs)).lstrip("0") or "0"


def no_value(keyword: str) -> str:
    return f"no-value-for-{keyword}"


@dataclass(frozen=True, slots=True)
class Variable:
    """One `${...}` of a template: a plain keyword, or a hash over several keywords."""

    text: str  # as written, e.g. "HashSOPClassUIDWithSOPInstanceUID"
    keywords: tuple[str, ...]
    is_hash: bool


@dataclass(frozen=True, slots=True)
class NamingTemplate:
    """A parsed `dicomFileNameTemplate`. Parse once with `parse_template`, render per file."""

    source: str
    literals: tuple[str, ...]  # len(literals) == len(variables) + 1
    variables: tuple[Variable, ...]
    extension: str  # ".dcm" when the template has no extension of its own, else ""

    @property
    def keywords(self) -> tuple[str, ...]:
        """Every DICOM keyword the template reads, in first-use order."""
        seen: dict[str, None] = {}
        for variable in self.variables:
            for keyword in variable.keywords:
                seen.setdefault(keyword)
        return tuple(seen)

    def render(self, lookup: Callable[[str], str | None] | Mapping[str, str]) -> str:
        """The file name XNAT would give an instance whose header values `lookup` returns."""
        get = lookup.get if isinstance(lookup, Mapping) else lookup
        parts = [self.literals[0]]
        for variable, literal in zip(self.variables, self.literals[1:], strict=True):
            if variable.is_hash:
                parts.append(base36(java_list_hash([get(k) or no_value(k) for k in variable.keywords])))
            else:
                keyword = variable.keywords[0]
                parts.append(get(keyword) or no_value(keyword))
            parts.append(literal)
        parts.append(self.extension)
        # XNAT strips leading dots so a name never hides itself; nothing else is sanitised.
        return "".join(parts).lstrip(".")


def parse_template(source: str) -> NamingTemplate:
    """Parse a site's `dicomFileNameTemplate`; raise `TemplateError` saying what is wrong."""
    if not source or not source.strip():
        raise TemplateError("the naming template is empty")
    literals: list[str] = []
    variables: list[Variable] = []
    position = 0
    for match in _VARIABLE.finditer(source):
        literals.append(source[position : match.start()])
        variables.append(_parse_variable(match.group(1)))
        position = match.end()
    literals.append(source[position:])
    leftover = "".join(literals)
    if "${" in leftover:
        raise TemplateError(
            f"the naming template {source!r} has a malformed variable: use ${{Keyword}} with letters and digits"
        )
    if any(sep in leftover for sep in ("/", "\\", "\0")):
        raise TemplateError(f"the naming template {source!r} contains a path separator")
    if ".." in leftover or _CONTROL.search(leftover):
        raise TemplateError(f"the naming template {source!r} contains '..' or a control character")
    if not variables:
        raise TemplateError(
            f"the naming template {source!r} has no ${{Keyword}} variable: every file would share a name"
        )
    extension = "" if _HAS_EXTENSION.search(source) else ".dcm"
    return NamingTemplate(source, tuple(literals), tuple(variables), extension)


def _parse_variable(text: str) -> Variable:
    if text.startswith("Hash"):
        body = text[len("Hash") :]
        if "With" not in body:
            raise TemplateError(f"invalid hash variable ${{{text}}}: write Hash<Keyword>With<Keyword>[With...]")
        keywords = tuple(body.split("With"))
        for keyword in keywords:
            _check_keyword(keyword, text)
        return Variable(text, keywords, is_hash=True)
    _check_keyword(text, text)
    return Variable(text, (text,), is_hash=False)


#: Keywords known to be in pydicom's dictionary (tests/core/test_naming_keywords.py checks it): the default
#: template's and those every file is read for. A template of these alone is checked without importing
#: pydicom, whose import (its whole package, ~0.15 s here) would be most of a small survey's start-up.
_KNOWN_KEYWORDS = frozenset((*ALWAYS_KEYWORDS, "StudyInstanceUID", "SeriesNumber", "InstanceNumber", "SOPClassUID",
                             "SOPInstanceUID"))


def _check_keyword(keyword: str, variable: str) -> None:
    if not keyword or not is_dicom_keyword(keyword):
        raise TemplateError(f"${{{variable}}}: {keyword!r} is not a DICOM keyword")


@lru_cache(maxsize=256)
def is_dicom_keyword(keyword: str) -> bool:
    """Whether pydicom's data dictionary has this keyword; its dictionary is imported only for one not known."""
    if keyword in _KNOWN_KEYWORDS:
        return True
    from pydicom.datadict import tag_for_keyword

    return tag_for_keyword(keyword) is not None


def first_value(raw: str) -> str | None:
    """The string XNAT's DICOM library gives for an element: its first value, padding removed."""
    value = raw.split("\\", 1)[0].strip(" \0")
    return value or None


# --- the namer used before XNAT 1.8.7 -------------------------------------------------------------


def legacy_hash(sop_class_uid: str | None, sop_instance_uid: str | None) -> str:
    """The hash part of a pre-1.8.7 `SOPHashDicomFileNamer` name."""
    h = java_string_hash(sop_class_uid) if sop_class_uid else 0
    if sop_instance_uid:
        h = 37 * java_string_hash(sop_instance_uid) + h
    return base36(h)


def is_legacy_name(name: str, sop_class_uid: str | None, sop_instance_uid: str | None) -> bool:
    """Whether `name` ends the way the pre-1.8.7 namer ended the names it gave this instance."""
    # That ending is `.<hash>.dcm`, a hash having no dot and at most 7 digits: most names are
    # ruled out by their shape, without hashing the UIDs.
    if not name.endswith(".dcm"):
        return False
    _, dot, tail = name[: -len(".dcm")].rpartition(".")
    return bool(dot) and len(tail) <= _LEGACY_HASH_MAX_DIGITS and tail == legacy_hash(sop_class_uid, sop_instance_uid)


# --- names that must never reach the file system --------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unsafe_name_reason(name: str) -> str | None:
    """Why `name` must not be used as a file name in a resource folder, or None when it is safe.

    A header value must never steer a path: separators, `..`, control characters and over-long
    names would all let a crafted header move or hide a file.
    """
    if not name:
        return "the name is empty"
    if "/" in name or "\\" in name:
        return "the name contains a path separator"
    if ".." in name:
        return "the name contains '..'"
    if _CONTROL.search(name):
        return "the name contains a control character"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"the name is longer than {MAX_NAME_BYTES} bytes"
    return None
