"""The JSON reports' layout: the envelope indented, one resource per line, the same text whether a
report is streamed (the survey's) or serialised whole (the mitigation's)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from container_app.reports.envelope import (
    MITIGATION_LAYOUT,
    SURVEY_LAYOUT,
    EnvelopeLayout,
    EnvelopeWriter,
    compact_json,
    envelope_text,
)

DOCUMENT: dict[str, Any] = {"reportType": "mitigation", "tool": {"name": "x", "version": "1"},
                            "root": "/in\u00e9", "resources": [{"path": "a", "n": [1, 2]}, {"path": "b\udcff"}],
                            "totals": {"resources": 2}}


def test_mitigation_layout_is_an_indented_envelope_with_one_resource_per_line() -> None:
    text = envelope_text(DOCUMENT, MITIGATION_LAYOUT)
    assert text == (
        '{\n "reportType": "mitigation",\n "tool": {\n  "name": "x",\n  "version": "1"\n },\n'
        ' "root": "/in\u00e9",\n "resources": [\n'
        '  {"path":"a","n":[1,2]},\n  {"path":"b\udcff"}\n ],\n'
        ' "totals": {\n  "resources": 2\n }\n}\n')
    assert json.loads(text) == DOCUMENT


@pytest.mark.parametrize("layout", [SURVEY_LAYOUT, MITIGATION_LAYOUT], ids=["survey", "mitigation"])
@pytest.mark.parametrize("document", [
    DOCUMENT,
    {**DOCUMENT, "resources": []},
    {"resources": [{"p": 1}]},
    {"a": 1, "resources": []},
    {"a": 1, "resources": [{"p": 1}], "b": {"c": [1]}, "d": None},
], ids=["full", "no-resources", "only-resources", "resources-last", "fields-after"])
def test_streamed_and_whole_documents_parse_back(layout: EnvelopeLayout, document: dict[str, Any]) -> None:
    text = envelope_text(document, layout)
    assert json.loads(text) == document and text.endswith("}\n")
    resource_lines = [line.removesuffix(",") for line in text.split("\n") if line.lstrip().startswith('{"')]
    assert resource_lines == [layout.resource_indent + compact_json(r) for r in document["resources"]]


def test_empty_lists_keep_each_reports_layout() -> None:
    assert '"resources": []\n' in envelope_text({"a": 1, "resources": []}, MITIGATION_LAYOUT)
    assert '"resources": [\n\n ]\n' in envelope_text({"a": 1, "resources": []}, SURVEY_LAYOUT)


def test_a_document_without_a_list_of_resources_is_indented_whole() -> None:
    assert envelope_text({"a": 1, "resources": "x"}, MITIGATION_LAYOUT) == '{\n "a": 1,\n "resources": "x"\n}\n'
    assert envelope_text([1], MITIGATION_LAYOUT) == "[\n 1\n]\n"


def test_the_writer_streams_what_envelope_text_writes() -> None:
    out = io.StringIO()
    writer = EnvelopeWriter(out, {k: DOCUMENT[k] for k in ("reportType", "tool", "root")}, SURVEY_LAYOUT)
    for resource in DOCUMENT["resources"]:
        writer.add(compact_json(resource))
    assert writer.resources_written == 2
    writer.close({"totals": DOCUMENT["totals"]})
    assert out.getvalue() == envelope_text(DOCUMENT, SURVEY_LAYOUT)
