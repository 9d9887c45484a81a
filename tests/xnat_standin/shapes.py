"""XNAT's JSON for archive objects: the listing rows and item documents the data routes answer.

Separate from data_routes.py because it is about shapes, not paths: which fields XNAT sends for an
experiment, a scan, a resource or a catalog entry (API.md, "Listings and objects").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom

from tests.xnat_standin import catalogs
from tests.xnat_standin.archive import RESOURCE_XSI_TYPE, SCAN_XSI_TYPE, SESSION_XSI_TYPE, Archive, Resource, Session

JSON = dict[str, Any]


class Shapes:
    """Builds the JSON of the archive's objects; remembers each scan's type (read from one file's header)."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._scan_types: dict[Path, str] = {}

    def _scan_type(self, resource_dir: Path) -> str:
        cached = self._scan_types.get(resource_dir)
        if cached is not None:
            return cached
        found = ""
        for file in sorted(resource_dir.iterdir()) if resource_dir.is_dir() else []:
            if file.is_file() and not file.name.endswith(catalogs.CATALOG_SUFFIX):
                try:
                    dataset = pydicom.dcmread(file, stop_before_pixels=True, force=True,
                                              specific_tags=["SeriesDescription"])
                    found = str(dataset.get("SeriesDescription", "") or "")
                except Exception:
                    found = ""
                break
        self._scan_types[resource_dir] = found
        return found

    def resource_row(self, resource: Resource) -> JSON:
        count, size = resource.stats()
        return {
            "xnat_abstractresource_id": str(resource.id),
            "label": resource.label,
            "element_name": RESOURCE_XSI_TYPE,
            "category": "scans" if resource.scan_id is not None else "resources",
            "cat_id": resource.scan_id if resource.scan_id is not None else resource.session.id,
            "cat_desc": "",
            "format": resource.format(),
            "content": resource.content or "",
            "tags": "",
            "file_count": str(count),
            "file_size": str(size),
        }

    def resource_item(self, resource: Resource) -> JSON:
        count, size = resource.stats()
        fields: JSON = {
            "xnat_abstractresource_id": resource.id,
            "label": resource.label,
            "format": resource.format(),
            "file_count": count,
            "file_size": size,
            "URI": str(resource.catalog_path or resource.path),
        }
        if resource.content:
            fields["content"] = resource.content
        return {"children": [], "meta": {"xsi:type": RESOURCE_XSI_TYPE, "isHistory": False}, "data_fields": fields}

    def scan_item(self, session: Session, scan_id: str) -> JSON:
        resources = self.archive.resources_of(session, scan_id)
        scan_type = self._scan_type(resources[0].path) if resources else ""
        return {
            "children": [{"field": "file", "items": [self.resource_item(r) for r in resources]}] if resources else [],
            "meta": {"xsi:type": SCAN_XSI_TYPE, "isHistory": False},
            "data_fields": {"ID": scan_id, "type": scan_type, "series_description": scan_type,
                            "image_session_ID": session.id, "project": session.project,
                            "xnat_imagescandata_id": session.scan_pk(scan_id)},
        }

    def experiment_item(self, session: Session) -> JSON:
        children: list[JSON] = []
        scans = [self.scan_item(session, s) for s in session.scan_ids()]
        if scans:
            children.append({"field": "scans/scan", "items": scans})
        session_resources = self.archive.resources_of(session, None)
        if session_resources:
            children.append({"field": "resources/resource", "items": [self.resource_item(r) for r in
                                                                      session_resources]})
        return {
            "children": children,
            "meta": {"xsi:type": SESSION_XSI_TYPE, "isHistory": False},
            "data_fields": {"ID": session.id, "label": session.label, "project": session.project,
                            "subject_ID": session.subject_id, "modality": "MR", "UID": ""},
        }

    def experiment_row(self, session: Session) -> JSON:
        return {"ID": session.id, "label": session.label, "project": session.project,
                "subject_ID": session.subject_id, "xsiType": SESSION_XSI_TYPE, "date": "",
                "insert_date": session.insert_date(), "URI": f"/data/experiments/{session.id}"}

    def file_rows(self, resource: Resource) -> list[JSON]:
        rows = []
        for entry in resource.entries():
            file = resource.path / entry.uri
            size = file.stat().st_size if file.is_file() else 0
            rows.append({
                "Name": entry.uri.rsplit("/", 1)[-1],
                "Size": str(size),
                "URI": f"{resource.rest_uri}/files/{entry.uri}",
                "collection": resource.label,
                "file_tags": entry.tags or "",
                "file_format": entry.format or "",
                "file_content": entry.content or "",
                "cat_ID": str(resource.id),
                "digest": entry.digest or "",
            })
        return rows
