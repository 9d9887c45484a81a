"""Typed records that flow between the stages: resources, their files, what reading a file showed.

The coded values inside them (Reason, statuses) are `core.vocabulary`'s enums.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from container_app.core.vocabulary import BAD_REASONS, Reason, RestoreOutcome


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One `cat:entry` of a resource catalog, as far as the survey cares."""

    uri: str
    entry_id: str | None
    uid: str | None
    is_dcm_entry: bool


@dataclass(frozen=True, slots=True)
class ResourceIdentity:
    """What the mount layout says about a resource's place in XNAT. Unknown parts stay None."""

    project: str | None = None
    subject: str | None = None
    session: str | None = None
    scan_id: str | None = None
    resource_label: str | None = None
    catalog_path: str | None = None


@dataclass(frozen=True, slots=True)
class UnreadableFolder:
    """A folder the survey could not list: what it holds is unknown, so its resource cannot be judged."""

    path: str  # relative to ROOT, as a resource's `rel_path`
    error: str  # the system's reason (strerror), never a traceback


@dataclass(frozen=True, slots=True)
class Resource:
    """A folder that directly holds files; an XNAT resource when it has a catalog.

    An XNAT resource folder (`SCANS/<id>/<LABEL>` or `RESOURCES/<LABEL>` with its catalog) holds its
    subfolders too: their files are its files, named by their path inside it (`secondary/x.dcm`), as the
    catalog's URIs name them.
    """

    rel_path: str  # relative to ROOT, "." for ROOT itself, always with "/" separators
    identity: ResourceIdentity
    files: tuple[str, ...]  # paths relative to the folder ("/" separators), catalog excluded, sorted
    catalog_entries: tuple[CatalogEntry, ...] | None  # None without a catalog, or until `discover.load_catalog`
    catalog_error: str | None = None
    unreadable: tuple[UnreadableFolder, ...] = ()  # the folder itself, or subfolders of it, that could not be listed


@dataclass(frozen=True, slots=True)
class HeaderValues:
    """The header values a file contributes: plain strings as XNAT's DICOM library would return them.

    Missing or blank elements are absent from `values`; the template engine supplies
    `no-value-for-<Keyword>` itself.
    """

    values: dict[str, str] = field(default_factory=dict)

    def get(self, keyword: str) -> str | None:
        return self.values.get(keyword)


@dataclass(frozen=True, slots=True)
class FileRecord:
    """Everything the survey learnt about one file. Produced by `survey.dicom.reader`, consumed by `core.classify`."""

    name: str  # the path relative to the resource folder: a file name, or `secondary/x.dcm` in a subfolder
    size: int
    mtime_ns: int
    inode: tuple[int, int]  # (st_dev, st_ino): detects hard links inside a resource
    nlink: int
    header: HeaderValues | None  # None when the file could not be read as DICOM
    reasons: tuple[Reason, ...] = ()
    detail: str | None = None  # a human sentence for the first bad reason; never holds header values
    needs_force: bool = False
    # With the inode (`inode[1]`), what tells a mitigation that a file it will change is the one surveyed,
    # without hashing it here: every write to a file, and no call a user may make, sets it (issue 17).
    ctime_ns: int = 0

    @property
    def is_bad(self) -> bool:
        return not BAD_REASONS.isdisjoint(self.reasons)


@dataclass(frozen=True, slots=True)
class ContentCheck:
    """What a file's content showed: whether its elements fit inside it, and its sha256 when it was hashed.

    Only the copies of one instance are hashed (their bytes are compared); the mitigation of any other
    file is proven by the file's identity (`FileRecord.ctime_ns`) and hashes it when it backs it up.
    """

    sha256: str | None
    intact: bool  # False when the declared elements run past the end of the file
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class FileRestore:
    path: str
    outcome: RestoreOutcome
    reason: str | None = None
