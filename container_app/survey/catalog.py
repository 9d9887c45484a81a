"""XNAT resource catalogs (`*_catalog.xml`): reading entries, and rewriting them without losing anything.

Rewrites work on the document's own text, entry by entry, so namespaces, prefixes, metaFields,
digests, attribute order and formatting stay exactly as XNAT wrote them.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from html import escape, unescape

from container_app.core.records import CatalogEntry

CATALOG_NS = "http://nrg.wustl.edu/catalog"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_ENTRY_TAG = f"{{{CATALOG_NS}}}entry"
_META_FIELD_TAG = f"{{{CATALOG_NS}}}metaField"

CATALOG_SUFFIX = "_catalog.xml"


def is_catalog_name(name: str) -> bool:
    return name.endswith(CATALOG_SUFFIX)


def read_entries(path: str) -> tuple[CatalogEntry, ...]:
    """The `cat:entry` elements of a catalog. Raises ET.ParseError or OSError."""
    return read_catalog(path)[1]


#: Catalogs up to this size are parsed whole (half the time of parsing event by event); larger ones
#: (resources of tens of thousands of files) are streamed so their trees never sit in memory.
WHOLE_PARSE_BYTES = 4 << 20


def read_catalog(path: str) -> tuple[str | None, tuple[CatalogEntry, ...]]:
    """The project XNAT wrote into a catalog's `PROJECT` metaField, and its `cat:entry` elements."""
    project: str | None = None
    entries: list[CatalogEntry] = []
    # No DTDs or entities reach here: ElementTree does not fetch external entities.
    streamed = os.path.getsize(path) > WHOLE_PARSE_BYTES
    if streamed:
        elements: Iterable[ET.Element] = (element for _event, element in ET.iterparse(path, events=("end",)))  # noqa: S314 (expat >= 2.4.1 refuses entity bombs)
    else:
        elements = ET.parse(path).getroot().iter()  # noqa: S314
    for element in elements:
        if element.tag == _META_FIELD_TAG and element.get("name") == "PROJECT":
            project = (element.text or "").strip() or None
        elif element.tag == _ENTRY_TAG:
            uri = element.get("URI")
            if uri is not None:
                entries.append(
                    CatalogEntry(
                        uri=uri,
                        entry_id=element.get("ID"),
                        uid=element.get("UID"),
                        is_dcm_entry=(element.get(XSI_TYPE) or "").endswith("dcmEntry"),
                    )
                )
            if streamed:
                element.clear()  # done with it (its children, if any, came before it)
    return project, tuple(entries)


# An entry is one self-closing element or one with content; both forms appear in XNAT catalogs.
_ENTRY_ELEMENT = re.compile(r"<(?P<prefix>[A-Za-z_][\w.-]*:)?entry\b(?P<attrs>[^>]*?)(?:/>|>.*?</(?P=prefix)?entry>)",
                            re.DOTALL)
_ATTRIBUTE = re.compile(r'(?P<name>[\w:.-]+)\s*=\s*(?P<q>["\'])(?P<value>.*?)(?P=q)', re.DOTALL)


def _attribute(attrs: str, name: str) -> str | None:
    for match in _ATTRIBUTE.finditer(attrs):
        if match.group("name") == name:
            return unescape(match.group("value"))
    return None


def _set_attribute(element: str, name: str, value: str) -> str:
    """Replace an attribute's value in an entry's text, or leave the entry as it is if absent.

    The start tag's attributes are walked in order, as `_attribute` reads them, so that text inside
    another attribute's value (`name='a URI="b"'`) is never taken for the attribute.
    """
    entry = _ENTRY_ELEMENT.match(element)
    if entry is None:
        return element
    offset = entry.start("attrs")
    for match in _ATTRIBUTE.finditer(entry.group("attrs")):
        if match.group("name") == name:
            start, end = offset + match.start("value"), offset + match.end("value")
            return element[:start] + escape(value, quote=True) + element[end:]
    return element


def rewrite_entries(text: str, renames: Mapping[str, str], removals: frozenset[str]) -> tuple[str, int, int]:
    """Apply renames (old URI -> new name) and removals (URI) to a catalog's text.

    Renamed entries get the new `URI`, `ID` and `name` (where the entry has them); removed entries
    go, with the whitespace that led up to them. Returns the new text and the numbers of entries
    renamed and removed.
    """
    renamed = removed = 0
    if not renames and not removals:
        return text, 0, 0

    def replace(match: re.Match[str]) -> str:
        nonlocal renamed, removed
        element = match.group(0)
        uri = _attribute(match.group("attrs"), "URI")
        if uri is None:
            return element
        if uri in removals:
            removed += 1
            return ""
        if uri in renames:
            renamed += 1
            new = renames[uri]
            directory = uri.rsplit("/", 1)[0] + "/" if "/" in uri else ""
            element = _set_attribute(element, "URI", directory + new)
            element = _set_attribute(element, "ID", directory + new)
            element = _set_attribute(element, "name", new)
        return element

    # Most entries are untouched: an entry without character references whose text holds none of the
    # names cannot carry one of them as its URI, so it is kept as it is. Where the names occur is found
    # once for the whole text, so an entry costs a lookup, not a search per name.
    mentions = sorted((at, at + len(name)) for name in {*renames, *removals} for at in _occurrences(text, name))
    mention_starts = [at for at, _ in mentions]
    pieces: list[str] = []
    done = 0
    for match in _ENTRY_ELEMENT.finditer(text):
        start, end = match.span()
        i = bisect_left(mention_starts, start)
        while i < len(mentions) and mentions[i][0] < end and mentions[i][1] > end:
            i += 1
        named = i < len(mentions) and mentions[i][0] < end
        if not named and text.find("&", start, end) < 0:
            continue
        pieces += (text[done:start], replace(match))
        done = end
    pieces.append(text[done:])
    new_text = "".join(pieces)
    # Drop lines left empty by removed entries.
    new_text = re.sub(r"\n[ \t]*(?=\n)", "", new_text) if removed else new_text
    return new_text, renamed, removed


def _occurrences(text: str, name: str) -> list[int]:
    found = []
    at = text.find(name)
    while at >= 0:
        found.append(at)
        at = text.find(name, at + 1)
    return found


