"""XNAT resource catalogs (`cat:DCMCatalog`, `cat:Catalog`) as XNAT's importer writes them.

Pure: `catalog_xml` returns the document; the builder writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

_CATALOG_CREATED = "2024-01-02T10:15:30.000"

_NAMESPACES = (
    ('arc', "http://nrg.wustl.edu/arc"),
    ('cat', "http://nrg.wustl.edu/catalog"),
    ('icr', "http://icr.ac.uk/icr"),
    ('pipe', "http://nrg.wustl.edu/pipe"),
    ('prov', "http://www.nbirn.net/prov"),
    ('scr', "http://nrg.wustl.edu/scr"),
    ('val', "http://nrg.wustl.edu/val"),
    ('wrk', "http://nrg.wustl.edu/workflow"),
    ('xdat', "http://nrg.wustl.edu/security"),
    ('xnat', "http://nrg.wustl.edu/xnat"),
    ('xnat_a', "http://nrg.wustl.edu/xnat_assessments"),
    ('xsi', "http://www.w3.org/2001/XMLSchema-instance"),
)


@dataclass(frozen=True)
class CatalogEntrySpec:
    """One `cat:entry` to write; `dcm` makes it a `cat:dcmEntry`, as XNAT's importer writes them."""

    name: str
    digest: str
    format: str | None
    dcm: bool = False
    uid: str | None = None
    instance_number: str | None = None


def catalog_xml(entries: Sequence[CatalogEntrySpec], *, project: str, dicom: bool,
                catalog_uid: str | None = None) -> str:
    """An XNAT resource catalog: `cat:DCMCatalog` for DICOM resources, `cat:Catalog` otherwise."""
    root = "cat:DCMCatalog" if dicom else "cat:Catalog"
    attrs = f" UID={quoteattr(catalog_uid)}" if catalog_uid else ""
    attrs += "".join(f" xmlns:{prefix}={quoteattr(url)}" for prefix, url in _NAMESPACES)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<{root}{attrs}>",
        "<cat:metaFields>",
        f'\t<cat:metaField name="PROJECT">{escape(project)}</cat:metaField>',
        "</cat:metaFields>",
        "<cat:entries>",
    ]
    for e in entries:
        fields: list[tuple[str, str | None]] = [
            ("ID", e.name), ("UID", e.uid if e.dcm else None), ("URI", e.name), ("createdBy", "admin"),
            ("createdTime", _CATALOG_CREATED), ("digest", e.digest), ("format", e.format),
            ("instanceNumber", e.instance_number if e.dcm else None),
            ("xsi:type", "cat:dcmEntry" if e.dcm else None),
        ]
        rendered = " ".join(f"{k}={quoteattr(v)}" for k, v in fields if v is not None)
        lines.append(f"\t<cat:entry {rendered}/>")
    lines += ["</cat:entries>", f"</{root}>", ""]
    return "\n".join(lines)
