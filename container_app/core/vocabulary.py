"""The project's vocabulary: the coded values that appear in reports, journals and on the command line.

Enum values are written into reports and journals and read by other tools and by later runs: they are
a contract, never renamed.
"""

from __future__ import annotations

import enum

# --- Report codes: why a file is what it is, and XNAT's statuses ----------------------------------

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
    # A deflated dataset whose header does not end within the inflation cap (survey/dicom/inflate.py).
    HEADER_TOO_LARGE = "HEADER_TOO_LARGE"

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

    # De-identification of the copies of one instance whose bytes differ (issue 15).
    LESS_DEIDENTIFIED = "LESS_DEIDENTIFIED"
    DEIDENTIFICATION_UNDECIDED = "DEIDENTIFICATION_UNDECIDED"

    # A folder, not a file: it could not be listed, so what it holds is unknown (the resource is ERROR).
    UNREADABLE_FOLDER = "UNREADABLE_FOLDER"


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
        Reason.HEADER_TOO_LARGE,
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


# --- The DICOM attributes every file is read for (keywords of pydicom's data dictionary) ----------

#: Keywords read from every file besides the template's: identity for the findings beyond XNAT.
#: The identifying ones are compared with the file name and never written anywhere.
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs")
#: What the pre-1.8.7 namer put into a file name.
LEGACY_KEYWORDS = ("Modality", "StudyDescription", "StudyDate", "StudyTime", "StudyID", "SeriesNumber",
                   "InstanceNumber")
UID_KEYWORDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
ALWAYS_KEYWORDS = (*UID_KEYWORDS, *IDENTIFYING_KEYWORDS, *LEGACY_KEYWORDS)


# --- Choices a user makes -------------------------------------------------------------------------

class KeepPolicy(enum.StrEnum):
    """Which file of an actionable duplicate group a mitigation keeps."""

    NEWEST = "newest"  # XNAT's rule: the most recently modified copy
    OLDEST = "oldest"
    EXPECTED_NAME = "expected-name"  # the copy already at the expected name, if any


class ExecutorChoice(enum.StrEnum):
    """Which executor carries out a mitigation (`--executor`)."""

    AUTO = "auto"  # filesystem where ROOT is writable, else xnat
    FILESYSTEM = "filesystem"
    XNAT = "xnat"


class RestFileOperations(enum.StrEnum):
    REFUSE = "refuse"
    ALLOW = "allow"


# --- The plan -------------------------------------------------------------------------------------

class ActionKind(enum.StrEnum):
    RENAME = "RENAME"  # back up, then move to the expected name
    REMOVE = "REMOVE"  # back up, then delete: a surplus copy of a duplicate
    RETAIN = "RETAIN"  # the kept copy of a duplicate, already at its expected name: untouched


class KeepReason(enum.StrEnum):
    IDENTICAL_AT_EXPECTED_NAME = "IDENTICAL_AT_EXPECTED_NAME"  # copies are byte-identical; this one needs no move
    NEWEST = "NEWEST"  # XNAT's rule
    OLDEST = "OLDEST"
    AT_EXPECTED_NAME = "AT_EXPECTED_NAME"
    ONLY_INTACT_COPY = "ONLY_INTACT_COPY"  # the others are damaged or truncated


class ConflictReason(enum.StrEnum):
    TARGET_TAKEN = "TARGET_TAKEN"  # the expected name belongs to a file that stays
    SAME_TARGET = "SAME_TARGET"  # two files would get the same name
    UNSAFE_TARGET = "UNSAFE_TARGET"  # the expected name must not reach the file system
    NOT_HASHED = "NOT_HASHED"  # the survey recorded neither a checksum nor the identity: no way to prove the file


# --- What execution and restore made of the plan --------------------------------------------------

class Outcome(enum.StrEnum):
    """What became of one action."""

    PLANNED = "PLANNED"
    DONE = "DONE"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


class Step(enum.StrEnum):
    """The step of an action that failed (`failedStep` in the mitigation report)."""

    BACKUP = "backup"
    MOVE = "move"
    DELETE = "delete"


class ResourceStatus(enum.StrEnum):
    """What became of one resource's plan."""

    PLANNED = "PLANNED"  # dry run
    MITIGATED = "MITIGATED"
    PARTIAL = "PARTIAL"  # some files could not be fixed; see errors and conflicts
    STALE = "STALE"  # changed since the survey: nothing done
    FAILED = "FAILED"  # nothing could be done
    LOCKED = "LOCKED"  # another mitigation holds the resource
    NOTHING_TO_DO = "NOTHING_TO_DO"


class RestoreOutcome(enum.StrEnum):
    """What became of one file or catalog on restore."""

    RESTORED = "RESTORED"
    ALREADY_RESTORED = "ALREADY_RESTORED"
    REFUSED = "REFUSED"
    NOT_CHANGED = "NOT_CHANGED"  # the mitigation never changed this file


class XnatWay(enum.StrEnum):
    """How a resource is mitigated through XNAT (the report's `way`)."""

    API = "api"
    FILE_OPERATIONS = "file-operations"


# --- The journal ----------------------------------------------------------------------------------
# A rerun after a crash finds what was done by these names: a typo would silently redo or skip a step,
# so they are written and read only through these members.


class JournalStep(enum.StrEnum):
    """A step of a mitigation, as the journal names it."""

    RESOURCE_START = "resource-start"  # a resource's plan was taken up (its backup folder fixed)
    BACKUP = "backup"  # a file copied into BACKUP and verified
    MOVE = "move"  # a file renamed to its expected name
    DELETE = "delete"  # a surplus copy removed
    CATALOG = "catalog"  # the resource catalog rewritten
    RESOURCE = "resource"  # a resource finished (or found stale)
    TEMPORARY = "temporary"  # an attempt's temporaries' token, journaled before any is made
    MANIFEST = "manifest"  # XNAT file operations: the backup manifest uploaded
    UPLOAD = "upload"  # XNAT file operations: a file uploaded under its new name
    XNAT_SURVEY = "xnat-survey"  # XNAT's mitigation API: XNAT's own survey of the resource
    XNAT_MITIGATION = "xnat-mitigation"  # XNAT's mitigation API: XNAT's own mitigation of the resource
    RESTORE_RESOURCE = "restore-resource"  # restore: a resource's first change ("start") and its end
    RESTORE_FILE = "restore-file"  # restore: a file put back under its original name
    RESTORE_CATALOG = "restore-catalog"  # restore: the catalog put back from its backup


class JournalPhase(enum.StrEnum):
    """Where a step stands: written before it happens and after."""

    START = "start"
    DONE = "done"
    FAILED = "failed"
    STALE = "stale"  # the resource changed since the survey: nothing done
    QUEUED = "queued"  # XNAT accepted the request
    ADOPTED = "adopted"  # XNAT's request from an earlier launch is taken over
