"""Reading and rewriting catalogs as bytes (core.catalog_text): exactly the named entries change, byte for byte.

The regression at the root of this file: a legal `>` inside an attribute value (`description="TR>2000"`)
made the old regular-expression rewrite cut the entry short, dropping or keeping the wrong entries.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_app.core.catalog_text import (
    CATALOG_NS,
    CatalogReader,
    parse_catalog,
    rewrite_catalog,
    rewrite_entries,
)
from container_app.core.errors import CatalogError, FileProblem
from container_app.core.records import CatalogEntry
from container_app.demo.catalogs import CatalogEntrySpec, catalog_xml

HEAD = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<cat:DCMCatalog xmlns:cat="http://nrg.wustl.edu/catalog" '
        b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        b'<cat:metaFields>\n\t<cat:metaField name="PROJECT">P1</cat:metaField>\n</cat:metaFields>\n'
        b"<cat:entries>\n")
TAIL = b"</cat:entries>\n</cat:DCMCatalog>\n"

A = b'\t<cat:entry ID="a.dcm" URI="a.dcm" digest="1" xsi:type="cat:dcmEntry"/>\n'
TR = b'\t<cat:entry ID="tr.dcm" URI="tr.dcm" description="TR>2000" xsi:type="cat:dcmEntry"/>\n'
B = b'\t<cat:entry ID="b.dcm" URI="b.dcm" digest="2" xsi:type="cat:dcmEntry"/>\n'
TR_CATALOG = HEAD + A + TR + B + TAIL


def uris(data: bytes) -> list[str]:
    return [e.uri for e in parse_catalog(data).entries]


# --- the `TR>2000` case: renames and removals of that entry and of its neighbours, byte for byte


@pytest.mark.parametrize(("renames", "removals", "expected"), [
    ({"tr.dcm": "TR.dcm"}, frozenset(),
     HEAD + A + TR.replace(b'"tr.dcm"', b'"TR.dcm"') + B + TAIL),
    ({}, frozenset({"tr.dcm"}), HEAD + A + B + TAIL),
    ({}, frozenset({"a.dcm"}), HEAD + TR + B + TAIL),
    ({}, frozenset({"b.dcm"}), HEAD + A + TR + TAIL),
    ({}, frozenset({"a.dcm", "b.dcm"}), HEAD + TR + TAIL),
    ({"a.dcm": "A.dcm", "b.dcm": "B.dcm"}, frozenset(),
     HEAD + A.replace(b'"a.dcm"', b'"A.dcm"') + TR + B.replace(b'"b.dcm"', b'"B.dcm"') + TAIL),
    ({"b.dcm": "B.dcm"}, frozenset({"tr.dcm"}), HEAD + A + B.replace(b'"b.dcm"', b'"B.dcm"') + TAIL),
    ({"tr.dcm": "TR.dcm"}, frozenset({"a.dcm", "b.dcm"}), HEAD + TR.replace(b'"tr.dcm"', b'"TR.dcm"') + TAIL),
    ({}, frozenset({"a.dcm", "tr.dcm", "b.dcm"}), HEAD + TAIL),
])
def test_a_greater_than_sign_in_a_value_is_data(renames: dict[str, str], removals: frozenset[str],
                                                 expected: bytes) -> None:
    result = rewrite_catalog(TR_CATALOG, renames, removals)
    assert result.data == expected
    assert (result.renamed, result.removed) == (len(renames), len(removals))


def test_nothing_to_do_gives_back_the_same_bytes() -> None:
    assert rewrite_catalog(TR_CATALOG, {}, frozenset()).data is TR_CATALOG
    assert rewrite_catalog(TR_CATALOG, {"not-there.dcm": "x.dcm"}, frozenset({"nor.dcm"})).data is TR_CATALOG
    assert rewrite_catalog(TR_CATALOG, {"a.dcm": "a.dcm"}, frozenset()).data == TR_CATALOG


def test_quotes_and_markup_inside_values() -> None:
    entries = (b"""\t<cat:entry note='x URI="a.dcm" />' URI='a.dcm' ID="a.dcm" name='a.dcm'/>\n"""
               b"""\t<cat:entry URI = "b.dcm"\n\t\tnote="/>" ID='b.dcm'></cat:entry>\n""")
    data = HEAD + entries + TAIL
    result = rewrite_catalog(data, {"a.dcm": "it's \"1\" <&>.dcm", "b.dcm": "it's \"2\".dcm"}, frozenset())
    assert result.data == HEAD + (
        b"""\t<cat:entry note='x URI="a.dcm" />' URI='it&apos;s "1" &lt;&amp;&gt;.dcm' """
        b"""ID="it's &quot;1&quot; &lt;&amp;&gt;.dcm" name='it&apos;s "1" &lt;&amp;&gt;.dcm'/>\n"""
        b"""\t<cat:entry URI = "it's &quot;2&quot;.dcm"\n\t\tnote="/>" ID='it&apos;s "2".dcm'></cat:entry>\n"""
    ) + TAIL
    assert uris(result.data) == ["it's \"1\" <&>.dcm", "it's \"2\".dcm"]
    removed = rewrite_catalog(data, {}, frozenset({"b.dcm"}))
    assert removed.data == HEAD + entries.split(b"\n")[0] + b"\n" + TAIL


def test_uris_are_compared_unescaped() -> None:
    entry = b'\t<cat:entry URI="&#x41;&amp;&quot;b.dcm" ID="&#65;&amp;&quot;b.dcm" name="other"/>\n'
    data = HEAD + entry + TAIL
    assert uris(data) == ['A&"b.dcm']
    result = rewrite_catalog(data, {'A&"b.dcm': "c\td\n.dcm"}, frozenset())
    new = b"c&#9;d&#10;.dcm"
    assert result.data == HEAD + b'\t<cat:entry URI="%s" ID="%s" name="%s"/>\n' % (new, new, new) + TAIL
    assert uris(result.data) == ["c\td\n.dcm"]  # blanks written as references survive normalisation
    assert rewrite_catalog(data, {}, frozenset({'A&"b.dcm'})).data == HEAD + TAIL


def test_an_id_other_than_the_uri_is_kept() -> None:
    data = HEAD + b'\t<cat:entry ID="x-1" URI="secondary/a.dcm" name="a.dcm"/>\n' + TAIL
    result = rewrite_catalog(data, {"secondary/a.dcm": "secondary/b.dcm"}, frozenset())
    assert result.data == HEAD + b'\t<cat:entry ID="x-1" URI="secondary/b.dcm" name="b.dcm"/>\n' + TAIL


def test_entries_in_a_subfolder_are_named_by_their_relative_uri() -> None:
    data = HEAD + b'\t<cat:entry ID="secondary/x.dcm" URI="secondary/x.dcm"/>\n\t<cat:entry URI="x.dcm"/>\n' + TAIL
    result = rewrite_catalog(data, {"secondary/x.dcm": "secondary/y.dcm"}, frozenset({"x.dcm"}))
    assert result.data == HEAD + b'\t<cat:entry ID="secondary/y.dcm" URI="secondary/y.dcm"/>\n' + TAIL
    assert (result.renamed, result.removed) == (1, 1)


@pytest.mark.parametrize(("root", "prefix"), [
    (b'<c:Catalog xmlns:c="http://nrg.wustl.edu/catalog"><c:entries>{entries}</c:entries></c:Catalog>', b"c:"),
    (b'<Catalog xmlns="http://nrg.wustl.edu/catalog"><entries>{entries}</entries></Catalog>', b""),
    (b'<x:Catalog xmlns:x="urn:other" xmlns:cat="http://nrg.wustl.edu/catalog"><cat:entries>{entries}'
     b"</cat:entries></x:Catalog>", b"cat:"),
])
def test_any_prefix_or_the_default_namespace(root: bytes, prefix: bytes) -> None:
    entry_a, entry_b = (b"\n  <" + prefix + b'entry URI="%s.dcm"/>' % name for name in (b"a", b"b"))
    data = root.replace(b"{entries}", entry_a + entry_b + b"\n")
    assert uris(data) == ["a.dcm", "b.dcm"]
    result = rewrite_catalog(data, {"b.dcm": "c.dcm"}, frozenset({"a.dcm"}))
    assert result.data == root.replace(b"{entries}", entry_b.replace(b"b.dcm", b"c.dcm") + b"\n")
    # Elements of that local name in another namespace, or none, are not entries.
    other = root.replace(b"{entries}", b'<entry xmlns="" URI="a.dcm"/><o:entry xmlns:o="urn:o" URI="b.dcm"/>')
    assert uris(other) == []


def test_elements_that_only_look_like_entries_are_not_entries() -> None:
    entries = (b'\t<!-- <cat:entry URI="a.dcm"/> -->\n\t<other:entry xmlns:other="urn:x" URI="a.dcm"/>\n'
               b'\t<cat:metaField name="a.dcm"><![CDATA[<cat:entry URI="a.dcm"/>]]></cat:metaField>\n'
               b'\t<cat:entry URI="a.dcm"/>\n')
    data = HEAD + entries + TAIL
    assert uris(data) == ["a.dcm"]
    result = rewrite_catalog(data, {}, frozenset({"a.dcm"}))
    assert result.data == HEAD + entries.rsplit(b"\t<cat:entry", 1)[0] + TAIL


def test_removing_content_bearing_entries_and_entries_sharing_a_line() -> None:
    entries = (b'\t<cat:entry URI="a.dcm">\n\t\t<cat:metaField name="k">a</cat:metaField>\n\t</cat:entry >\n'
               b'\t<cat:entry URI="b.dcm"/> <cat:entry URI="c.dcm"/>\r\n'
               b'\t<cat:entry URI="d.dcm"/><cat:entry URI="e.dcm"/>\n')
    data = HEAD + entries + TAIL
    assert rewrite_catalog(data, {}, frozenset({"a.dcm"})).data == HEAD + entries.split(b"</cat:entry >\n")[1] + TAIL
    assert rewrite_catalog(data, {}, frozenset({"c.dcm"})).data == data.replace(b' <cat:entry URI="c.dcm"/>', b"")
    assert rewrite_catalog(data, {}, frozenset({"b.dcm"})).data == data.replace(b'\t<cat:entry URI="b.dcm"/>', b"")
    # Both entries of a line gone: the line goes, its CR LF included; no blank line is left.
    both = rewrite_catalog(data, {}, frozenset({"b.dcm", "c.dcm", "d.dcm", "e.dcm"})).data
    assert both == HEAD + entries.split(b"</cat:entry >\n")[0] + b"</cat:entry >\n" + TAIL
    # An entry inside a removed entry goes with it.
    nested = HEAD + b'\t<cat:entry URI="a.dcm"><cat:entry URI="b.dcm"/></cat:entry>\n' + TAIL
    assert rewrite_catalog(nested, {"b.dcm": "x.dcm"}, frozenset({"a.dcm"})).data == HEAD + TAIL


def test_a_blank_line_already_there_stays() -> None:
    data = HEAD + A + b"\n" + B + TAIL
    assert rewrite_catalog(data, {}, frozenset({"a.dcm"})).data == HEAD + b"\n" + B + TAIL


# --- what is refused


BILLION_LAUGHS = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
                  + b"".join(b' <!ENTITY lol%d "%s">\n' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
                             for i in range(1, 10))
                  + b']>\n<cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog"><cat:entries>'
                  b'<cat:entry URI="&lol9;"/></cat:entries></cat:Catalog>')


@pytest.mark.parametrize(("data", "message"), [
    (BILLION_LAUGHS, "DOCTYPE"),
    (b'<!DOCTYPE cat:Catalog SYSTEM "http://example.org/x.dtd">\n<cat:Catalog/>', "DOCTYPE"),
    (b'<!DOCTYPE x><cat:Catalog xmlns:cat="http://nrg.wustl.edu/catalog"/>', "DOCTYPE"),
    (HEAD + b'\t<cat:entry URI="a.dcm">\n' + TAIL, "not well-formed XML (mismatched tag: line 8, column 2)"),
    (HEAD + b'\t<cat:entry URI="a&b.dcm"/>\n' + TAIL, "not well-formed XML (not well-formed (invalid token): line 7"),
    (HEAD + b'\t<cat:entry URI="&nbsp;"/>\n' + TAIL, "undefined entity: line 7"),
    (HEAD + b'\t<cat:entry URI="a.dcm" URI="b.dcm"/>\n' + TAIL, "duplicate attribute: line 7"),
    (HEAD + b'\t<x:entry URI="a.dcm"/>\n' + TAIL, "unbound prefix: line 7"),
    (HEAD, "no element found"),
    (b"", "no element found: line 1"),
    (TR_CATALOG.decode().encode("utf-16"), "UTF-16"),
    (TR_CATALOG.decode().encode("utf-16-le"), "UTF-16"),
    (TR_CATALOG.replace(b"UTF-8", b"ISO-8859-1"), "encoding 'ISO-8859-1'"),
])
def test_refused(data: bytes, message: str) -> None:
    for attempt in (lambda: parse_catalog(data), lambda: rewrite_catalog(data, {"a.dcm": "b.dcm"}, frozenset())):
        with pytest.raises(CatalogError, match=re.escape(message)):
            attempt()
    assert issubclass(CatalogError, FileProblem)  # a mitigation reports it for the one catalog and goes on


def test_a_new_name_xml_cannot_carry_is_refused_without_the_name() -> None:
    with pytest.raises(CatalogError, match="cannot carry") as raised:
        rewrite_catalog(TR_CATALOG, {"a.dcm": "SMITH^JOHN\x01.dcm"}, frozenset())
    assert "SMITH" not in str(raised.value)


def test_an_ascii_catalog_gets_character_references() -> None:
    data = TR_CATALOG.replace(b'encoding="UTF-8"', b'encoding="US-ASCII"')
    result = rewrite_catalog(data, {"a.dcm": "é.dcm"}, frozenset())
    assert b'URI="&#233;.dcm"' in result.data and result.data.isascii()
    assert uris(result.data)[0] == "é.dcm"


def test_utf8_catalogs_with_a_byte_order_mark_and_other_characters() -> None:
    data = b"\xef\xbb\xbf" + HEAD + '\t<cat:entry URI="é€𝄞.dcm" ID="é€𝄞.dcm"/>\n'.encode() + TAIL
    result = rewrite_catalog(data, {"é€𝄞.dcm": "ü.dcm"}, frozenset())
    assert result.data == data.replace("é€𝄞".encode(), "ü".encode())


# --- real catalogs


def test_a_catalog_as_the_demo_writes_it() -> None:
    specs = [CatalogEntrySpec(name=f"IM{i}.dcm", digest=f"d{i}", format="DICOM", dcm=True, uid=f"1.2.{i}",
                              instance_number=str(i)) for i in range(5)]
    text = catalog_xml(specs, project="Proj & Co", dicom=True, catalog_uid="1.2.3")
    data = text.encode()
    parsed = parse_catalog(data)
    assert parsed.project == "Proj & Co"
    assert parsed.entries[0] == CatalogEntry(uri="IM0.dcm", entry_id="IM0.dcm", uid="1.2.0", is_dcm_entry=True)
    new_text, renamed, removed = rewrite_entries(text, {"IM1.dcm": "MR.1.dcm"}, frozenset({"IM3.dcm"}))
    assert (renamed, removed) == (1, 1)
    lines = text.splitlines(keepends=True)
    expected = [line.replace('"IM1.dcm"', '"MR.1.dcm"') for line in lines if 'URI="IM3.dcm"' not in line]
    assert new_text == "".join(expected)


def test_xnats_scan5_catalog(conformance: Path) -> None:
    data = (conformance / "xnat-scan5-duplicates" / "scan_5_catalog.xml").read_bytes()
    parsed = parse_catalog(data)
    assert parsed.project == "Test" and len(parsed.entries) == 65
    assert all(e.is_dcm_entry and e.uid and e.entry_id == e.uri for e in parsed.entries)
    names = [e.uri for e in parsed.entries]
    renames = {n: f"renamed-{i}.dcm" for i, n in enumerate(names[::2])}
    removals = frozenset(names[1::4])
    result = rewrite_catalog(data, renames, removals)
    assert (result.renamed, result.removed) == (len(renames), len(removals))
    expected = []
    for line in data.split(b"\n"):
        uri = next((n for n in names if f'URI="{n}"'.encode() in line), None)
        if uri in removals:
            continue
        if uri in renames:
            line = line.replace(f'"{uri}"'.encode(), f'"{renames[uri]}"'.encode())
        expected.append(line)
    assert result.data == b"\n".join(expected)


def test_forty_thousand_renames_in_one_catalog() -> None:
    """Every entry of a large resource renamed, each exactly once (its speed is the benchmarks' business)."""
    specs = [CatalogEntrySpec(name=f"1.2.276.0.7230010.{i}.dcm", digest="45c333ab0b01d9f704071d36634f3004",
                              format="DICOM", dcm=True, uid=f"1.2.840.{i}", instance_number=str(i))
             for i in range(40_000)]
    data = catalog_xml(specs, project="P", dicom=True).encode()
    renames = {s.name: f"MR.{i:06d}.dcm" for i, s in enumerate(specs)}
    result = rewrite_catalog(data, renames, frozenset())
    assert result.renamed == 40_000 and uris(result.data) == list(renames.values())


# --- the property: for any URIs, renames and removals, exactly the expected entries remain

URI_TEXT = st.text(alphabet=st.sampled_from("ab.-_&'\"<>/é€ 1\t\n"), min_size=1, max_size=8)
NEW_URI_TEXT = st.text(alphabet=st.sampled_from("xy.&'\"<>/ü 2\t\n\r"), min_size=1, max_size=8)


def written(value: str, quote: str, references: bool) -> str:
    """An attribute value as a catalog may spell it: escaped for its quote, letters maybe as references."""
    spelled = {"&": "&amp;", "<": "&lt;", ">": "&gt;", quote: f"&#{ord(quote)};", "\t": "&#9;", "\n": "&#xA;",
               "\r": "&#13;", **({"a": "&#x61;", "b": "&#98;"} if references else {})}
    return "".join(spelled.get(c, c) for c in value)


@st.composite
def catalogs(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, str | None, str | None]], str]:
    uris_ = draw(st.lists(URI_TEXT, min_size=0, max_size=10, unique=True))
    prefix = draw(st.sampled_from(["cat:", "c:", ""]))
    lines = []
    model: list[tuple[str, str | None, str | None]] = []
    for uri in uris_:
        quote = draw(st.sampled_from(['"', "'"]))
        refs = draw(st.booleans())
        form = draw(st.sampled_from(["xnat", "other-id", "named", "content", "extra"]))
        q = quote
        value = f"{q}{written(uri, q, refs)}{q}"
        entry_id = uri if form != "other-id" else "x" + uri
        name = uri.rsplit("/", 1)[-1] if form == "named" else None
        attrs = f"ID={q}{written(entry_id, q, refs)}{q} URI={value}"
        if name is not None:
            attrs += f" name={q}{written(name, q, False)}{q}"
        if form == "extra":
            attrs = f"note={q}TR>2000 /> URI=&quot;{written(uri, q, False)}&quot;{q} " + attrs
        element = (f"<{prefix}entry {attrs}><{prefix}metaField name='k'>{written(uri, q, False)}</{prefix}metaField>"
                   f"</{prefix}entry>" if form == "content" else f"<{prefix}entry {attrs} xsi:type='cat:dcmEntry'/>")
        lines.append("\t" + element)
        model.append((uri, entry_id, name))
        if draw(st.booleans()):
            lines.append(f"\t<{prefix}metaField name={q}{written(uri, q, False)}{q}/>")  # no entry
    ns = f'xmlns:{prefix[:-1]}="{CATALOG_NS}"' if prefix else f'xmlns="{CATALOG_NS}"'
    text = (f'<?xml version="1.0" encoding="UTF-8"?>\n<{prefix}Catalog {ns} '
            f'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n<{prefix}entries>\n'
            + "".join(line + "\n" for line in lines) + f"</{prefix}entries>\n</{prefix}Catalog>\n")
    return text.encode(), model, prefix


def entries_of(data: bytes) -> list[tuple[str | None, str | None, str | None]]:
    """(URI, ID, name) of every entry, read by ElementTree: an independent parser."""
    return [(e.get("URI"), e.get("ID"), e.get("name")) for e in ET.fromstring(data).iter(f"{{{CATALOG_NS}}}entry")]


@settings(max_examples=400, deadline=None)
@given(data=st.data(), catalog=catalogs())
def test_exactly_the_expected_entries_remain(data: st.DataObject,
                                             catalog: tuple[bytes, list[tuple[str, str | None, str | None]], str],
                                             ) -> None:
    document, model, _prefix = catalog
    known = [uri for uri, _, _ in model]
    candidates = st.sampled_from([*known, "absent.dcm"]) if known else st.just("absent.dcm")
    removals = frozenset(data.draw(st.lists(candidates, unique=True, max_size=4)))
    renames = {old: data.draw(NEW_URI_TEXT) for old in data.draw(st.lists(candidates, unique=True, max_size=4))}

    result = rewrite_catalog(document, renames, removals)

    expected = []
    for uri, entry_id, name in model:
        if uri in removals:
            continue
        new = renames.get(uri, uri)
        expected.append((new, new if entry_id == uri else entry_id, None if name is None else new.rsplit("/", 1)[-1]))
    assert entries_of(result.data) == expected
    assert [(e.uri, e.entry_id) for e in parse_catalog(result.data).entries] == [(u, i) for u, i, _ in expected]
    assert result.removed == len(removals & set(known))
    assert result.renamed == len((set(renames) - removals) & set(known))
    assert b"\n\n" not in result.data  # no blank line left behind
    if not removals & set(known) and all(renames[u] == u for u in set(renames) & set(known)):
        assert result.data == document
    # Entries not named keep their exact bytes.
    for line, (uri, _, _) in zip([ln for ln in document.split(b"\n") if b"entry " in ln], model, strict=True):
        if uri not in removals and uri not in renames:
            assert line in result.data.split(b"\n")


@settings(max_examples=100, deadline=None)
@given(catalog=catalogs(), cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=6))
def test_fed_in_any_pieces_a_catalog_reads_the_same(catalog: tuple[bytes, list[tuple[str, str | None, str | None]],
                                                                    str], cuts: list[int]) -> None:
    document = catalog[0]
    reader = CatalogReader()
    at = 0
    for cut in sorted(c % (len(document) + 1) for c in cuts):  # cuts fall inside tokens and UTF-8 characters
        reader.feed(document[at:cut])
        at = cut
    reader.feed(document[at:])
    assert reader.close() == parse_catalog(document)
    assert [e.uri for e in parse_catalog(document).entries] == [uri for uri, _, _ in catalog[1]]
