"""Reading XNAT resource catalogs (`*_catalog.xml`): their entries, as far as the survey cares.

Parsing (and rewriting) catalogs is pure bytes work and lives in `core.catalog_text`; this module opens them.
"""

from __future__ import annotations

import os

from container_app.core.catalog_text import CATALOG_NS, CatalogReader, parse_catalog
from container_app.core.records import CatalogEntry
from container_app.survey import anchored_reads

__all__ = ["CATALOG_NS", "CATALOG_SUFFIX", "WHOLE_PARSE_BYTES", "is_catalog_name", "read_catalog", "read_entries"]

CATALOG_SUFFIX = "_catalog.xml"


def is_catalog_name(name: str) -> bool:
    return name.endswith(CATALOG_SUFFIX)


def read_entries(path: str) -> tuple[CatalogEntry, ...]:
    """The `cat:entry` elements of a catalog. Raises CatalogError or OSError."""
    return read_catalog(path)[1]


#: Catalogs up to this size are read and parsed in one piece (one call into expat); larger ones (resources
#: of tens of thousands of files) are fed to it in CHUNK_BYTES pieces, so their text never sits in memory.
WHOLE_PARSE_BYTES = 4 << 20
CHUNK_BYTES = 1 << 20


def read_catalog(path: str) -> tuple[str | None, tuple[CatalogEntry, ...]]:
    """The project XNAT wrote into a catalog's `PROJECT` metaField, and its `cat:entry` elements.

    Raises CatalogError (not well-formed, a DTD, not UTF-8) or OSError.
    """
    # Opened below ROOT without following any link (the held resource folder, `anchored_reads`); a FIFO
    # or device where a catalog should be is refused, never waited on.
    with os.fdopen(anchored_reads.open_path(path), "rb") as handle:
        if os.fstat(handle.fileno()).st_size <= WHOLE_PARSE_BYTES:
            parsed = parse_catalog(handle.read())
        else:
            reader = CatalogReader()
            while chunk := handle.read(CHUNK_BYTES):
                reader.feed(chunk)
            parsed = reader.close()
    return parsed.project, parsed.entries
