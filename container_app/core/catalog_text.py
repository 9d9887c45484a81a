"""Rewriting an XNAT resource catalog's entries in its own text, without losing anything.

Rewrites work on the document's text, entry by entry, so namespaces, prefixes, metaFields, digests,
attribute order and formatting stay exactly as XNAT wrote them. Pure: text in, text out.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Mapping
from html import escape, unescape

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


