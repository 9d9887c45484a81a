"""The layout of the JSON reports: the envelope indented, then `resources` with one resource per line.

One line per resource lets the C encoder write each (an indented dump runs in Python, seconds for a
project), lets a writer stream resources without holding them, and keeps the file readable line by line.
The survey report is streamed with `EnvelopeWriter`; a document already in memory (the mitigation
report) is serialised by `envelope_text` through the same writer, so both files share one layout.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any


@dataclass(frozen=True, slots=True)
class EnvelopeLayout:
    """Where the two reports' layouts differ; kept so each report's bytes stay as they always were."""

    resource_indent: str  # before each resource line
    break_when_empty: bool  # an empty list as "[\n\n ]" rather than "[]"


SURVEY_LAYOUT = EnvelopeLayout(resource_indent="", break_when_empty=True)
MITIGATION_LAYOUT = EnvelopeLayout(resource_indent="  ", break_when_empty=False)


def compact_json(value: Any) -> str:
    """One resource's line. dumps, not dump: only dumps takes the C encoder for the whole value."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class EnvelopeWriter:
    """Writes `{head..., "resources": [one per line], tail...}` to a text handle, resource by resource."""

    def __init__(self, handle: IO[str], head: Mapping[str, Any], layout: EnvelopeLayout) -> None:
        self._handle = handle
        self._layout = layout
        self.resources_written = 0
        if head:
            text = json.dumps(dict(head), ensure_ascii=False, indent=1)
            # The envelope so far, its closing brace dropped so `resources` can follow.
            handle.write(text[: text.rstrip().rfind("}")].rstrip() + ',\n "resources": [')
        else:
            handle.write('{\n "resources": [')
        if layout.break_when_empty:
            handle.write("\n")

    def add(self, *resource_json: str) -> None:
        """Write one resource, given as compact JSON text (`compact_json`), perhaps in pieces to write in turn."""
        self.add_pieces(resource_json)

    def add_pieces(self, resource_json: Iterable[str]) -> None:
        """`add`, with the text's pieces taken one at a time (from a file, say)."""
        if self.resources_written:
            self._handle.write(",\n")
        elif not self._layout.break_when_empty:
            self._handle.write("\n")
        self._handle.write(self._layout.resource_indent)
        for piece in resource_json:
            self._handle.write(piece)
        self.resources_written += 1

    def close(self, tail: Mapping[str, Any]) -> None:
        """Close the list and write the fields that follow it, and the envelope's closing brace."""
        opened = self.resources_written > 0 or self._layout.break_when_empty
        self._handle.write("\n ]" if opened else "]")
        if tail:
            text = json.dumps(dict(tail), ensure_ascii=False, indent=1)
            self._handle.write(",\n" + text[1:].lstrip("\n") + "\n")
        else:
            self._handle.write("\n}\n")


def envelope_text(document: Any, layout: EnvelopeLayout) -> str:
    """A whole report as text in the envelope layout; a document without a list of resources, indented."""
    resources = document.get("resources") if isinstance(document, dict) else None
    if not isinstance(resources, list):
        return json.dumps(document, ensure_ascii=False, indent=1) + "\n"
    keys = list(document)
    at = keys.index("resources")
    out = io.StringIO()
    writer = EnvelopeWriter(out, {k: document[k] for k in keys[:at]}, layout)
    for resource in resources:
        writer.add(compact_json(resource))
    writer.close({k: document[k] for k in keys[at + 1:]})
    return out.getvalue()
