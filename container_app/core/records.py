"""Typed records that flow between the stages, and the coded values that appear in reports.

Enum values are written into reports and read by other tools: they are a contract, never renamed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Reason(enum.StrEnum):
    """Why a file is not conforming, or something worth knowing about it. Stable report codes."""

    # The file cannot take part in grouping: XNAT's "bad files".
    NOT_DICOM = "NOT_DICOM"
    TRUNCATED = "TRUNCATED"
    UNREADABLE = "UNREADABLE"
    MISSING_SOP_CLASS_UID = "MISSING_SOP_CLASS_UID"
    MISSING_SOP_INSTANCE_UID = "MISSING_SOP_INSTANCE_UID"
    INVALID_UID = "INVALID_UID"
    UNSAFE_NAME_VALUE = "UNSAFE_NAME_VALUE"
    GZIP_COMPRESSED = "GZIP_COMPRESSED"
    DICOMDIR = "DICOMDIR"
    SYMLINK = "SYMLINK"
    SYMLINK_OUTSIDE_ROOT = "SYMLINK_OUTSIDE_ROOT"
    NOT_A_REGULAR_FILE = "NOT_A_REGULAR_FILE"

    # Classification of readable files.
    NAME_MISMATCH = "NAME_MISMATCH"
    DUPLICATE = "DUPLICATE"
    DUPLICATE_IDENTICAL = "DUPLICATE_IDENTICAL"
    DUPLICATE_DIFFERENT = "DUPLICATE_DIFFERENT"
    NONACTIONABLE_DUPLICATE = "NONACTIONABLE_DUPLICATE"

    # Findings beyond XNAT's survey; informative, they do not make a file bad.
    IDENTIFYING_NAME = "IDENTIFYING_NAME"
    LEGACY_NAME = "LEGACY_NAME"
    NEEDS_FORCE = "NEEDS_FORCE"
    HARD_LINK = "HARD_LINK"
    MEDIA_STORAGE_UID_MISMATCH = "MEDIA_STORAGE_UID_MISMATCH"
    CATALOG_UID_MISMATCH = "CATALOG_UID_MISMATCH"
    NOT_IN_CATALOG = "NOT_IN_CATALOG"
    CATALOG_ENTRY_MISSING_FILE = "CATALOG_ENTRY_MISSING_FILE"
    PIXEL_DATA_TRUNCATED = "PIXEL_DATA_TRUNCATED"


#: Reasons that make a file one of XNAT's "bad files": reported, never touched.
BAD_REASONS = frozenset(
    {
        Reason.NOT_DICOM,
        Reason.TRUNCATED,
        Reason.UNREADABLE,
        Reason.MISSING_SOP_CLASS_UID,
        Reason.MISSING_SOP_INSTANCE_UID,
        Reason.INVALID_UID,
        Reason.UNSAFE_NAME_VALUE,
        Reason.GZIP_COMPRESSED,
        Reason.DICOMDIR,
        Reason.SYMLINK,
        Reason.SYMLINK_OUTSIDE_ROOT,
        Reason.NOT_A_REGULAR_FILE,
    }
)


class FileStatus(enum.StrEnum):
    """Where a file landed in XNAT's classification."""

    CONFORMING = "CONFORMING"
    MISMATCHED = "MISMATCHED"
    DUPLICATE = "DUPLICATE"
    NONACTIONABLE_DUPLICATE = "NONACTIONABLE_DUPLICATE"
    BAD = "BAD"


class RequestStatus(enum.StrEnum):
    """XNAT's ResourceSurveyRequest statuses, with their exact spelling."""

    CREATED = "CREATED"
    QUEUED_FOR_SURVEY = "QUEUED_FOR_SURVEY"
    SURVEYING = "SURVEYING"
    DIVERGENT = "DIVERGENT"
    CONFORMING = "CONFORMING"
    NONCOMPLIANT = "NONCOMPLIANT"
    QUEUED_FOR_MITIGATION = "QUEUED_FOR_MITIGATION"
    MITIGATING = "MITIGATING"
    RESOURCE_DELETED = "RESOURCE_DELETED"
    CANCELED = "CANCELED"
    ERROR = "ERROR"


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
class Resource:
    """A folder that directly holds files; an XNAT resource when it has a catalog."""

    rel_path: str  # relative to ROOT, "." for ROOT itself, always with "/" separators
    identity: ResourceIdentity
    files: tuple[str, ...]  # file names directly in the folder, catalog excluded, sorted
    catalog_entries: tuple[CatalogEntry, ...] | None  # None without a catalog, or until `discover.load_catalog`
    catalog_error: str | None = None


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
    """Everything the survey learnt about one file. Produced by `headers`, consumed by `classify`."""

    name: str
    size: int
    mtime_ns: int
    inode: tuple[int, int]  # (st_dev, st_ino): detects hard links inside a resource
    nlink: int
    header: HeaderValues | None  # None when the file could not be read as DICOM
    reasons: tuple[Reason, ...] = ()
    detail: str | None = None  # a human sentence for the first bad reason; never holds header values
    needs_force: bool = False

    @property
    def is_bad(self) -> bool:
        return not BAD_REASONS.isdisjoint(self.reasons)
