"""Catalog XML as the stand-in keeps it: read entries, and edit the document's own text entry by entry.

Edits keep everything else of the document (namespaces, prefixes, metaFields, formatting), the way a
long-lived archive's catalogs look after years of XNAT writing them.
"""

from __future__ import annotations

import hashlib
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from html import escape, unescape
from pathlib import Path

CATALOG_NS = "http://nrg.wustl.edu/catalog"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
_XSI_TYPE = f"{{{XSI_NS}}}type"
_ENTRY = f"{{{CATALOG_NS}}}entry"
CATALOG_SUFFIX = "_catalog.xml"

_ATTRIBUTE = re.compile(r'(?P<name>[\w:.-]+)\s*=\s*(?P<q>["\'])(?P<value>.*?)(?P=q)', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Entry:
    """One `cat:entry` of a catalog, with the attributes the stand-in serves."""

    uri: str
    entry_id: str | None
    name: str | None
    xsi_type: str | None  # "cat:dcmEntry" for DICOM entries written by an importer, None for plain ones
    uid: str | None
    instance_number: str | None
    digest: str | None
    format: str | None
    content: str | None
    tags: str | None

    @property
    def is_dcm_entry(self) -> bool:
        return (self.xsi_type or "").endswith("dcmEntry")


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # XNAT's catalog digests are MD5
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_entries(path: Path) -> list[Entry]:
    """The entries of a catalog, in document order. Raises ET.ParseError or OSError."""
    entries: list[Entry] = []
    for _event, element in ET.iterparse(path, events=("end",)):
        if element.tag == _ENTRY and element.get("URI") is not None:
            entries.append(
                Entry(
                    uri=element.get("URI", ""),
                    entry_id=element.get("ID"),
                    name=element.get("name"),
                    xsi_type=element.get(_XSI_TYPE),
                    uid=element.get("UID"),
                    instance_number=element.get("instanceNumber"),
                    digest=element.get("digest"),
                    format=element.get("format"),
                    content=element.get("content"),
                    tags=None,
                )
            )
            element.clear()
    return entries


def _prefix(text: str) -> str:
    match = re.search(r'xmlns:([A-Za-z_][\w.-]*)\s*=\s*["\']' + re.escape(CATALOG_NS) + r'["\']', text)
    return match.group(1) if match else "cat"


def _entry_pattern(prefix: str) -> re.Pattern[str]:
    p = re.escape(prefix)
    return re.compile(rf"<{p}:entry\b(?P<attrs>[^>]*?)(?:/>|>.*?</{p}:entry>)", re.DOTALL)


def _attributes(attrs: str) -> dict[str, str]:
    return {m.group("name"): unescape(m.group("value")) for m in _ATTRIBUTE.finditer(attrs)}


def _set_attribute(element: str, name: str, value: str) -> str:
    pattern = re.compile(rf'(\s{re.escape(name)}\s*=\s*)(["\'])(.*?)\2', re.DOTALL)
    if pattern.search(element):
        return pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{escape(value, quote=True)}{m.group(2)}", element,
                           count=1)
    # Add the attribute right after the element name.
    head = re.match(r"<[\w:.-]+", element)
    assert head is not None
    return f'{head.group(0)} {name}="{escape(value, quote=True)}"{element[head.end():]}'


EntryEdit = Callable[[dict[str, str], str], str]


def edit_entries(path: Path, edit: EntryEdit) -> None:
    """Rewrite each entry element through `edit(attributes, element_text) -> new text` ("" removes it)."""
    text = path.read_text(encoding="utf-8")
    pattern = _entry_pattern(_prefix(text))
    removed = False

    def replace(match: re.Match[str]) -> str:
        nonlocal removed
        new = edit(_attributes(match.group("attrs")), match.group(0))
        removed = removed or new == ""
        return new

    new_text = pattern.sub(replace, text)
    if removed:
        new_text = re.sub(r"\n[ \t]*(?=\n)", "", new_text)
    write_atomically(path, new_text.encode("utf-8"))


def rename_and_remove(path: Path, renames: Mapping[str, str], removals: frozenset[str]) -> None:
    """XNAT's in-place catalog update: renamed entries get new `URI` and `ID` (type, UID, instanceNumber stay)."""

    def edit(attrs: dict[str, str], element: str) -> str:
        uri = attrs.get("URI")
        if uri in removals:
            return ""
        if uri is not None and uri in renames:
            element = _set_attribute(element, "URI", renames[uri])
            element = _set_attribute(element, "ID", renames[uri])
        return element

    edit_entries(path, edit)


#: The last release known to delete by prefix; none is known to have stopped (see `files_deleted_by`).
PREFIX_DELETE_THROUGH = (1, 8, 10, 1)


def deletes_by_prefix(version: str) -> bool:
    """Whether the XNAT `version` deletes by prefix: every release through 1.8.10.1 does."""
    parts = tuple(int(p) for p in re.findall(r"\d+", version.split("-")[0])[:4])
    return not parts or parts <= PREFIX_DELETE_THROUGH


def files_deleted_by(name: str, uris: list[str], *, by_prefix: bool) -> list[str]:
    """The catalog entries (URIs) a DELETE of `.../files/{name}` removes, with their files.

    As xnat-web's `CatalogUtils.findCatEntriesWithinPath` (through 1.8.10.1), which `FileList.handleDelete`
    calls: `key.equals(path) || key.startsWith(path) || (regex != null && key.matches(regex))`, where a
    path ending in `*` becomes the regex `path` with that `*` replaced by `.*`. `by_prefix` False plays a
    hypothetical release that deletes the exact name only.
    """
    if not by_prefix:
        return [u for u in uris if u == name]
    pattern = None
    if name.endswith("*"):
        # Java's String.replaceAll("\\*$", ".*") then String.matches: the rest of the name is a Java regex too.
        try:
            pattern = re.compile(name[:-1] + ".*")
        except re.error:
            pattern = None
    return [u for u in uris if u == name or u.startswith(name) or (pattern is not None and pattern.fullmatch(u))]


def set_digests(path: Path, digests: Mapping[str, str]) -> None:
    def edit(attrs: dict[str, str], element: str) -> str:
        uri = attrs.get("URI")
        if uri is not None and uri in digests:
            element = _set_attribute(element, "digest", digests[uri])
        return element

    edit_entries(path, edit)


def plain_entry_xml(prefix: str, uri: str, *, digest: str | None, fmt: str | None, content: str | None,
                    user: str, when: str) -> str:
    """A plain `cat:entry`, as XNAT writes for a file uploaded through REST or appended by a refresh."""
    attrs = [("URI", uri), ("ID", uri), ("name", uri.rsplit("/", 1)[-1])]
    if digest:
        attrs.append(("digest", digest))
    if fmt:
        attrs.append(("format", fmt))
    if content:
        attrs.append(("content", content))
    attrs += [("createdBy", user), ("createdTime", when)]
    rendered = " ".join(f'{k}="{escape(v, quote=True)}"' for k, v in attrs)
    return f"<{prefix}:entry {rendered}/>"


def add_entries(path: Path, elements: Callable[[str], list[str]]) -> None:
    """Append entries (built by `elements(prefix)`) at the end of the catalog's `entries` element."""
    text = path.read_text(encoding="utf-8")
    prefix = _prefix(text)
    new = elements(prefix)
    if not new:
        return
    block = "".join(f"\n\t{e}" for e in new)
    p = re.escape(prefix)
    closing = re.search(rf"</{p}:entries\s*>", text)
    if closing:
        # Keep the closing tag's own line layout.
        before = text[: closing.start()].rstrip(" \t")
        if before.endswith("\n"):
            before = before[:-1]
        text = before + block + "\n" + text[closing.start():]
    else:
        empty = re.search(rf"<{p}:entries\s*/>", text)
        if empty:
            text = text[: empty.start()] + f"<{prefix}:entries>{block}\n</{prefix}:entries>" + text[empty.end():]
        else:
            root_close = text.rstrip().rfind("</")
            text = text[:root_close] + f"<{prefix}:entries>{block}\n</{prefix}:entries>\n" + text[root_close:]
    write_atomically(path, text.encode("utf-8"))


def new_catalog_xml(label: str, *, dicom: bool = False) -> str:
    root = "DCMCatalog" if dicom else "Catalog"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<cat:{root} ID="{escape(label, quote=True)}" xmlns:cat="{CATALOG_NS}" xmlns:xsi="{XSI_NS}">\n'
        "<cat:entries>\n</cat:entries>\n"
        f"</cat:{root}>\n"
    )


def write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.standin.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
