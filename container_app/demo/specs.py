"""What to plant in a synthetic archive (the specs) and what was planted (the layouts).

Specs are the builder's input: scans, resources and files, and the problems to plant on them. Layouts
are its output: every file written, with the `Plant`s derived from what was actually written.
Nothing here touches the file system.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from container_app.demo.damage import TruncateAt
from container_app.demo.instances import InstanceSpec, uid

# --------------------------------------------------------------------------------------------------
# Specs


class Naming(enum.StrEnum):
    """How to name a file when the caller does not give a literal name."""

    XNAT = "XNAT"  # XNAT's default template: conforming
    LEGACY = "LEGACY"  # the pre-1.8.7 namer: carries the patient's name


class Plant(enum.StrEnum):
    """What was planted in a file or catalog entry. Derived from what was written, not from intent."""

    LEGACY_NAME = "LEGACY_NAME"
    CLIENT_NAME = "CLIENT_NAME"  # neither the XNAT name nor the legacy name
    DUPLICATE_IDENTICAL = "DUPLICATE_IDENTICAL"
    DUPLICATE_DIFFERENT = "DUPLICATE_DIFFERENT"
    LESS_DEIDENTIFIED = "LESS_DEIDENTIFIED"  # a copy carrying an attribute that its twin does not (E.1-1)
    HARD_LINK = "HARD_LINK"
    SYMLINK = "SYMLINK"
    TRUNCATED_HEADER = "TRUNCATED_HEADER"
    TRUNCATED_PIXEL_DATA = "TRUNCATED_PIXEL_DATA"
    TRUNCATED = "TRUNCATED"  # cut at a caller-given byte count
    GZIP = "GZIP"
    NO_PREAMBLE = "NO_PREAMBLE"
    MISSING_SOP_CLASS_UID = "MISSING_SOP_CLASS_UID"
    MISSING_SOP_INSTANCE_UID = "MISSING_SOP_INSTANCE_UID"
    MEDIA_STORAGE_UID_MISMATCH = "MEDIA_STORAGE_UID_MISMATCH"
    NOT_DICOM = "NOT_DICOM"
    DICOMDIR = "DICOMDIR"
    NOT_IN_CATALOG = "NOT_IN_CATALOG"
    CATALOG_ENTRY_MISSING_FILE = "CATALOG_ENTRY_MISSING_FILE"
    CATALOG_UID_MISMATCH = "CATALOG_UID_MISMATCH"


#: Plants that make a file one of XNAT's "bad files" (unreadable or without SOPClassUID).
#: TRUNCATED (a caller-given byte count) is not listed: whether the header survives depends on the count.
BAD_PLANTS = frozenset(
    {Plant.TRUNCATED_HEADER, Plant.GZIP, Plant.MISSING_SOP_CLASS_UID, Plant.NOT_DICOM, Plant.DICOMDIR,
     Plant.SYMLINK}
)


class CopyKind(enum.StrEnum):
    IDENTICAL = "IDENTICAL"  # byte-identical copy
    DIFFERENT = "DIFFERENT"  # same UIDs and naming values, a changed display element outside PS3.15 E.1-1
    COMMENTED = "COMMENTED"  # DIFFERENT by an operator's ImageComments, which E.1-1 removes: it discloses more
    HARD_LINK = "HARD_LINK"
    SYMLINK = "SYMLINK"  # relative symlink to the original, inside the resource


@dataclass(frozen=True, kw_only=True)
class CopySpec:
    """A second file holding the same instance as its `FileSpec`."""

    name: str | Naming
    kind: CopyKind = CopyKind.IDENTICAL
    in_catalog: bool = True
    mtime: float | None = None


@dataclass(frozen=True, kw_only=True)
class FileSpec:
    """A DICOM file in a scan resource and the problems to plant on it."""

    instance: InstanceSpec
    name: str | Naming = Naming.XNAT
    copies: tuple[CopySpec, ...] = ()
    truncate_to: int | TruncateAt | None = None
    gzip: bool = False
    in_catalog: bool = True
    present: bool = True  # False: only a catalog entry, the file is missing
    catalog_uid: str | None = None  # a catalog UID other than the header's
    mtime: float | None = None


class ExtraKind(enum.StrEnum):
    TEXT = "TEXT"
    PNG = "PNG"
    DICOMDIR = "DICOMDIR"
    BYTES = "BYTES"  # `content` as given


@dataclass(frozen=True, kw_only=True)
class ExtraFile:
    """A file that is not a synthesized instance: notes, snapshots, a DICOMDIR, arbitrary bytes."""

    name: str
    kind: ExtraKind = ExtraKind.TEXT
    content: bytes | None = None
    in_catalog: bool = True
    format: str | None = None  # catalog `format`; defaults by kind
    mtime: float | None = None


@dataclass(frozen=True, kw_only=True)
class ScanSpec:
    """A scan with one resource (`label`) holding `files` and `extras`."""

    scan_id: str
    files: tuple[FileSpec, ...] = ()
    extras: tuple[ExtraFile, ...] = ()
    label: str = "DICOM"
    catalog: bool = True
    series_instance_uid: str | None = None  # catalog UID; defaults to the first instance's series

    @classmethod
    def conforming(cls, scan_id: str, instances: Iterable[InstanceSpec], *, label: str = "DICOM") -> ScanSpec:
        return cls(scan_id=scan_id, files=tuple(FileSpec(instance=i) for i in instances), label=label)


@dataclass(frozen=True, kw_only=True)
class ResourceSpec:
    """A session-level resource (`RESOURCES/<label>`), such as snapshots."""

    label: str
    files: tuple[ExtraFile, ...]
    format: str | None = None
    catalog: bool = True


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    label: str
    scans: tuple[ScanSpec, ...]
    resources: tuple[ResourceSpec, ...] = ()


def series_instances(base: InstanceSpec, scan_id: str | int, count: int, *, start: int = 1,
                     series_number: str | None = None) -> tuple[InstanceSpec, ...]:
    """`count` instances of one series, UIDs derived from `base`'s study and `scan_id`.

    `series_number` defaults to the scan ID, as XNAT labels scans by series number.
    """
    series_uid = uid(base.study_instance_uid, "series", scan_id)
    return tuple(
        dataclasses.replace(
            base,
            series_instance_uid=series_uid,
            sop_instance_uid=uid(base.study_instance_uid, "instance", scan_id, n),
            series_number=str(scan_id) if series_number is None else series_number,
            instance_number=str(n),
        )
        for n in range(start, start + count)
    )


def differing_copy(spec: InstanceSpec) -> InstanceSpec:
    """The same instance re-sent with another display window: bytes differ, names and disclosure do not.

    The window (0028,1050/1051) is read by no naming scheme and is not in PS3.15 table E.1-1, so the two
    copies are equally de-identified and `--keep` decides between them.
    """
    return dataclasses.replace(spec, extra={**spec.extra, "WindowCenter": "2048", "WindowWidth": "4096"})


def commented_copy(spec: InstanceSpec) -> InstanceSpec:
    """The same instance re-sent with an operator's comment: it carries ImageComments, an attribute of PS3.15
    table E.1-1 that its twin lacks, so it is the less de-identified copy (issue 15)."""
    return dataclasses.replace(spec, extra={**spec.extra, "ImageComments": "re-sent by the scanner"})



# --------------------------------------------------------------------------------------------------
# Layouts


@dataclass(frozen=True)
class PlantedFile:
    """One file (or catalog entry without a file) in a layout, and what was planted on it."""

    path: str  # relative to the session root (or the resource folder for build_resource), "/" separators
    plants: frozenset[Plant]
    sop_class_uid: str | None  # as written in the header; None for non-DICOM files
    sop_instance_uid: str | None
    expected_name: str | None  # XNAT's default-template name; None for non-DICOM files
    in_catalog: bool
    exists: bool
    size: int | None  # bytes on disk; None when the file does not exist
    md5: str | None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_bad(self) -> bool:
        return self.exists and bool(self.plants & BAD_PLANTS)


@dataclass(frozen=True)
class ResourceLayout:
    path: str  # resource folder relative to the session root
    label: str
    scan_id: str | None  # None for session-level resources
    format: str | None
    catalog: str | None  # catalog path relative to the session root
    files: tuple[PlantedFile, ...]


@dataclass(frozen=True)
class SessionLayout:
    root: Path
    project: str
    session_label: str
    resources: tuple[ResourceLayout, ...]

    @property
    def files(self) -> tuple[PlantedFile, ...]:
        return tuple(f for r in self.resources for f in r.files)

    def with_plant(self, plant: Plant) -> tuple[PlantedFile, ...]:
        return tuple(f for f in self.files if plant in f.plants)

    def resource(self, scan_id: str, label: str = "DICOM") -> ResourceLayout:
        for r in self.resources:
            if r.scan_id == scan_id and r.label == label:
                return r
        raise KeyError((scan_id, label))


@dataclass(frozen=True)
class ProjectLayout:
    root: Path  # the folder holding `<project>/`
    project: str
    sessions: tuple[SessionLayout, ...]

    def session(self, label: str) -> SessionLayout:
        for s in self.sessions:
            if s.session_label == label:
                return s
        raise KeyError(label)
