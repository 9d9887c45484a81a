"""Survey reports: findings to documents, validated against the shipped schema, written atomically.

The JSON report streams resource by resource (each validated against the schema's resource
definition as it is written, the envelope at the end), so a survey of millions of files never
holds the whole document in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from container_app.core.classify import DuplicateGroup, FileFinding, ResourceFindings
from container_app.core.errors import ReportValidationError
from container_app.core.vocabulary import FileStatus, Reason
from container_app.reports.envelope import SURVEY_LAYOUT, EnvelopeWriter, compact_json
from container_app.reports.schemas import SURVEY_SCHEMA, validate
from container_app.support.fsutil import SaveFile
from container_app.support.time import iso, now_utc

SURVEY_REPORT = "survey-report.json"
#: 1.1 (issue 17): only the copies of one instance carry a sha256 (null elsewhere); every file a mitigation may
#: change carries `inode` and `ctimeNs`, which prove it unchanged. A mitigation reads 1.0 reports as before.
SURVEY_SCHEMA_VERSION = "1.1"
SURVEY_SUMMARY = "survey-summary.csv"
CSV_COLUMNS = ("projectId", "subjectId", "experimentId", "scanId", "resourceId", "resourceLabel", "resourceUri",
               "requestStatus", "surveyDate", "totalEntries", "totalUids", "totalDuplicates", "totalBadFiles",
               "totalMismatchedFiles")


# --- documents -------------------------------------------------------------------------------------


def rel_file_path(resource_path: str, name: str) -> str:
    """A file's path relative to ROOT, from its path inside the resource (`secondary/x.dcm` in a subfolder)."""
    return name if resource_path == "." else f"{resource_path}/{name}"


def _duplicate_map(findings: ResourceFindings, actionable: bool) -> dict[str, dict[str, dict[str, str]]]:
    expected = {f.name: f.expected_name for f in findings.files}
    result: dict[str, dict[str, dict[str, str]]] = {}
    for group in findings.groups:
        if group.actionable is actionable:
            result.setdefault(group.sop_class_uid, {})[group.sop_instance_uid] = {
                rel_file_path(findings.resource.rel_path, m): expected[m] or "" for m in group.members
            }
    return result


def xnat_survey_report(findings: ResourceFindings, survey_date: dt.datetime) -> dict[str, Any]:
    """XNAT's ResourceSurveyReport for one resource, with XNAT's names, shapes and counting rules."""
    where = findings.resource.rel_path
    # Instance UIDs per class in first-seen order, kept in dicts (ordered sets): a list's `in` made this quadratic.
    uids: dict[str, dict[str, None]] = {}
    for finding in findings.files:
        pair = finding.uids
        if pair is not None:
            uids.setdefault(pair[0], {})[pair[1]] = None
    duplicates = _duplicate_map(findings, actionable=True)
    non_actionable = _duplicate_map(findings, actionable=False)
    bad = [rel_file_path(where, f.name) for f in findings.files if f.status is FileStatus.BAD]
    mismatched = {rel_file_path(where, f.name): f.expected_name or "" for f in findings.files
                  if f.status is FileStatus.MISMATCHED}
    return {
        "resourceSurveyRequestId": 0,
        "surveyDate": int(survey_date.timestamp() * 1000),
        "totalEntries": len(findings.files),
        "totalUids": sum(len(v) for v in uids.values()),
        "totalBadFiles": len(bad),
        "totalMismatchedFiles": len(mismatched),
        "totalDuplicates": sum(len(v) for v in duplicates.values()),
        "totalFilesInDuplicates": sum(len(m) for v in duplicates.values() for m in v.values()),
        "totalNonActionableDuplicates": sum(len(v) for v in non_actionable.values()),
        "totalFilesInNonActionableDuplicates": sum(len(m) for v in non_actionable.values() for m in v.values()),
        "uids": {class_uid: list(instances) for class_uid, instances in uids.items()},
        "badFiles": bad,
        "mismatchedFiles": mismatched,
        "duplicates": duplicates,
        "nonActionableDuplicates": non_actionable,
    }


def file_document(resource_path: str, finding: FileFinding) -> dict[str, Any]:
    record = finding.record
    document: dict[str, Any] = {
        "path": rel_file_path(resource_path, finding.name),
        "size": record.size,
        "mtimeNs": record.mtime_ns,
        "status": finding.status.value,
        "expectedName": finding.expected_name,
        "reasons": list(dict.fromkeys(r.value for r in finding.reasons)),
        "sha256": finding.sha256,
    }
    if finding.needs_content_check:  # what proves to a mitigation that the file it changes is the one surveyed
        document["inode"], document["ctimeNs"] = record.inode[1], record.ctime_ns
    if finding.detail:
        document["detail"] = finding.detail
    if finding.identifying_tags:
        document["identifyingTags"] = list(finding.identifying_tags)
    if finding.intact is not None:
        document["intact"] = finding.intact
    if finding.deidentification is not None:
        document["deidentification"] = finding.deidentification.document()
    pair = finding.uids
    if pair is not None:
        document["sopClassUID"], document["sopInstanceUID"] = pair
    return document


_COUNTED = (Reason.IDENTIFYING_NAME, Reason.LEGACY_NAME, Reason.NOT_IN_CATALOG, Reason.CATALOG_UID_MISMATCH,
            Reason.MEDIA_STORAGE_UID_MISMATCH, Reason.SYMLINK, Reason.SYMLINK_OUTSIDE_ROOT, Reason.HARD_LINK,
            Reason.NEEDS_FORCE, Reason.PIXEL_DATA_TRUNCATED, Reason.DUPLICATE_DIFFERENT, Reason.LESS_DEIDENTIFIED,
            Reason.DEIDENTIFICATION_UNDECIDED)


def survey_resource_document(findings: ResourceFindings, survey_date: dt.datetime, *,
                             with_files: bool = True) -> dict[str, Any]:
    """A resource's document; without its files' documents (`files` empty) when they are rendered apart."""
    resource = findings.resource
    identity = resource.identity
    expected = {f.name: f.expected_name or "" for f in findings.files}
    reasons = Counter(r for f in findings.files for r in set(f.reasons))
    entries = resource.catalog_entries or ()
    return {
        "path": resource.rel_path,
        "identity": {
            "project": identity.project,
            "subject": identity.subject,
            "session": identity.session,
            "scanId": identity.scan_id,
            "resourceLabel": identity.resource_label,
            "catalogPath": identity.catalog_path,
        },
        "requestStatus": findings.status.value,
        "xnat": xnat_survey_report(findings, survey_date),
        "catalog": {
            "present": resource.catalog_entries is not None,
            "entries": len(entries),
            "dcmEntries": sum(1 for e in entries if e.is_dcm_entry),
            "error": resource.catalog_error,
            "missingFiles": [{"uri": c.uri, "reason": c.reason.value} for c in findings.catalog_findings],
        },
        "folder": folder_document(findings),
        "duplicateGroups": [group_document(resource.rel_path, g, expected) for g in findings.groups],
        "files": [file_document(resource.rel_path, f) for f in findings.files] if with_files else [],
        "counts": {_camel(r): reasons.get(r, 0) for r in _COUNTED},
    }


def group_document(resource_path: str, group: DuplicateGroup, expected: Mapping[str, str]) -> dict[str, Any]:
    """One duplicate group; a differing group whose copies were read also says how they compare (issue 15)."""
    document: dict[str, Any] = {
        "sopClassUID": group.sop_class_uid,
        "sopInstanceUID": group.sop_instance_uid,
        "actionable": group.actionable,
        "identical": group.identical,
        "members": {rel_file_path(resource_path, m): expected[m] for m in group.members},
    }
    verdict = group.deidentification
    if verdict is not None:
        document["differingAttributes"] = list(verdict.differing_attributes)
        document["pixelDataDiffers"] = verdict.pixel_data_differs
        document["deidentification"] = {
            "lessDeidentified": [rel_file_path(resource_path, m) for m in verdict.less_deidentified],
            "undecided": verdict.undecided,
            "lookAt": list(verdict.look_at),
            "because": {rel_file_path(resource_path, m): list(keys) for m, keys in verdict.because},
            "profile": f"DICOM PS3.15 table E.1-1, edition {verdict.table_edition}",
        }
    return document


def folder_document(findings: ResourceFindings) -> dict[str, Any]:
    """Whether the resource's folder (and its subfolders) could be listed; those that could not, and why."""
    unreadable = findings.resource.unreadable
    return {"readable": not unreadable,
            "unreadable": [{"path": u.path, "reason": Reason.UNREADABLE_FOLDER.value, "error": u.error}
                           for u in unreadable]}


def _camel(reason: Reason) -> str:
    head, *rest = reason.value.lower().split("_")
    return head + "".join(p.title() for p in rest)


@dataclass(frozen=True, slots=True)
class RenderedResource:
    """One resource's part of the report, as JSON text, and the few numbers the run's totals need."""

    # The text in pieces, written one after the other: a big resource's file documents are never joined into
    # one string (at 36,000 files, the join and the splice were two copies of 18 MB each, issue 17).
    pieces: tuple[str, ...]
    summary: dict[str, Any]
    survey_date: str

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def resource_summary(document: Mapping[str, Any]) -> dict[str, Any]:
    """What the run's totals, the log and the HTML page's tables need of a resource's document, laid out
    as the document is (the catalog's `missingFiles` as a count), so the page takes it as the resource."""
    xnat = document["xnat"]
    return {
        "path": document["path"],
        "identity": document["identity"],
        "requestStatus": document["requestStatus"],
        "xnat": {k: v for k, v in xnat.items() if k.startswith("total")},
        "counts": document["counts"],
        "catalog": {"missingFiles": len(document["catalog"]["missingFiles"]), "error": document["catalog"]["error"]},
        # Short (a folder that cannot be listed is rare) and named in the tables; reports made before
        # folders were reported lack it: theirs were all read.
        "folder": document.get("folder") or {"readable": True, "unreadable": []},
    }


class ResourceRenderer:
    """Builds, validates and serialises a resource's document (`render_resource`). Runs in the survey's workers.

    A big resource's files are rendered apart, chunk by chunk in the workers (`render_file`), and joined
    into the resource's text (`assemble`) with bytes identical to rendering it whole: the schema's
    `files` is a plain array of `file`, so validating each file's document and the resource without its
    files accepts exactly what validating the whole accepts.
    """

    def __call__(self, findings: ResourceFindings, survey_date: dt.datetime | None = None) -> RenderedResource:
        moment = survey_date or now_utc()
        document = survey_resource_document(findings, moment)
        validate(document, SURVEY_SCHEMA, "resource")
        return RenderedResource((compact_json(document),), resource_summary(document), iso(moment))

    def render_file(self, resource_path: str, finding: FileFinding) -> str:
        """One file's document, validated, as the JSON text it has inside its resource's."""
        document = file_document(resource_path, finding)
        validate(document, SURVEY_SCHEMA, "file")
        return compact_json(document)

    def assemble(self, findings: ResourceFindings, file_texts: Sequence[str],
                 survey_date: dt.datetime | None = None) -> RenderedResource:
        """The resource's text from its files' texts (`render_file`, in the order of `findings.files`)."""
        if len(file_texts) != len(findings.files):
            raise ValueError(f"{len(file_texts)} file documents for {len(findings.files)} files")
        moment = survey_date or now_utc()
        document = survey_resource_document(findings, moment, with_files=False)
        validate(document, SURVEY_SCHEMA, "resource")
        text = compact_json(document)
        # The top-level `files` is the only key of that name and is followed by `counts`, whose keys are
        # reasons: its empty array is the last one in the text (a string's quotes are always escaped).
        at = text.rindex(_EMPTY_FILES)
        files = [piece for file_text in file_texts for piece in (",", file_text)][1:]
        pieces = (text[:at], '"files":[', *files, "]", text[at + len(_EMPTY_FILES):])
        return RenderedResource(pieces, resource_summary(document), iso(moment))


_EMPTY_FILES = '"files":[]'

render_resource = ResourceRenderer()


# --- writing ---------------------------------------------------------------------------------------


@dataclass
class Totals:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, document: Mapping[str, Any]) -> None:
        xnat = document["xnat"]
        c = self.counts
        c["resources"] += 1
        c["files"] += xnat["totalEntries"]
        # An ERROR resource (a folder that could not be listed) is counted by `unreadableFolders` instead.
        status = {"CONFORMING": "conforming", "DIVERGENT": "divergent", "NONCOMPLIANT": "noncompliant"}.get(
            document["requestStatus"])
        if status is not None:
            c[status] += 1
        c["badFiles"] += xnat["totalBadFiles"]
        c["mismatchedFiles"] += xnat["totalMismatchedFiles"]
        c["duplicates"] += xnat["totalDuplicates"]
        c["filesInDuplicates"] += xnat["totalFilesInDuplicates"]
        c["nonActionableDuplicates"] += xnat["totalNonActionableDuplicates"]
        c["filesInNonActionableDuplicates"] += xnat["totalFilesInNonActionableDuplicates"]
        c["identifyingNames"] += document["counts"]["identifyingName"]
        c["catalogEntriesMissingFile"] += document["catalog"]["missingFiles"]
        c["unreadableFolders"] += len(document["folder"]["unreadable"])
        c["lessDeidentified"] += document["counts"].get("lessDeidentified", 0)

    def as_dict(self) -> dict[str, int]:
        keys = ("resources", "files", "conforming", "divergent", "noncompliant", "badFiles", "mismatchedFiles",
                "duplicates", "filesInDuplicates", "nonActionableDuplicates", "filesInNonActionableDuplicates",
                "identifyingNames", "catalogEntriesMissingFile", "unreadableFolders", "lessDeidentified")
        return {k: self.counts.get(k, 0) for k in keys}


class SurveyReportWriter:
    """Streams `survey-report.json` and `survey-summary.csv` into OUT as resources are surveyed."""

    def __init__(self, out_dir: str, envelope: Mapping[str, Any]) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.envelope = dict(envelope)
        self.totals = Totals()
        self.summaries: list[dict[str, Any]] = []  # small per-resource rows: the terminal table, roll-ups
        # Held open across calls (one resource at a time), so these use SaveFile's open/commit/abort.
        self._json = SaveFile(os.path.join(out_dir, SURVEY_REPORT))
        json_handle = self._json.open()
        self._csv_file = SaveFile(os.path.join(out_dir, SURVEY_SUMMARY), newline="")
        self._csv = csv.writer(self._csv_file.open())
        self._csv.writerow(CSV_COLUMNS)
        # `finishedAt` and the totals are known only at the end: they follow the resources.
        head = {k: v for k, v in self.envelope.items() if k not in ("finishedAt", "totals")}
        self._resources = EnvelopeWriter(json_handle, head, SURVEY_LAYOUT)

    def add_rendered(self, rendered: RenderedResource) -> dict[str, Any]:
        """Write one resource rendered (and validated) by `render_resource`, perhaps in a worker."""
        self._resources.add(*rendered.pieces)
        summary = rendered.summary
        self.totals.add(summary)
        xnat, identity = summary["xnat"], summary["identity"]
        self._csv.writerow([
            identity["project"] or "", identity["subject"] or "", identity["session"] or "", identity["scanId"] or "",
            "", identity["resourceLabel"] or "", summary["path"], summary["requestStatus"], rendered.survey_date,
            xnat["totalEntries"], xnat["totalUids"], xnat["totalDuplicates"], xnat["totalBadFiles"],
            xnat["totalMismatchedFiles"],
        ])
        self.summaries.append({
            "identity": identity,
            "path": summary["path"], "requestStatus": summary["requestStatus"],
            "totalEntries": xnat["totalEntries"], "totalUids": xnat["totalUids"],
            "totalMismatchedFiles": xnat["totalMismatchedFiles"], "totalDuplicates": xnat["totalDuplicates"],
            "totalBadFiles": xnat["totalBadFiles"], "identifyingNames": summary["counts"]["identifyingName"],
            "unreadableFolders": summary["folder"]["unreadable"],
        })
        return summary

    def finish(self, finished_at: dt.datetime) -> dict[str, Any]:  # the envelope, `resources` left empty
        """Close and validate the envelope, then move both files into place."""
        envelope = {**self.envelope, "finishedAt": iso(finished_at), "totals": self.totals.as_dict(), "resources": []}
        try:
            validate(envelope, SURVEY_SCHEMA)
        except ReportValidationError:
            self.abort()
            raise
        self._resources.close({"finishedAt": envelope["finishedAt"], "totals": envelope["totals"]})
        self._json.commit()
        self._csv_file.commit()
        return envelope

    def abort(self) -> None:
        self._json.abort()
        self._csv_file.abort()

