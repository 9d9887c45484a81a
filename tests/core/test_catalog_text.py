"""Rewriting a catalog's entries in its own text: exactly the named entries change, byte for byte."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html import escape

from hypothesis import given, settings
from hypothesis import strategies as st

from container_app.core.catalog_text import rewrite_entries
from container_app.survey.catalog import CATALOG_NS

#: File names as archives hold them, including characters XML must escape and names inside other names.
NAMES = st.text(alphabet=st.sampled_from("ab.-_&'\"<>é1"), min_size=1, max_size=8)


def catalog(names: list[str], quotes: list[str]) -> str:
    entries = []
    for name, quote in zip(names, quotes, strict=True):
        uri = escape(name, quote=True)
        entries.append(f'    <cat:entry UID="1.2.{len(entries)}" xsi:type="cat:dcmEntry" URI={quote}{uri}{quote} '
                       f'name={quote}{uri}{quote} ID={quote}{uri}{quote}/>')
    body = "\n".join(entries)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<cat:DCMCatalog xmlns:cat="{CATALOG_NS}" '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n  <cat:entries>\n{body}\n'
            "  </cat:entries>\n</cat:DCMCatalog>\n")


def uris(text: str) -> list[tuple[str | None, str | None, str | None]]:
    root = ET.fromstring(text)
    return [(e.get("URI"), e.get("ID"), e.get("name")) for e in root.iter(f"{{{CATALOG_NS}}}entry")]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), names=st.lists(NAMES, min_size=1, max_size=12, unique=True))
def test_only_the_named_entries_change(data: st.DataObject, names: list[str]) -> None:
    quotes = data.draw(st.lists(st.sampled_from(['"', "'"]), min_size=len(names), max_size=len(names)))
    text = catalog(names, quotes)
    removals = frozenset(data.draw(st.lists(st.sampled_from(names), unique=True)))
    rest = [n for n in names if n not in removals]
    renamed_from = data.draw(st.lists(st.sampled_from(rest), unique=True)) if rest else []
    renames = {old: f"new-{i}.dcm" for i, old in enumerate(renamed_from)}

    new_text, renamed, removed = rewrite_entries(text, renames, removals)

    assert (renamed, removed) == (len(renames), len(removals))
    expected = [(renames.get(n, n),) * 3 for n in names if n not in removals]
    assert uris(new_text) == expected
    if not renames and not removals:
        assert new_text == text
    # Entries not named keep their exact text.
    kept_lines = [line for line, n in zip(text.splitlines()[3:-2], names, strict=True)
                  if n not in removals and n not in renames]
    for line in kept_lines:
        assert line in new_text.splitlines()


@settings(max_examples=50, deadline=None)
@given(names=st.lists(NAMES, min_size=0, max_size=12, unique=True), project=st.text(alphabet="AB_1 ", max_size=6))
def test_small_and_large_catalogs_read_alike(names: list[str], project: str) -> None:
    """Parsed whole (small catalogs) or streamed (large ones): the same project and entries."""
    import tempfile
    from unittest import mock

    from container_app.survey import catalog as module

    text = catalog(names, ['"'] * len(names)).replace(
        "<cat:entries>", f'<cat:metaFields><cat:metaField name="PROJECT">{escape(project)}</cat:metaField>'
                         "</cat:metaFields>\n  <cat:entries>")
    with tempfile.NamedTemporaryFile("w", suffix="_catalog.xml", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        whole = module.read_catalog(handle.name)
        with mock.patch.object(module, "WHOLE_PARSE_BYTES", 0):
            streamed = module.read_catalog(handle.name)
    assert whole == streamed
    assert [e.uri for e in whole[1]] == names
    assert whole[0] == (project.strip() or None)


def reference_rewrite(text: str, renames: dict[str, str], removals: frozenset[str]) -> tuple[str, int, int]:
    """Every entry parsed, no shortcut: what rewrite_entries must equal."""
    import re

    from container_app.core import catalog_text as module

    counts = [0, 0]

    def replace(match: re.Match[str]) -> str:
        element = match.group(0)
        uri = module._attribute(match.group("attrs"), "URI")
        if uri in removals:
            counts[1] += 1
            return ""
        if uri is not None and uri in renames:
            counts[0] += 1
            new = renames[uri]
            directory = uri.rsplit("/", 1)[0] + "/" if "/" in uri else ""
            for attribute, value in (("URI", directory + new), ("ID", directory + new), ("name", new)):
                element = module._set_attribute(element, attribute, value)
        return element

    new_text = module._ENTRY_ELEMENT.sub(replace, text)
    new_text = re.sub(r"\n[ \t]*(?=\n)", "", new_text) if counts[1] else new_text
    return new_text, counts[0], counts[1]


ENTRY_FORMS = st.sampled_from([
    '<cat:entry URI={q}{uri}{q} ID={q}{uri}{q} name={q}{uri}{q}/>',
    '<cat:entry ID={q}x-{uri}{q} URI={q}sub/{uri}{q}/>',
    '<cat:entry URI={q}{uri}{q}><cat:metaField name="note">{uri}</cat:metaField></cat:entry>',
    '<cat:entry name={q}{uri}{q}/>',  # no URI: never changed
    '<cat:metaField name="x">{uri}</cat:metaField>',  # not an entry
])


@settings(max_examples=400, deadline=None)
@given(data=st.data(), names=st.lists(NAMES, min_size=1, max_size=10, unique=True))
def test_the_shortcut_changes_what_parsing_every_entry_changes(data: st.DataObject, names: list[str]) -> None:
    lines = []
    for name in names:
        form = data.draw(ENTRY_FORMS)
        quote = data.draw(st.sampled_from(['"', "'"]))
        lines.append("    " + form.format(q=quote, uri=escape(name, quote=True)))
    text = catalog([], []).replace("<cat:entries>\n", "<cat:entries>\n" + "\n".join(lines) + "\n")
    uris = names + [f"sub/{n}" for n in names]
    removals = frozenset(data.draw(st.lists(st.sampled_from(uris), unique=True, max_size=4)))
    renames = {u: f"new{i}&'.dcm" for i, u in enumerate(data.draw(st.lists(st.sampled_from(uris), unique=True,
                                                                              max_size=4))) if u not in removals}
    assert rewrite_entries(text, renames, removals) == reference_rewrite(text, renames, removals)


def test_an_attribute_value_that_looks_like_an_attribute_is_not_one() -> None:
    """`note='x URI="a.dcm"'` before the real URI: only the real one is read and rewritten."""
    text = catalog([], []).replace(
        "<cat:entries>\n",
        "<cat:entries>\n"
        """    <cat:entry note='x URI="a.dcm" ID="a.dcm"' URI="b.dcm" ID="b.dcm" name="b.dcm"/>\n"""
        """    <cat:entry note='y URI="b.dcm"' URI="a.dcm" ID="a.dcm" name="a.dcm"/>\n""")
    new_text, renamed, removed = rewrite_entries(text, {"b.dcm": "c.dcm"}, frozenset())
    assert (renamed, removed) == (1, 0)
    assert uris(new_text) == [("c.dcm", "c.dcm", "c.dcm"), ("a.dcm", "a.dcm", "a.dcm")]
    assert """note='x URI="a.dcm" ID="a.dcm"'""" in new_text and """note='y URI="b.dcm"'""" in new_text
