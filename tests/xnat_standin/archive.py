"""The stand-in's archive: projects, sessions, scans and resources found in a real folder on disk.

Layout: `<root>/<PROJECT>/arc001/<SESSION_LABEL>/SCANS/<scan>/<LABEL>/` (scan resources, catalog
`scan_<scan>_catalog.xml` or any `*_catalog.xml`) and `<root>/<PROJECT>/arc001/<SESSION_LABEL>/RESOURCES/<LABEL>/`
(session resources). IDs are given once, in sorted order, and kept for the stand-in's lifetime.
Callers hold `Archive.lock` around anything that reads or changes the disk.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from tests.xnat_standin import catalogs
from tests.xnat_standin.catalogs import CATALOG_SUFFIX, Entry

SESSION_XSI_TYPE = "xnat:mrSessionData"
SCAN_XSI_TYPE = "xnat:mrScanData"
RESOURCE_XSI_TYPE = "xnat:resourceCatalog"
# The session type by the modality of its files, for the survey request's `xsiType`
# (../shared/conformance/xnat-rest-tests/survey/simple_pet_si.json: "xnat:petSessionData").
_SESSION_TYPES = {"PT": "xnat:petSessionData", "CT": "xnat:ctSessionData", "MR": SESSION_XSI_TYPE}


class StandInError(Exception):
    """An error the stand-in answers with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(eq=False)
class Resource:
    id: int
    session: Session
    scan_id: str | None  # None for a session-level resource
    label: str
    path: Path

    @property
    def catalog_path(self) -> Path | None:
        if not self.path.is_dir():
            return None
        found = sorted(p for p in self.path.iterdir() if p.name.endswith(CATALOG_SUFFIX) and p.is_file())
        return found[0] if found else None

    def entries(self) -> list[Entry]:
        catalog = self.catalog_path
        return catalogs.read_entries(catalog) if catalog is not None else []

    def ensure_catalog(self) -> Path:
        catalog = self.catalog_path
        if catalog is None:
            self.path.mkdir(parents=True, exist_ok=True)
            catalog = self.path / f"{self.label}{CATALOG_SUFFIX}"
            catalogs.write_atomically(catalog, catalogs.new_catalog_xml(self.label).encode("utf-8"))
        return catalog

    @property
    def rest_uri(self) -> str:
        base = f"/data/experiments/{self.session.id}"
        if self.scan_id is not None:
            base += f"/scans/{self.scan_id}"
        return f"{base}/resources/{self.id}"

    @property
    def archive_uri(self) -> str:
        """The `resource` parameter a catalog refresh takes for this resource."""
        s = self.session
        base = f"/archive/projects/{s.project}/subjects/{s.subject_id}/experiments/{s.id}"
        if self.scan_id is not None:
            base += f"/scans/{self.scan_id}"
        return f"{base}/resources/{self.label}"

    def format(self) -> str:
        for entry in self.entries():
            if entry.format:
                return entry.format
        if self.catalog_path is not None and "DCMCatalog" in self.catalog_path.read_text(encoding="utf-8")[:2000]:
            return "DICOM"
        return self._declared_format or ""

    _declared_format: str | None = None
    content: str | None = None

    def first_header(self, keyword: str) -> str:
        """A header value of the resource's first DICOM file ("" if none): the scan's series description
        and the session's modality are read this way."""
        for file in sorted(self.path.iterdir()) if self.path.is_dir() else []:
            if file.is_file() and not file.name.endswith(CATALOG_SUFFIX):
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        dataset = pydicom.dcmread(file, stop_before_pixels=True, force=True, specific_tags=[keyword])
                except Exception:
                    continue
                value = dataset.get(keyword)
                if value:
                    return str(value)
        return ""

    @property
    def session_xsi_type(self) -> str:
        return _SESSION_TYPES.get(self.first_header("Modality"), SESSION_XSI_TYPE)

    def stats(self) -> tuple[int, int]:
        entries = self.entries()
        size = 0
        for entry in entries:
            file = self.path / entry.uri
            if file.is_file():
                size += file.stat().st_size
        return len(entries), size


@dataclass(eq=False)
class Session:
    project: str
    label: str
    id: str
    subject_id: str
    path: Path
    resources: dict[tuple[str | None, str], Resource] = field(default_factory=dict)

    @property
    def subject_label(self) -> str:
        return self.label

    def scan_ids(self) -> list[str]:
        scans = self.path / "SCANS"
        if not scans.is_dir():
            return []
        return sorted((p.name for p in scans.iterdir() if p.is_dir()), key=_natural)

    def scan_pk(self, scan_id: str) -> int:
        """The scan's database key (`xnat_imagescandata_id`), stable for a session and scan ID."""
        digest = hashlib.sha256(f"{self.id}/{scan_id}".encode()).digest()
        return int.from_bytes(digest[:3], "big")

    def insert_date(self) -> str:
        when = datetime.datetime.fromtimestamp(self.path.stat().st_mtime)
        return when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (1 << 62, text)


class Archive:
    """The archive folder and the IDs the stand-in gave to what it found there."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.RLock()
        self._sessions: dict[tuple[str, str], Session] = {}
        self._resources: dict[int, Resource] = {}
        self._experiment_counter: dict[str, int] = {}
        self._next_resource_id = 1
        root.mkdir(parents=True, exist_ok=True)
        self.rescan()

    # --- discovery ------------------------------------------------------------------------------

    def rescan(self) -> None:
        with self.lock:
            for project in self.projects():
                arc = self.root / project / "arc001"
                if not arc.is_dir():
                    continue
                for session_dir in sorted(p for p in arc.iterdir() if p.is_dir()):
                    session = self._session_for(project, session_dir)
                    self._discover_resources(session)

    def projects(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))

    def _session_for(self, project: str, session_dir: Path) -> Session:
        key = (project, session_dir.name)
        session = self._sessions.get(key)
        if session is None:
            n = self._experiment_counter.get(project, 0) + 1
            self._experiment_counter[project] = n
            session = Session(project, session_dir.name, f"{project}_E{n:05d}", f"{project}_S{n:05d}", session_dir)
            self._sessions[key] = session
        return session

    def _discover_resources(self, session: Session) -> None:
        found: list[tuple[str | None, str, Path]] = []
        for scan_id in session.scan_ids():
            scan_dir = session.path / "SCANS" / scan_id
            found += [(scan_id, p.name, p) for p in sorted(scan_dir.iterdir()) if p.is_dir()]
        resources_dir = session.path / "RESOURCES"
        if resources_dir.is_dir():
            found += [(None, p.name, p) for p in sorted(resources_dir.iterdir()) if p.is_dir()]
        for found_scan, label, path in found:
            if (found_scan, label) not in session.resources:
                self._register(session, found_scan, label, path)
        # Resources whose folder went away are forgotten.
        for key, resource in list(session.resources.items()):
            if not resource.path.is_dir():
                del session.resources[key]
                self._resources.pop(resource.id, None)

    def _register(self, session: Session, scan_id: str | None, label: str, path: Path) -> Resource:
        resource = Resource(self._next_resource_id, session, scan_id, label, path)
        self._next_resource_id += 1
        session.resources[(scan_id, label)] = resource
        self._resources[resource.id] = resource
        return resource

    # --- lookups --------------------------------------------------------------------------------

    def sessions(self, project: str | None = None) -> list[Session]:
        self.rescan()
        found = [s for s in self._sessions.values() if project is None or s.project == project]
        return sorted(found, key=lambda s: (s.project, s.id))

    def find_session(self, ref: str, project: str | None = None) -> Session:
        """A session by experiment ID, or by label within a project."""
        for session in self.sessions(project):
            if session.id == ref or (project is not None and session.label == ref):
                return session
        raise StandInError(404, f"the stand-in has no experiment {ref!r}")

    def resource_by_id(self, resource_id: int) -> Resource:
        self.rescan()
        resource = self._resources.get(resource_id)
        if resource is None:
            raise StandInError(404, f"the stand-in has no resource {resource_id}")
        return resource

    def find_resource(self, session: Session, scan_id: str | None, ref: str) -> Resource:
        self.rescan()
        if ref.isdigit() and int(ref) in self._resources:
            resource = self._resources[int(ref)]
            if resource.session is session and resource.scan_id == scan_id:
                return resource
        resource_or_none = session.resources.get((scan_id, ref))
        if resource_or_none is None:
            raise StandInError(404, f"the stand-in has no resource {ref!r} there")
        return resource_or_none

    def create_resource(self, session: Session, scan_id: str | None, label: str, *, fmt: str | None,
                        content: str | None) -> Resource:
        if "/" in label or label in ("", ".", ".."):
            raise StandInError(400, f"invalid resource label {label!r}")
        if scan_id is not None and not (session.path / "SCANS" / scan_id).is_dir():
            raise StandInError(404, f"the stand-in has no scan {scan_id!r}")
        key = (scan_id, label)
        if key in session.resources:
            raise StandInError(409, f"a resource labelled {label!r} already exists")
        folder = session.path / ("SCANS/" + scan_id if scan_id is not None else "RESOURCES") / label
        folder.mkdir(parents=True, exist_ok=True)
        resource = self._register(session, scan_id, label, folder)
        resource._declared_format = fmt
        resource.content = content
        resource.ensure_catalog()
        return resource

    def delete_resource(self, resource: Resource) -> None:
        for path in sorted(resource.path.rglob("*"), reverse=True):
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
        resource.path.rmdir()
        del resource.session.resources[(resource.scan_id, resource.label)]
        del self._resources[resource.id]

    def resources_of(self, session: Session, scan_id: str | None, *, all_levels: bool = False) -> list[Resource]:
        self.rescan()
        return sorted((r for r in session.resources.values() if all_levels or r.scan_id == scan_id),
                      key=lambda r: r.id)


def now_text() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def resolve_inside(folder: Path, relative: str) -> Path:
    """`folder / relative`, refusing anything that would leave the folder."""
    if not relative or relative.startswith("/") or "\\" in relative or "\0" in relative:
        raise StandInError(400, f"invalid file name {relative!r}")
    parts = relative.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise StandInError(400, f"invalid file name {relative!r}")
    target = folder.joinpath(*parts)
    if not os.path.abspath(target).startswith(os.path.abspath(folder) + os.sep):
        raise StandInError(400, f"invalid file name {relative!r}")
    return target
