"""XNAT resource catalogs (`*_catalog.xml`) as bytes: reading their entries, and rewriting them in place.

Both run on expat with namespace processing, so an entry is `{http://nrg.wustl.edu/catalog}entry` whatever
prefix the document binds to that namespace (or none, as the default namespace), and text that only looks
like an entry (in a comment or CDATA, or a `>` inside an attribute value) is never taken for one.

A rewrite changes the bytes of the attribute values and entries it concerns and nothing else: namespaces,
prefixes, metaFields, digests, attribute order, quotes and formatting stay exactly as XNAT wrote them.

Refused as `CatalogError`: a DOCTYPE or entity declaration (XNAT never writes one, and entities are how a
small file expands to gigabytes), malformed XML, and encodings other than UTF-8 and ASCII (rewrites work on
byte offsets and write UTF-8). Pure: bytes in, bytes out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any
from xml.parsers.expat import ExpatError, ParserCreate, XMLParserType

from container_app.core.errors import CatalogError
from container_app.core.records import CatalogEntry

CATALOG_NS = "http://nrg.wustl.edu/catalog"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

# expat names a namespaced element or attribute "<namespace URI> <local name>" (namespace_separator=" ").
_ENTRY = f"{CATALOG_NS} entry"
_META_FIELD = f"{CATALOG_NS} metaField"
_XSI_TYPE = f"{XSI_NS} type"

#: Declared encodings whose bytes are UTF-8's (compared in lower case).
_UTF8_ENCODINGS = frozenset({"utf-8", "us-ascii", "ascii"})
_ASCII_ENCODINGS = frozenset({"us-ascii", "ascii"})


@dataclass(frozen=True, slots=True)
class ParsedCatalog:
    """What the survey reads from a catalog: the project XNAT wrote into it, and its entries in order."""

    project: str | None
    entries: tuple[CatalogEntry, ...]


@dataclass(frozen=True, slots=True)
class CatalogRewrite:
    """A rewritten catalog, and how many entries were renamed and removed."""

    data: bytes
    renamed: int
    removed: int


class _SafeParser:
    """expat with namespace processing, refusing what a catalog never holds before any of it is expanded."""

    def __init__(self) -> None:
        # encoding="utf-8" keeps expat from decoding a declared single-byte encoding through Python's codecs;
        # the declaration itself is refused below, UTF-16 and UTF-32 by `_sniff` (expat finds those by BOM).
        self.expat: XMLParserType = ParserCreate(encoding="utf-8", namespace_separator=" ")
        self.expat.StartDoctypeDeclHandler = self._doctype
        self.expat.EntityDeclHandler = self._entity
        self.expat.XmlDeclHandler = self._declaration
        self.ascii = False  # declared US-ASCII: rewritten values then carry other characters as references
        self._head: bytes | None = b""  # the first bytes, until there are enough to tell UTF-16 from UTF-8

    def parse(self, chunk: bytes, final: bool) -> None:
        if self._head is not None:
            self._head += chunk
            if len(self._head) < 4 and not final:
                return
            chunk, self._head = self._head, None
            _sniff(chunk)
        try:
            self.expat.Parse(chunk, final)
        except ExpatError as exc:
            raise CatalogError(f"catalog is not well-formed XML ({exc})") from exc

    def _doctype(self, *_: Any) -> None:
        raise CatalogError(f"catalog has a DOCTYPE (line {self.expat.CurrentLineNumber}); refused, "
                           "as XNAT never writes one and its entities could expand without bound")

    def _entity(self, *_: Any) -> None:
        raise CatalogError(f"catalog declares an entity (line {self.expat.CurrentLineNumber}); refused")

    def _declaration(self, _version: str | None, encoding: str | None, _standalone: int) -> None:
        declared = (encoding or "utf-8").lower()
        if declared not in _UTF8_ENCODINGS:
            raise CatalogError(f"catalog declares encoding {encoding!r}; only UTF-8 catalogs are read")
        self.ascii = declared in _ASCII_ENCODINGS


def _sniff(head: bytes) -> None:
    # Every UTF-16 or UTF-32 document has a NUL byte (or a byte-order mark) in its first four bytes, since
    # it opens with "<", a BOM or blanks; no UTF-8 document can, NUL being no XML character.
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head[:4]:
        raise CatalogError("catalog is UTF-16 or UTF-32; only UTF-8 catalogs are read")


class CatalogReader:
    """A catalog read chunk by chunk: memory holds its entries, never its tree or its whole text."""

    def __init__(self) -> None:
        self._parser = _SafeParser()
        self._expat = self._parser.expat
        self._expat.buffer_text = True  # one text event per run of text, not per line or buffer
        self._expat.StartElementHandler = self._start
        self._expat.EndElementHandler = self._end
        self._depth = 0
        self._project: str | None = None
        self._project_text: list[str] | None = None  # the PROJECT metaField's text while it is being read
        self._project_depth = 0
        self._entries: list[CatalogEntry] = []

    def feed(self, chunk: bytes) -> None:
        self._parser.parse(chunk, False)

    def close(self) -> ParsedCatalog:
        self._parser.parse(b"", True)
        return ParsedCatalog(self._project, tuple(self._entries))

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        self._depth += 1
        # The metaField's text is its text before any child, as ElementTree's `.text` was; text elsewhere
        # (the blanks between tens of thousands of entries) is never even handed to Python.
        self._expat.CharacterDataHandler = None
        if name == _ENTRY:
            uri = attrs.get("URI")
            if uri is not None:
                self._entries.append(CatalogEntry(uri=uri, entry_id=attrs.get("ID"), uid=attrs.get("UID"),
                                                  is_dcm_entry=attrs.get(_XSI_TYPE, "").endswith("dcmEntry")))
        elif name == _META_FIELD and attrs.get("name") == "PROJECT":
            self._project_text, self._project_depth = [], self._depth
            self._expat.CharacterDataHandler = self._project_text.append

    def _end(self, name: str) -> None:
        if self._project_text is not None and self._depth == self._project_depth and name == _META_FIELD:
            self._project = "".join(self._project_text).strip() or None  # the last PROJECT wins, as before
            self._project_text = None
            self._expat.CharacterDataHandler = None
        self._depth -= 1


def parse_catalog(data: bytes) -> ParsedCatalog:
    """A whole catalog's project and entries. Raises CatalogError."""
    reader = CatalogReader()
    reader.feed(data)
    return reader.close()


# The start tag of an element, token by token: blanks, a name, `=`, a quoted value. XML allows no `<` in an
# attribute value and no quote of the kind that delimits it, so a quoted value is exactly `"[^"]*"` or
# `'[^']*'`, `>` and `/` inside included. The tokens are one regular expression, so that a tag of ten
# attributes costs one call into `re` rather than a Python loop over its bytes (40,000 entries renamed in
# a fraction of a second); possessive repeats (`*+`) never backtrack into a value. A group inside a repeat
# keeps its last match, which for the URI, ID and name groups is their only one: attributes are unique.
_EQUALS = rb"[ \t\r\n]*+=[ \t\r\n]*+"
_VALUE = rb"(?:\"([^\"]*+)\"|'([^']*+)')"
_START_TAG = re.compile(
    rb"<[^ \t\r\n/>]++(?:[ \t\r\n]++(?:"
    rb"URI" + _EQUALS + _VALUE + rb"|ID" + _EQUALS + _VALUE + rb"|name" + _EQUALS + _VALUE  # groups 1-6
    + rb"|[^ \t\r\n=/>]++" + _EQUALS + rb"(?:\"[^\"]*+\"|'[^']*+')"
    rb"))*+[ \t\r\n]*+(/?)>")  # group 7: "/" for an empty element
_VALUE_GROUPS = ((b"URI", 1), (b"ID", 3), (b"name", 5))


def _start_tag(data: bytes, at: int) -> re.Match[bytes]:
    tag = _START_TAG.match(data, at)
    if tag is None:
        raise CatalogError(f"catalog entry at byte {at} could not be read again")  # expat saw a tag here
    return tag


def _rewritten_values(tag: re.Match[bytes]) -> dict[bytes, tuple[int, int]]:
    """The byte spans (quotes excluded) of a start tag's URI, ID and name values, those it has."""
    spans = {}
    for attribute, group in _VALUE_GROUPS:
        if tag.start(group) >= 0:
            spans[attribute] = tag.span(group)
        elif tag.start(group + 1) >= 0:
            spans[attribute] = tag.span(group + 1)
    return spans


@cache
def _value_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Whatever needs more than encoding: characters to escape; and those XML 1.0 cannot carry at all.

    Compiled at the first rewrite, not at import: their ranges take about 10 ms to compile, which every
    survey (it imports this module to read catalogs, and never rewrites one) would pay at start-up.
    """
    return (re.compile("[&<>\"'\t\n\r]|[^\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"),
            re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"))


# Blanks are written as references: expat (as any XML parser) reads a literal tab or line break in an
# attribute value as a space.
_VALUE_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
_DOUBLE_QUOTED = str.maketrans({**_VALUE_ESCAPES, '"': "&quot;"})
_SINGLE_QUOTED = str.maketrans({**_VALUE_ESCAPES, "'": "&apos;"})


def _attribute_value(value: str, quote: bytes, ascii_only: bool) -> bytes:
    special, not_xml_character = _value_patterns()
    if special.search(value) is not None:
        if not_xml_character.search(value):
            # No name in the message: new names are made of header values.
            raise CatalogError("a new name holds a character an XML catalog cannot carry; catalog not rewritten")
        value = value.translate(_DOUBLE_QUOTED if quote == b'"' else _SINGLE_QUOTED)
    return value.encode("ascii", "xmlcharrefreplace") if ascii_only else value.encode("utf-8")


def _touched_entries(data: bytes, renames: Mapping[str, str], removals: frozenset[str],
                     ) -> tuple[list[tuple[int, str, str | None, str | None]], dict[int, int], bool]:
    """Where the entries named by URI start (with URI, ID and name, unescaped by expat), where the content-bearing
    ones among the removed end (their end tag's offset), and whether the catalog declares US-ASCII."""
    parser = _SafeParser()
    reader = parser.expat
    found: list[tuple[int, str, str | None, str | None]] = []
    end_tags: dict[int, int] = {}
    open_entries: list[int] = []  # start offsets of the entries being read, -1 for those not touched

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == _ENTRY:
            uri = attrs.get("URI")
            if uri is not None and (uri in renames or uri in removals):
                at = reader.CurrentByteIndex
                found.append((at, uri, attrs.get("ID"), attrs.get("name")))
                open_entries.append(at)
            else:
                open_entries.append(-1)

    def end(name: str) -> None:
        if name == _ENTRY and (at := open_entries.pop()) >= 0:
            end_tags[at] = reader.CurrentByteIndex

    reader.StartElementHandler = start
    if removals:  # only a removal needs to know where an entry ends
        reader.EndElementHandler = end
    parser.parse(data, True)
    return found, end_tags, parser.ascii


def rewrite_catalog(data: bytes, renames: Mapping[str, str], removals: frozenset[str]) -> CatalogRewrite:
    """Apply renames (old URI -> new URI) and removals (URI) to a catalog's bytes. Raises CatalogError.

    URIs are as the catalog writes them (relative to its folder, `secondary/x.dcm` possible) and compared
    unescaped. A renamed entry gets the new `URI`, its `ID` follows where it was the old URI (XNAT writes
    ID = URI), its `name` becomes the new base name; a removed entry goes with the blanks before it on its
    line, and with its line when nothing else is left on it. All other bytes stay as they were; with
    nothing to do, the catalog's own bytes come back. A URI both renamed and removed is removed.
    """
    found, end_tags, ascii_only = _touched_entries(data, renames, removals)
    edits: list[tuple[int, int, bytes]] = []
    removed_elements: list[tuple[int, int]] = []
    renamed = 0
    removed_until = -1  # entries nested in a removed entry go with it, uncounted
    written: dict[tuple[str, bytes], bytes] = {}  # the new URI is written twice, as URI and as ID
    for at, uri, entry_id, entry_name in found:
        if at < removed_until:
            continue
        if uri in removals:
            tag = _start_tag(data, at)
            removed_until = tag.end() if tag.group(7) else data.index(b">", end_tags[at]) + 1
            removed_elements.append((at, removed_until))
            continue
        spans = _rewritten_values(_start_tag(data, at))
        if b"URI" not in spans:
            raise CatalogError(f"catalog entry at byte {at} could not be read again")
        new_uri = renames[uri]
        new_name = new_uri.rsplit("/", 1)[-1]
        # A value already as wanted keeps its bytes (a rename to the same URI changes nothing).
        for attribute, value in ((b"URI", new_uri if new_uri != uri else None),
                                 (b"ID", new_uri if entry_id == uri != new_uri else None),
                                 (b"name", new_name if entry_name != new_name else None)):
            span = spans.get(attribute)
            if span is not None and value is not None:
                key = (value, data[span[0] - 1:span[0]])  # the value, and the quote it goes between
                if (escaped := written.get(key)) is None:
                    escaped = written[key] = _attribute_value(value, key[1], ascii_only)
                edits.append((span[0], span[1], escaped))
        renamed += 1
    edits += ((start, end, b"") for start, end in _removal_spans(data, removed_elements))
    if not edits:
        return CatalogRewrite(data, renamed, 0)
    edits.sort(key=lambda edit: edit[0])
    pieces: list[bytes] = []
    done = 0
    for start, end, replacement in edits:
        pieces += (data[done:start], replacement)
        done = end
    pieces.append(data[done:])
    return CatalogRewrite(b"".join(pieces), renamed, len(removed_elements))


def _removal_spans(data: bytes, elements: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The bytes to drop for removed elements (in document order): each with the blanks before it on its line,
    or the whole of the lines they are on when nothing but blanks would be left there (no blank line left)."""
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(elements):
        # The removed elements on the lines of this one (an entry with content may span several lines).
        line_start = data.rfind(b"\n", 0, elements[i][0]) + 1
        j = i
        line_end = _line_end(data, elements[j][1])
        while j + 1 < len(elements) and elements[j + 1][0] < line_end:
            j += 1
            line_end = _line_end(data, elements[j][1])
        group = elements[i:j + 1]
        kept = [data[line_start:group[0][0]], data[group[-1][1]:line_end],
                *(data[a[1]:b[0]] for a, b in pairwise(group))]
        if not any(part.strip(b" \t\r") for part in kept):
            if line_end < len(data):
                spans.append((line_start, line_end + 1))  # the line and its line break
            else:
                # The last line, and the line break before it (unless an earlier span took that).
                spans.append((max(line_start - 1, spans[-1][1] if spans else 0), line_end))
        else:
            floor = line_start
            for start, end in group:
                spans.append((_blanks_before(data, start, floor), end))
                floor = end
        i = j + 1
    return spans


def _line_end(data: bytes, position: int) -> int:
    end = data.find(b"\n", position)
    return len(data) if end < 0 else end


def _blanks_before(data: bytes, position: int, floor: int) -> int:
    while position > floor and data[position - 1] in b" \t":
        position -= 1
    return position


def rewrite_entries(text: str, renames: Mapping[str, str], removals: frozenset[str]) -> tuple[str, int, int]:
    """`rewrite_catalog` on a catalog's text: the new text and the numbers of entries renamed and removed.

    Kept for callers that hold text (mitigation.filesystem); a base name is the URI of a file directly in
    the catalog's folder, so old callers that pass base names (old name -> new name) mean the same thing.
    """
    result = rewrite_catalog(text.encode("utf-8"), renames, removals)
    return result.data.decode("utf-8"), result.renamed, result.removed
