"""Reading XNAT resource catalogs (`*_catalog.xml`): their entries, as far as the survey cares.

Rewriting them is pure text work and lives in `core.catalog_text`.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import BinaryIO

from container_app.core.records import CatalogEntry
from container_app.support.fsutil import open_regular

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
    # A FIFO or device where a catalog should be is refused, never waited on (open_regular).
    with os.fdopen(open_regular(path), "rb") as handle:
        return _parse_catalog(handle, os.fstat(handle.fileno()).st_size > WHOLE_PARSE_BYTES)


def _parse_catalog(handle: BinaryIO, streamed: bool) -> tuple[str | None, tuple[CatalogEntry, ...]]:
    project: str | None = None
    entries: list[CatalogEntry] = []
    # No DTDs or entities reach here: ElementTree does not fetch external entities.
    if streamed:
        elements: Iterable[ET.Element] = (element for _event, element in ET.iterparse(handle, events=("end",)))  # noqa: S314 (expat >= 2.4.1 refuses entity bombs)
    else:
        elements = ET.parse(handle).getroot().iter()  # noqa: S314
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
