"""Classifying a resource's files as XNAT does, then the findings XNAT's survey misses. Pure.

XNAT groups readable files by (SOPClassUID, SOPInstanceUID): a group of one whose name is not
the expected name is a mismatch; a group of several sharing one expected name is an actionable
duplicate; a group whose expected names differ is a non-actionable duplicate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from container_app.core.deidentification import CopySignals, GroupVerdict, judge_group
from container_app.core.naming import NamingTemplate, is_legacy_name, unsafe_name_reason
from container_app.core.records import ContentCheck, FileRecord, Resource
from container_app.core.vocabulary import (
    BAD_REASONS,
    IDENTIFYING_KEYWORDS,
    UID_KEYWORDS,
    FileStatus,
    Reason,
    RequestStatus,
)

UidPair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class FileFinding:
    """One file's place in the survey."""

    record: FileRecord
    status: FileStatus
    expected_name: str | None
    reasons: tuple[Reason, ...]
    detail: str | None = None
    identifying_tags: tuple[str, ...] = ()  # tag keywords whose values appear in the name; never the values
    sha256: str | None = None
    intact: bool | None = None  # None when the content was not checked
    deidentification: CopySignals | None = None  # read for the copies of differing groups only (issue 15)

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def uids(self) -> UidPair | None:
        header = self.record.header
        if header is None or self.status is FileStatus.BAD:
            return None
        return header.values["SOPClassUID"], header.values["SOPInstanceUID"]

    @property
    def needs_content_check(self) -> bool:
        """Files a mitigation would touch or compare: their elements checked; duplicates' bytes hashed too."""
        return self.status in (FileStatus.MISMATCHED, FileStatus.DUPLICATE, FileStatus.NONACTIONABLE_DUPLICATE)


@dataclass(frozen=True, slots=True)
class DuplicateGroup:
    sop_class_uid: str
    sop_instance_uid: str
    actionable: bool
    members: tuple[str, ...]  # file names, sorted
    identical: bool | None = None  # all members byte-identical (sha256); None until checked
    deidentification: GroupVerdict | None = None  # differing groups whose copies could all be read


@dataclass(frozen=True, slots=True)
class CatalogFinding:
    """A catalog entry that points at nothing."""

    uri: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class ResourceFindings:
    resource: Resource
    files: tuple[FileFinding, ...]
    groups: tuple[DuplicateGroup, ...]
    catalog_findings: tuple[CatalogFinding, ...]

    @property
    def status(self) -> RequestStatus:
        """XNAT's request status after a survey; ERROR when a folder of the resource could not be listed."""
        if self.resource.unreadable:  # what the folder holds is unknown: no status its files give can stand
            return RequestStatus.ERROR
        if any(f.status in (FileStatus.BAD, FileStatus.MISMATCHED, FileStatus.DUPLICATE) for f in self.files):
            return RequestStatus.DIVERGENT
        if any(g for g in self.groups if not g.actionable):
            return RequestStatus.NONCOMPLIANT
        return RequestStatus.CONFORMING

    def to_check(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.files if f.needs_content_check)

    def to_digest(self) -> tuple[str, ...]:
        """The files whose sha256 the survey needs: the copies of one instance, whose bytes are compared.

        Any other file a mitigation changes is proven unchanged by its identity (inode and change time)
        and hashed when it is backed up, so the survey reads headers only, as XNAT's does (issue 17).
        """
        return tuple(m for g in self.groups for m in g.members)

    def differing_copies(self) -> tuple[str, ...]:
        """The copies of groups whose bytes differ: only these are read for their de-identification."""
        return tuple(m for g in self.groups if g.identical is False for m in g.members)


def _base_name(path: str) -> str:
    """The file name of a path inside the resource: the part the template names (and a rename changes)."""
    return path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file's classification as far as it can go without the rest of its resource (its duplicates).

    `classify_file` makes one per file, anywhere (a survey's workers make them chunk by chunk); `join`
    groups a resource's parts by (SOPClassUID, SOPInstanceUID) and gives each its status.
    """

    record: FileRecord
    expected_name: str | None  # None when the file is bad
    bad: tuple[Reason, str | None] | None  # the first bad reason and its detail
    reasons: tuple[Reason, ...]  # the record's, the catalog's and IDENTIFYING_NAME, in that order
    identifying_tags: tuple[str, ...]
    legacy_name: bool

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def uids(self) -> UidPair | None:
        header = self.record.header
        if header is None or self.bad is not None:
            return None
        return header.values["SOPClassUID"], header.values["SOPInstanceUID"]

    @property
    def at_expected_name(self) -> bool:
        return self.expected_name is not None and self.expected_name == _base_name(self.name)

    def finding(self, status: FileStatus) -> FileFinding:
        """The file's finding once its status (which its duplicates decide) is known."""
        if self.bad is not None:
            reason, detail = self.bad
            reasons = self.reasons if reason in self.reasons else (reason, *self.reasons)
            return FileFinding(self.record, FileStatus.BAD, None, reasons, detail, self.identifying_tags)
        reasons = (*self.reasons, Reason.LEGACY_NAME) if self.legacy_name else self.reasons
        status_reason = _STATUS_REASON.get(status)
        if status_reason is not None:
            reasons = (status_reason, *reasons)
        return FileFinding(self.record, status, self.expected_name, reasons, None, self.identifying_tags)

    def single_finding(self) -> FileFinding:
        """The finding of a file that has no duplicate: conforming at its expected name, else mismatched."""
        if self.bad is not None:
            return self.finding(FileStatus.BAD)
        return self.finding(FileStatus.CONFORMING if self.at_expected_name else FileStatus.MISMATCHED)


def catalog_uids(resource: Resource) -> dict[str, str | None] | None:
    """The resource catalog's instance UID per entry URI; None when the resource has no catalog."""
    if resource.catalog_entries is None:
        return None
    return {e.uri: e.uid for e in resource.catalog_entries}


def classify_file(record: FileRecord, template: NamingTemplate,
                  catalog: Mapping[str, str | None] | None) -> FilePart:
    """One file's part of `classify`: its expected name or why it is bad, catalog and identifying-name reasons.

    `catalog` maps entry URIs to their UIDs (`catalog_uids`); it needs to hold this file's entry only.
    """
    bad: tuple[Reason, str | None] | None = None
    name: str | None = None
    if record.is_bad or record.header is None:
        first = next((r for r in record.reasons if r in BAD_REASONS), Reason.NOT_DICOM)
        bad = (first, record.detail)
    else:
        name = template.render(record.header.values)
        problem = unsafe_name_reason(name)
        if problem is not None:
            bad = (Reason.UNSAFE_NAME_VALUE, f"the expected name would be unsafe: {problem}")
            name = None
    header = record.header
    extra = list(record.reasons)
    if catalog is not None:
        if record.name not in catalog:
            extra.append(Reason.NOT_IN_CATALOG)
        else:
            catalog_uid = catalog[record.name]
            if header is not None and catalog_uid is not None and catalog_uid != header.get("SOPInstanceUID"):
                extra.append(Reason.CATALOG_UID_MISMATCH)
    # A file at its expected name holds only what the template puts there: with no identifying
    # keyword in the template, there is nothing to find (and most files of an archive are such).
    named_by_template = name == _base_name(record.name) and not _identifies(template)
    tags = () if named_by_template else identifying_tags(record)
    if tags:
        extra.append(Reason.IDENTIFYING_NAME)
    legacy = bad is None and header is not None and is_legacy_name(
        _base_name(record.name), header.get("SOPClassUID"), header.get("SOPInstanceUID"))
    return FilePart(record, name, bad, tuple(extra), tags, legacy)


def _identifies(template: NamingTemplate) -> bool:
    return any(k in IDENTIFYING_KEYWORDS for k in template.keywords)


def classify(resource: Resource, records: Sequence[FileRecord], template: NamingTemplate) -> ResourceFindings:
    """Classify one resource's files (no content checks yet: see `with_content_checks`).

    A record's name is its path inside the resource (`secondary/x.dcm` in a subfolder): catalog entries
    are matched on it, as their URIs are relative to the resource folder; the expected name is compared
    with its last part, since a rename stays in the file's folder.
    """
    catalog = catalog_uids(resource)
    return join(resource, [classify_file(r, template, catalog) for r in records])


def join(resource: Resource, parts: Sequence[FilePart]) -> ResourceFindings:
    """The per-resource part of `classify`: group the files' parts by instance, give each file its status."""
    groups: dict[UidPair, list[FilePart]] = {}
    for part in parts:
        pair = part.uids
        if pair is not None:
            groups.setdefault(pair, []).append(part)

    duplicate_groups: list[DuplicateGroup] = []
    status_of: dict[str, FileStatus] = {}
    for (class_uid, instance_uid), members in groups.items():
        if len(members) == 1:
            only = members[0]
            status_of[only.name] = FileStatus.CONFORMING if only.at_expected_name else FileStatus.MISMATCHED
            continue
        actionable = len({m.expected_name for m in members}) == 1
        duplicate_groups.append(DuplicateGroup(class_uid, instance_uid, actionable,
                                               tuple(sorted(m.name for m in members))))
        for member in members:
            status_of[member.name] = FileStatus.DUPLICATE if actionable else FileStatus.NONACTIONABLE_DUPLICATE

    findings = [p.finding(status_of.get(p.name, FileStatus.BAD)) for p in parts]
    on_disk = {p.name for p in parts}
    # An entry inside a folder that could not be listed may well have its file: unknown, not missing.
    unlisted = tuple(f"{_inside(resource.rel_path, u.path)}/" for u in resource.unreadable)
    catalog_findings = tuple(
        CatalogFinding(e.uri, Reason.CATALOG_ENTRY_MISSING_FILE)
        for e in resource.catalog_entries or ()
        if e.uri not in on_disk and not e.uri.startswith(unlisted)
    )
    duplicate_groups.sort(key=lambda g: (g.sop_class_uid, g.sop_instance_uid))
    return ResourceFindings(resource, tuple(findings), tuple(duplicate_groups), catalog_findings)


def _inside(resource_path: str, path: str) -> str:
    """A path relative to ROOT as a path inside the resource folder at `resource_path`."""
    return path if resource_path == "." else path.removeprefix(f"{resource_path}/")


_STATUS_REASON = {
    FileStatus.MISMATCHED: Reason.NAME_MISMATCH,
    FileStatus.DUPLICATE: Reason.DUPLICATE,
    FileStatus.NONACTIONABLE_DUPLICATE: Reason.NONACTIONABLE_DUPLICATE,
}


def with_content_checks(findings: ResourceFindings, checks: Mapping[str, ContentCheck]) -> ResourceFindings:
    """Add sha256 and integrity to the files that were checked, and tell identical duplicates from differing ones."""
    files: list[FileFinding] = []
    groups = []
    for group in findings.groups:
        digests = {checks[m].sha256 for m in group.members if m in checks}
        hashed = None not in digests and all(m in checks for m in group.members)
        identical = len(digests) == 1 if digests and hashed else None
        groups.append(replace(group, identical=identical))
    identical_of = {m: g.identical for g in groups for m in g.members}
    for finding in findings.files:
        check = checks.get(finding.name)
        files.append(finding if check is None else with_check(finding, check, identical_of.get(finding.name)))
    return replace(findings, files=tuple(files), groups=tuple(groups))


def with_check(finding: FileFinding, check: ContentCheck, identical: bool | None = None) -> FileFinding:
    """One file's part of `with_content_checks`; `identical` is its duplicate group's, None outside one."""
    reasons = list(finding.reasons)
    if not check.intact:
        reasons.append(Reason.PIXEL_DATA_TRUNCATED)
    if identical is not None:
        reasons.append(Reason.DUPLICATE_IDENTICAL if identical else Reason.DUPLICATE_DIFFERENT)
    return replace(finding, reasons=tuple(reasons), sha256=check.sha256, intact=check.intact,
                   detail=finding.detail or check.detail)


# --- names that disclose who the patient is ------------------------------------------------------

_NAME_DELIMITERS = r"[._\-^ =]"
_MIN_LENGTH = 3
_MIN_DIGITS_ONLY = 6


def _candidate_values(keyword: str, value: str) -> list[str]:
    if keyword == "PatientName":
        pieces = [p for p in re.split(r"[\^=]", value) if p.strip()]
        return [value, *pieces]
    return [value]


_LEGACY_UNSAFE = re.compile(r"[^a-z0-9_.-]")


@lru_cache(maxsize=4096)
def _as_token(value: str) -> re.Pattern[str]:
    return re.compile(rf"(?:^|{_NAME_DELIMITERS}){re.escape(value)}(?:$|{_NAME_DELIMITERS})")


def identifying_tags(record: FileRecord) -> tuple[str, ...]:
    """Keywords of identifying elements whose values appear in the file's name, as whole tokens.

    Also matches the forms the legacy namer wrote (characters outside [A-Za-z0-9_.-] became `_`).
    The instance's own UIDs are blanked out of the name first (an accession number may well be a
    component of the Study Instance UID), and short values and short numbers are ignored: they
    would match counters by chance.
    """
    if record.header is None:
        return ()
    # The file's own name: a subfolder's name is not the file's, and a rename would not change it.
    name = _base_name(record.name).lower()
    for keyword in UID_KEYWORDS:
        uid = record.header.get(keyword)
        if uid:
            name = name.replace(uid.lower(), "#")
    found: list[str] = []
    for keyword in IDENTIFYING_KEYWORDS:
        value = record.header.get(keyword)
        if not value:
            continue
        for candidate in _candidate_values(keyword, value):
            candidate = candidate.strip().lower()
            if len(candidate) < _MIN_LENGTH or (candidate.isdigit() and len(candidate) < _MIN_DIGITS_ONLY):
                continue
            forms = {candidate, _LEGACY_UNSAFE.sub("_", candidate)}
            # A plain substring test first: the boundary regex runs only for the rare names that hold the value.
            if any(f in name and _as_token(f).search(name) for f in forms):
                found.append(keyword)
                break
    return tuple(found)


def with_deidentification(findings: ResourceFindings, signals: Mapping[str, CopySignals],
                          table_edition: str) -> ResourceFindings:
    """Judge each differing group whose copies were all read, and give its copies their reasons."""
    groups: list[DuplicateGroup] = []
    reason_of: dict[str, Reason] = {}
    for group in findings.groups:
        if group.identical is not False or not all(m in signals for m in group.members):
            groups.append(group)
            continue
        verdict = judge_group({m: signals[m] for m in group.members}, table_edition)
        groups.append(replace(group, deidentification=verdict))
        for member in group.members:
            reason = verdict.reason_for(member)
            if reason is not None:
                reason_of[member] = reason
    files = []
    for finding in findings.files:
        copy = signals.get(finding.name)
        if copy is None:
            files.append(finding)
            continue
        reason = reason_of.get(finding.name)
        reasons = finding.reasons if reason is None else (*finding.reasons, reason)
        files.append(replace(finding, deidentification=copy, reasons=reasons))
    return replace(findings, files=tuple(files), groups=tuple(groups))
