"""Writes synthetic archives: a session, a project of sessions, or a bare resource folder.

Every file is written from its spec, and what was planted on it is derived from what was written, so a
layout never claims a problem that is not on disk. Mtimes are deterministic unless a caller opts out.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from container_app.demo.catalogs import CatalogEntrySpec, catalog_xml
from container_app.demo.damage import (
    NOT_DICOM_TEXT,
    TruncateAt,
    dicomdir_bytes,
    gzip_bytes,
    png_bytes,
    truncation_offset,
)
from container_app.demo.instances import InstanceSpec, instance_bytes
from container_app.demo.names import header_value, legacy_name, xnat_name
from container_app.demo.specs import (
    CopyKind,
    ExtraFile,
    ExtraKind,
    FileSpec,
    Naming,
    Plant,
    PlantedFile,
    ProjectLayout,
    ResourceLayout,
    ResourceSpec,
    ScanSpec,
    SessionLayout,
    SessionSpec,
    commented_copy,
    differing_copy,
)

#: Default first mtime of a layout (2023-11-14T22:13:20Z); files get one second more each, in write order.
DEFAULT_MTIME = 1_700_000_000


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Clock:
    """Hands out deterministic mtimes in write order."""

    def __init__(self, base: float | None) -> None:
        self._next = base

    def stamp(self, path: Path, explicit: float | None) -> None:
        when = explicit
        if when is None and self._next is not None:
            when = self._next
            self._next += 1
        if when is not None:
            os.utime(path, (when, when), follow_symlinks=False)


def _resolve_name(name: str | Naming, spec: InstanceSpec) -> str:
    if name is Naming.XNAT:
        return xnat_name(spec)
    if name is Naming.LEGACY:
        return legacy_name(spec)
    return str(name)


def _name_plants(name: str, spec: InstanceSpec) -> set[Plant]:
    if name == xnat_name(spec):
        return set()
    return {Plant.LEGACY_NAME} if name == legacy_name(spec) else {Plant.CLIENT_NAME}


def _instance_plants(spec: InstanceSpec) -> set[Plant]:
    plants: set[Plant] = set()
    if not spec.preamble:
        plants.add(Plant.NO_PREAMBLE)
    if header_value(spec, "SOPClassUID") is None:
        plants.add(Plant.MISSING_SOP_CLASS_UID)
    if header_value(spec, "SOPInstanceUID") is None:
        plants.add(Plant.MISSING_SOP_INSTANCE_UID)
    if spec.preamble and (
        (spec.media_storage_sop_instance_uid not in (None, header_value(spec, "SOPInstanceUID")))
        or (spec.media_storage_sop_class_uid not in (None, header_value(spec, "SOPClassUID")))
    ):
        plants.add(Plant.MEDIA_STORAGE_UID_MISMATCH)
    return plants


def _damage(data: bytes, fs: FileSpec) -> tuple[bytes, set[Plant]]:
    plants: set[Plant] = set()
    if fs.truncate_to is not None:
        if isinstance(fs.truncate_to, TruncateAt):
            if fs.instance.transfer_syntax == DeflatedExplicitVRLittleEndian:
                raise ValueError("TruncateAt needs an uncompressed dataset; give a byte count instead")
            little = fs.instance.transfer_syntax != ExplicitVRBigEndian
            data = data[: truncation_offset(data, fs.truncate_to, little_endian=little)]
            plants.add(Plant.TRUNCATED_HEADER if fs.truncate_to is TruncateAt.HEADER
                       else Plant.TRUNCATED_PIXEL_DATA)
        else:
            data = data[: fs.truncate_to]
            plants.add(Plant.TRUNCATED)
    if fs.gzip:
        data = gzip_bytes(data)
        plants.add(Plant.GZIP)
    return data, plants


_EXTRA_FORMATS: dict[ExtraKind, str | None] = {
    ExtraKind.TEXT: "TXT", ExtraKind.PNG: "PNG", ExtraKind.DICOMDIR: "DICOM", ExtraKind.BYTES: None,
}


def _extra_content(extra: ExtraFile) -> tuple[bytes, set[Plant]]:
    if extra.kind is ExtraKind.DICOMDIR:
        return (extra.content or dicomdir_bytes()), {Plant.DICOMDIR}
    if extra.kind is ExtraKind.PNG:
        return (extra.content or png_bytes()), {Plant.NOT_DICOM}
    if extra.kind is ExtraKind.TEXT:
        return (extra.content or NOT_DICOM_TEXT), {Plant.NOT_DICOM}
    if extra.content is None:
        raise ValueError(f"{extra.name}: ExtraKind.BYTES needs content")
    return extra.content, set()


#: Plants that a copy of each kind adds to the original file and to the copy itself.
_COPY_PLANTS_ON_ORIGINAL: dict[CopyKind, frozenset[Plant]] = {
    CopyKind.IDENTICAL: frozenset({Plant.DUPLICATE_IDENTICAL}),
    CopyKind.DIFFERENT: frozenset({Plant.DUPLICATE_DIFFERENT}),
    CopyKind.COMMENTED: frozenset({Plant.DUPLICATE_DIFFERENT}),
    CopyKind.HARD_LINK: frozenset({Plant.DUPLICATE_IDENTICAL, Plant.HARD_LINK}),
    CopyKind.SYMLINK: frozenset(),  # the link is a bad file, so the original stays a single
}
_COPY_PLANTS_ON_COPY: dict[CopyKind, frozenset[Plant]] = {
    **_COPY_PLANTS_ON_ORIGINAL,
    CopyKind.SYMLINK: frozenset({Plant.SYMLINK}),
    CopyKind.COMMENTED: frozenset({Plant.DUPLICATE_DIFFERENT, Plant.LESS_DEIDENTIFIED}),
}
#: How a copy of each kind differs from the original instance (the kinds not listed are the original's bytes).
_COPY_SPECS: dict[CopyKind, Callable[[InstanceSpec], InstanceSpec]] = {
    CopyKind.DIFFERENT: differing_copy,
    CopyKind.COMMENTED: commented_copy,
}


class _ResourceWriter:
    """Writes one resource folder and remembers what it planted."""

    def __init__(self, folder: Path, rel: str, clock: _Clock, *, dicom: bool = True) -> None:
        self.folder = folder
        self.rel = rel
        self.clock = clock
        self.dicom = dicom
        self.planted: list[PlantedFile] = []
        self.entries: list[CatalogEntrySpec] = []
        self._names: set[str] = set()

    def _rel(self, name: str) -> str:
        return f"{self.rel}/{name}" if self.rel else name

    def _claim(self, name: str) -> Path:
        if name in self._names or "/" in name or name in ("", ".", ".."):
            raise ValueError(f"{self.rel}: file name {name!r} is repeated or not a plain name")
        self._names.add(name)
        return self.folder / name

    def add(self, name: str, data: bytes, plants: set[Plant], *, spec: InstanceSpec | None, exists: bool,
            in_catalog: bool, catalog: bool, fmt: str | None, catalog_uid: str | None = None,
            mtime: float | None = None, link_to: str | None = None, hard_link: bool = False) -> None:
        path = self._claim(name)
        if exists:
            if link_to is None:
                path.write_bytes(data)
                self.clock.stamp(path, mtime)
            elif hard_link:
                os.link(self.folder / link_to, path)  # shares the original's inode, hence its mtime
            else:
                path.symlink_to(link_to)
                self.clock.stamp(path, mtime)
        plants = set(plants)
        header_uid = header_value(spec, "SOPInstanceUID") if spec is not None else None
        if catalog and in_catalog:
            if spec is not None and catalog_uid is not None and catalog_uid != header_uid:
                plants.add(Plant.CATALOG_UID_MISMATCH)
            self.entries.append(CatalogEntrySpec(
                name=name,
                digest=_md5(data),
                format=fmt,
                # Only the importer writes dcmEntry elements, and only for instances it could read.
                dcm=spec is not None,
                uid=catalog_uid if catalog_uid is not None else header_uid,
                instance_number=header_value(spec, "InstanceNumber") if spec is not None else None,
            ))
        elif catalog:
            plants.add(Plant.NOT_IN_CATALOG)
        if not exists:
            plants.add(Plant.CATALOG_ENTRY_MISSING_FILE)
        self.planted.append(PlantedFile(
            path=self._rel(name),
            plants=frozenset(plants),
            sop_class_uid=header_value(spec, "SOPClassUID") if spec is not None else None,
            sop_instance_uid=header_uid,
            expected_name=xnat_name(spec) if spec is not None else None,
            in_catalog=catalog and in_catalog,
            exists=exists,
            size=len(data) if exists else None,
            md5=_md5(data) if exists else None,
        ))

    def add_file(self, fs: FileSpec, catalog: bool) -> None:
        if not fs.present and not (catalog and fs.in_catalog):
            raise ValueError("a missing file needs a catalog entry, or there is nothing to plant")
        if not fs.present and fs.copies:
            raise ValueError("copies of a missing file cannot be planted")
        data, damage = _damage(instance_bytes(fs.instance), fs)
        name = _resolve_name(fs.name, fs.instance)
        plants = _instance_plants(fs.instance) | _name_plants(name, fs.instance) | damage
        for copy in fs.copies:
            plants |= _COPY_PLANTS_ON_ORIGINAL[copy.kind]
        self.add(name, data, plants, spec=fs.instance, exists=fs.present, in_catalog=fs.in_catalog,
                 catalog=catalog, fmt="DICOM", catalog_uid=fs.catalog_uid, mtime=fs.mtime)
        for copy in fs.copies:
            differ = _COPY_SPECS.get(copy.kind)
            copy_spec = differ(fs.instance) if differ is not None else fs.instance
            # Copies inherit the original's damage, so an identical copy really is byte-identical.
            copy_data = _damage(instance_bytes(copy_spec), fs)[0] if copy_spec is not fs.instance else data
            copy_name = _resolve_name(copy.name, copy_spec)
            copy_plants = (_instance_plants(copy_spec) | _name_plants(copy_name, copy_spec) | damage
                           | _COPY_PLANTS_ON_COPY[copy.kind])
            linked = copy.kind in (CopyKind.HARD_LINK, CopyKind.SYMLINK)
            self.add(copy_name, copy_data, copy_plants, spec=copy_spec, exists=True,
                     in_catalog=copy.in_catalog, catalog=catalog, fmt="DICOM", mtime=copy.mtime,
                     link_to=name if linked else None, hard_link=copy.kind is CopyKind.HARD_LINK)

    def add_extra(self, extra: ExtraFile, catalog: bool) -> None:
        data, plants = _extra_content(extra)
        if not self.dicom:
            plants = set()  # a PNG in a snapshot resource is what belongs there
        fmt = extra.format if extra.format is not None else _EXTRA_FORMATS[extra.kind]
        self.add(extra.name, data, plants, spec=None, exists=True, in_catalog=extra.in_catalog,
                 catalog=catalog, fmt=fmt, mtime=extra.mtime)

    def write_catalog(self, catalog_name: str, *, project: str, dicom: bool, catalog_uid: str | None) -> str:
        path = self._claim(catalog_name)
        path.write_text(catalog_xml(self.entries, project=project, dicom=dicom, catalog_uid=catalog_uid),
                        encoding="utf-8")
        self.clock.stamp(path, None)
        return self._rel(catalog_name)


def _build_scan(session_root: Path, project: str, scan: ScanSpec, catalogs: bool,
                clock: _Clock) -> ResourceLayout:
    rel = f"SCANS/{scan.scan_id}/{scan.label}"
    folder = session_root / rel
    folder.mkdir(parents=True, exist_ok=True)
    writer = _ResourceWriter(folder, rel, clock)
    with_catalog = catalogs and scan.catalog
    for fs in scan.files:
        writer.add_file(fs, with_catalog)
    for extra in scan.extras:
        writer.add_extra(extra, with_catalog)
    catalog_rel = None
    if with_catalog:
        series = scan.series_instance_uid
        if series is None and scan.files:
            series = scan.files[0].instance.series_instance_uid
        catalog_rel = writer.write_catalog(f"scan_{scan.scan_id}_catalog.xml", project=project, dicom=True,
                                           catalog_uid=series)
    return ResourceLayout(path=rel, label=scan.label, scan_id=scan.scan_id, format="DICOM",
                          catalog=catalog_rel, files=tuple(writer.planted))


def _build_session_resource(session_root: Path, project: str, resource: ResourceSpec, catalogs: bool,
                            clock: _Clock) -> ResourceLayout:
    rel = f"RESOURCES/{resource.label}"
    folder = session_root / rel
    folder.mkdir(parents=True, exist_ok=True)
    writer = _ResourceWriter(folder, rel, clock, dicom=resource.format == "DICOM")
    with_catalog = catalogs and resource.catalog
    for extra in resource.files:
        writer.add_extra(extra, with_catalog)
    catalog_rel = None
    if with_catalog:
        catalog_rel = writer.write_catalog(f"{resource.label}_catalog.xml", project=project,
                                           dicom=resource.format == "DICOM", catalog_uid=None)
    return ResourceLayout(path=rel, label=resource.label, scan_id=None, format=resource.format,
                          catalog=catalog_rel, files=tuple(writer.planted))


def build_session(root: Path, session_label: str, project: str, scans: Sequence[ScanSpec], *,
                  resources: Sequence[ResourceSpec] = (), catalogs: bool = True,
                  mtime_base: float | None = DEFAULT_MTIME) -> SessionLayout:
    """Write a session mount (`root/SCANS/<id>/<LABEL>/...`, `root/RESOURCES/<label>/...`).

    `mtime_base` None leaves mtimes as the file system sets them; otherwise every file and catalog
    gets `mtime_base + n` in write order unless its spec gives an mtime.
    """
    clock = _Clock(mtime_base)
    root.mkdir(parents=True, exist_ok=True)
    layouts = [_build_scan(root, project, scan, catalogs, clock) for scan in scans]
    layouts += [_build_session_resource(root, project, r, catalogs, clock) for r in resources]
    if mtime_base is not None:
        _stamp_folders(root, mtime_base)
    return SessionLayout(root=root, project=project, session_label=session_label, resources=tuple(layouts))


def _stamp_folders(top: Path, when: float) -> None:
    """Give `top` and every folder below it the mtime `when`, so listings are reproducible too."""
    folders = [top, *(p for p in top.rglob("*") if p.is_dir() and not p.is_symlink())]
    for folder in folders:
        os.utime(folder, (when, when))


def session_root(root: Path, project: str, session_label: str) -> Path:
    """Where `build_project` puts a session: `root/<project>/arc001/<session>`."""
    return root / project / "arc001" / session_label


def build_project(root: Path, project: str, sessions: Sequence[SessionSpec], *, catalogs: bool = True,
                  mtime_base: float | None = DEFAULT_MTIME) -> ProjectLayout:
    """Write a project mount: `root/<project>/arc001/<SESSION>/SCANS/...` for each session."""
    layouts: list[SessionLayout] = []
    for index, session in enumerate(sessions):
        # Sessions get disjoint mtime ranges so "newest" is unambiguous across the project too.
        base = None if mtime_base is None else mtime_base + 100_000 * index
        layouts.append(build_session(session_root(root, project, session.label), session.label, project,
                                     session.scans, resources=session.resources, catalogs=catalogs,
                                     mtime_base=base))
    if mtime_base is not None:
        for folder in (root / project / "arc001", root / project):
            os.utime(folder, (mtime_base, mtime_base))
    return ProjectLayout(root=root, project=project, sessions=tuple(layouts))


def build_resource(folder: Path, files: Sequence[FileSpec], *, extras: Sequence[ExtraFile] = (),
                   project: str = "SYNTH", scan_id: str = "1", catalog: bool = True,
                   mtime_base: float | None = DEFAULT_MTIME) -> ResourceLayout:
    """Write a bare resource folder (the smallest mount the survey understands); paths relative to it."""
    folder.mkdir(parents=True, exist_ok=True)
    clock = _Clock(mtime_base)
    writer = _ResourceWriter(folder, "", clock)
    for fs in files:
        writer.add_file(fs, catalog)
    for extra in extras:
        writer.add_extra(extra, catalog)
    catalog_rel = None
    if catalog:
        series = files[0].instance.series_instance_uid if files else None
        catalog_rel = writer.write_catalog(f"scan_{scan_id}_catalog.xml", project=project, dicom=True,
                                           catalog_uid=series)
    if mtime_base is not None:
        _stamp_folders(folder, mtime_base)
    return ResourceLayout(path="", label=folder.name, scan_id=scan_id, format="DICOM", catalog=catalog_rel,
                          files=tuple(writer.planted))
