"""Survey reports: findings to documents, validated against the shipped schema, written atomically.

The JSON report streams resource by resource (each validated against the schema's resource
definition as it is written, the envelope at the end), so a survey of millions of files never
holds the whole document in memory.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources as package_data
from typing import TYPE_CHECKING, Any

import fastjsonschema

from container_app.core.classify import FileFinding, ResourceFindings
from container_app.core.errors import ReportError, ReportValidationError
from container_app.core.vocabulary import FileStatus, Reason, RequestStatus
from container_app.support.compiled_cache import compiled_validator
from container_app.support.fsutil import SaveFile
from container_app.support.time import iso, now_utc

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

SURVEY_REPORT = "survey-report.json"
SURVEY_SUMMARY = "survey-summary.csv"
CSV_COLUMNS = ("projectId", "subjectId", "experimentId", "scanId", "resourceId", "resourceLabel", "resourceUri",
               "requestStatus", "surveyDate", "totalEntries", "totalUids", "totalDuplicates", "totalBadFiles",
               "totalMismatchedFiles")


# --- schemas ---------------------------------------------------------------------------------------


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON schema shipped in `container_app/reports/schemas/`."""
    text = package_data.files("container_app.reports").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema(schema_name: str, definition: str | None) -> dict[str, Any]:
    schema = load_schema(schema_name)
    if definition is None:
        return schema
    # Its own $id: validators cache schemas by id, and "#/$defs/..." must resolve inside this document.
    return {"$schema": schema["$schema"], "$id": f"{schema['$id']}/{definition}", "$defs": schema["$defs"],
            "$ref": f"#/$defs/{definition}"}


@cache
def validator(schema_name: str, definition: str | None = None) -> Validator:
    """The reference validator (jsonschema): Draft 7, formats checked; explains what is wrong and where."""
    import jsonschema  # only when a document fails, or for tests: it costs a twentieth of a second to import

    schema = _schema(schema_name, definition)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@cache
def _fast_validator(schema_name: str, definition: str | None = None) -> Callable[[Any], Any]:
    """The same schema compiled to Python by fastjsonschema: fast enough to check every resource of a
    million-file survey as it streams. Equally strict (required fields, types, patterns, formats, no
    unknown properties); on failure the reference validator says what is wrong."""
    # A copy: fastjsonschema rewrites every `$ref` in place, and the cached schema is shared with the reference
    # validators, which then could no longer resolve them.
    schema = copy.deepcopy(_schema(schema_name, definition))
    # The generated code also holds whatever the references reach: keyed by every shipped schema's text.
    shipped = "\0".join(json.dumps(load_schema(name), sort_keys=True) for name in SCHEMAS)
    return compiled_validator(schema, {"http": _offline, "https": _offline}, shipped)


SCHEMAS = ("survey-report.schema.json", "mitigation-report.schema.json", "rollup-report.schema.json")


def _offline(uri: str) -> Any:
    """Resolve references to our own schemas from the package; nothing is ever fetched."""
    for name in SCHEMAS:
        schema = load_schema(name)
        if schema.get("$id") == uri.split("#", 1)[0]:
            return copy.deepcopy(schema)  # fastjsonschema rewrites it in place
    raise ReportError(f"schema reference {uri} is not shipped with the package; schemas never load from the network")


def validate(document: Mapping[str, Any], schema_name: str, definition: str | None = None) -> None:
    """Raise ReportValidationError with the first problem and where it is."""
    try:
        _fast_validator(schema_name, definition)(document)
    except fastjsonschema.JsonSchemaException as fast_error:
        from jsonschema.exceptions import best_match

        error = best_match(validator(schema_name, definition).iter_errors(document))
        if error is None:  # the two validators disagree: trust the stricter answer, and say so
            raise ReportValidationError(f"report fails {schema_name}: {fast_error}") from fast_error
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ReportValidationError(f"report fails {schema_name} at {where}: {error.message}") from fast_error


def load_json_object(path: str) -> dict[str, Any]:
    """A report file's JSON object, or a ReportError saying why it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not a JSON report: {exc}") from exc
    if not isinstance(document, dict):
        raise ReportError(f"{path} is not a report: its JSON is not an object")
    return document


def read_report(path: str, schema_name: str) -> dict[str, Any]:
    """Load and validate a report written by this tool."""
    document = load_json_object(path)
    try:
        validate(document, schema_name)
    except ReportValidationError as exc:
        raise ReportError(f"{path} is not a valid {schema_name.split('.')[0]}: {exc}") from exc
    return document


# --- documents -------------------------------------------------------------------------------------


def rel_file_path(resource_path: str, name: str) -> str:
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
    if finding.detail:
        document["detail"] = finding.detail
    if finding.identifying_tags:
        document["identifyingTags"] = list(finding.identifying_tags)
    if finding.intact is not None:
        document["intact"] = finding.intact
    pair = finding.uids
    if pair is not None:
        document["sopClassUID"], document["sopInstanceUID"] = pair
    return document


_COUNTED = (Reason.IDENTIFYING_NAME, Reason.LEGACY_NAME, Reason.NOT_IN_CATALOG, Reason.CATALOG_UID_MISMATCH,
            Reason.MEDIA_STORAGE_UID_MISMATCH, Reason.SYMLINK, Reason.SYMLINK_OUTSIDE_ROOT, Reason.HARD_LINK,
            Reason.NEEDS_FORCE, Reason.PIXEL_DATA_TRUNCATED, Reason.DUPLICATE_DIFFERENT)


def resource_document(findings: ResourceFindings, survey_date: dt.datetime) -> dict[str, Any]:
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
        "duplicateGroups": [
            {
                "sopClassUID": g.sop_class_uid,
                "sopInstanceUID": g.sop_instance_uid,
                "actionable": g.actionable,
                "identical": g.identical,
                "members": {rel_file_path(resource.rel_path, m): expected[m] for m in g.members},
            }
            for g in findings.groups
        ],
        "files": [file_document(resource.rel_path, f) for f in findings.files],
        "counts": {_camel(r): reasons.get(r, 0) for r in _COUNTED},
    }


def _camel(reason: Reason) -> str:
    head, *rest = reason.value.lower().split("_")
    return head + "".join(p.title() for p in rest)


@dataclass(frozen=True, slots=True)
class RenderedResource:
    """One resource's part of the report, as JSON text, and the few numbers the run's totals need."""

    text: str
    summary: dict[str, Any]
    survey_date: str


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
    }


def render_resource(findings: ResourceFindings, survey_date: dt.datetime | None = None) -> RenderedResource:
    """Build, validate and serialise a resource's document. Runs in the survey's worker processes."""
    moment = survey_date or now_utc()
    document = resource_document(findings, moment)
    validate(document, "survey-report.schema.json", "resource")
    summary = resource_summary(document)
    # dumps, not dump: only dumps takes the C encoder for the whole document
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return RenderedResource(text, summary, iso(moment))


# --- writing ---------------------------------------------------------------------------------------


@dataclass
class Totals:
    counts: Counter[str] = field(default_factory=Counter)

    def add(self, document: Mapping[str, Any]) -> None:
        xnat = document["xnat"]
        c = self.counts
        c["resources"] += 1
        c["files"] += xnat["totalEntries"]
        c[{"CONFORMING": "conforming", "DIVERGENT": "divergent", "NONCOMPLIANT": "noncompliant"}[
            document["requestStatus"]]] += 1
        c["badFiles"] += xnat["totalBadFiles"]
        c["mismatchedFiles"] += xnat["totalMismatchedFiles"]
        c["duplicates"] += xnat["totalDuplicates"]
        c["filesInDuplicates"] += xnat["totalFilesInDuplicates"]
        c["nonActionableDuplicates"] += xnat["totalNonActionableDuplicates"]
        c["filesInNonActionableDuplicates"] += xnat["totalFilesInNonActionableDuplicates"]
        c["identifyingNames"] += document["counts"]["identifyingName"]
        c["catalogEntriesMissingFile"] += document["catalog"]["missingFiles"]

    def as_dict(self) -> dict[str, int]:
        keys = ("resources", "files", "conforming", "divergent", "noncompliant", "badFiles", "mismatchedFiles",
                "duplicates", "filesInDuplicates", "nonActionableDuplicates", "filesInNonActionableDuplicates",
                "identifyingNames", "catalogEntriesMissingFile")
        return {k: self.counts.get(k, 0) for k in keys}


class SurveyReportWriter:
    """Streams `survey-report.json` and `survey-summary.csv` into OUT as resources are surveyed."""

    def __init__(self, out_dir: str, envelope: Mapping[str, Any]) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.envelope = dict(envelope)
        self.totals = Totals()
        self.documents_written = 0
        self.summaries: list[dict[str, Any]] = []  # small per-resource rows: the terminal table, roll-ups
        # Held open across calls (one resource at a time), so these use SaveFile's open/commit/abort.
        self._json = SaveFile(os.path.join(out_dir, SURVEY_REPORT))
        self._json_handle = self._json.open()
        self._csv_file = SaveFile(os.path.join(out_dir, SURVEY_SUMMARY), newline="")
        self._csv = csv.writer(self._csv_file.open())
        self._csv.writerow(CSV_COLUMNS)
        head = json.dumps({k: v for k, v in self.envelope.items() if k not in ("finishedAt", "totals")},
                          ensure_ascii=False, indent=1)
        # Open the envelope and leave `resources` open for streaming.
        self._json_handle.write(head[: head.rstrip().rfind("}")].rstrip() + ',\n "resources": [\n')

    def add_rendered(self, rendered: RenderedResource) -> dict[str, Any]:
        """Write one resource rendered (and validated) by `render_resource`, perhaps in a worker."""
        if self.documents_written:
            self._json_handle.write(",\n")
        self._json_handle.write(rendered.text)
        self.documents_written += 1
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
        })
        return summary

    def finish(self, finished_at: dt.datetime) -> dict[str, Any]:  # the envelope, `resources` left empty
        """Close and validate the envelope, then move both files into place."""
        envelope = {**self.envelope, "finishedAt": iso(finished_at), "totals": self.totals.as_dict(), "resources": []}
        try:
            validate(envelope, "survey-report.schema.json")
        except ReportValidationError:
            self.abort()
            raise
        tail = {"finishedAt": envelope["finishedAt"], "totals": envelope["totals"]}
        self._json_handle.write("\n ],\n" + json.dumps(tail, indent=1)[1:].lstrip("\n") + "\n")
        self._json.commit()
        self._csv_file.commit()
        return envelope

    def abort(self) -> None:
        self._json.abort()
        self._csv_file.abort()


# --- the terminal -----------------------------------------------------------------------------------

_SUMMARY_COLUMNS = (("resource", "path"), ("status", "requestStatus"), ("files", "totalEntries"),
                    ("uids", "totalUids"), ("mismatched", "totalMismatchedFiles"), ("dup groups", "totalDuplicates"),
                    ("bad", "totalBadFiles"), ("identifying", "identifyingNames"))


def text_table(columns: Sequence[tuple[str, str]], rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as a plain aligned table: the first two columns left-aligned (names), the rest right (counts)."""
    table = [[h for h, _ in columns]] + [[str(r[k]) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    out = io.StringIO()
    for i, row in enumerate(table):
        cells = zip(row, widths, strict=True)
        out.write("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(cells)).rstrip())
        out.write("\n")
        if i == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    return out.getvalue()


def summary_table(rows: Iterable[Mapping[str, Any]], totals: Mapping[str, int], limit: int = 40) -> str:
    """A plain table of the resources that need attention (and how many conform), for a terminal."""
    rows = list(rows)
    shown = [r for r in rows if r["requestStatus"] != RequestStatus.CONFORMING.value][:limit]
    out = io.StringIO()
    out.write(text_table(_SUMMARY_COLUMNS, shown))
    hidden = sum(1 for r in rows if r["requestStatus"] != RequestStatus.CONFORMING.value) - len(shown)
    if hidden > 0:
        out.write(f"... and {hidden} more resources needing attention (see the report)\n")
    out.write(
        f"{totals['resources']} resources, {totals['files']} files: {totals['conforming']} conforming, "
        f"{totals['divergent']} divergent, {totals['noncompliant']} noncompliant; "
        f"{totals['mismatchedFiles']} mismatched files, {totals['duplicates']} duplicate groups, "
        f"{totals['badFiles']} bad files, {totals['identifyingNames']} names with identifying values\n"
    )
    return out.getvalue()
