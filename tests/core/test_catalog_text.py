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
