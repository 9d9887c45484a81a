"""Carrying out a mitigation plan through XNAT's REST API (inside XNAT the archive mount is read-only).

Two ways, chosen per server by probing what it offers:

- `api`: XNAT 1.8.8+ has its own survey and mitigation API. Per resource: ask XNAT to survey it, compare
  XNAT's report with ours (mismatched files and duplicate groups, by file name; a different naming
  template or a disagreement refuses), queue XNAT's mitigation, wait (bounded), fetch XNAT's
  mitigation report. XNAT renames catalog entries in place: they stay `cat:dcmEntry`.
- `file-operations` (only with `--rest-file-operations=allow`, on servers without that API): every
  file that will change is first uploaded to the session resource `RESOURCE_SURVEY_BACKUP` under its
  sha256 (no identifying name) and read back to prove the copy, with a manifest JSON mapping each
  original to its backup; only then is a file renamed (upload under the new name, verify, delete the
  old) or removed. Entries made by an upload are plain `cat:entry`: each is reported per file.

Without the API and with file operations refused (the default) nothing is changed.

Every step checks XNAT's state before it acts, so a relaunch after a crash finishes from what XNAT
holds: a survey or mitigation already queued is waited for, a backup already in XNAT is verified and
reused, an upload already made is recognised by its bytes. No original is deleted before a verified
copy of it exists in XNAT.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import re
import stat
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from container_app.core.errors import FileProblem, ResolveProblem
from container_app.core.outcomes import ActionResult, CatalogResult, ResourceResult
from container_app.core.paths import safe_relative
from container_app.core.plan import Action, FileState, ResourcePlan
from container_app.core.records import CatalogEntry
from container_app.core.vocabulary import ActionKind, KeepPolicy, Outcome, ResourceStatus, RestFileOperations, Step
from container_app.mitigation.journal import Journal
from container_app.mitigation.request import MitigationRequest, Surveyor
from container_app.mitigation.xnat.client import (
    XnatClient,
    XnatConflictError,
    XnatNotFoundError,
    XnatPermissionError,
    XnatRequestError,
    XnatServerError,
    XnatUnavailableError,
    quote_segment,
    version_tuple,
)
from container_app.support.time import iso, now_utc
from container_app.survey.catalog import is_catalog_name, read_entries

log = structlog.get_logger("xnat_resource_survey.xnat_executor")

BACKUP_RESOURCE = "RESOURCE_SURVEY_BACKUP"
BACKUP_FORMAT = "BACKUP"
MANIFEST_TYPE = "xnat-resource-survey-backup-manifest"
API_SINCE = (1, 8, 8)

SURVEY_WORKING = frozenset({"CREATED", "QUEUED_FOR_SURVEY", "SURVEYING"})
MITIGATION_WORKING = frozenset({"QUEUED_FOR_MITIGATION", "MITIGATING"})
SURVEY_DONE = frozenset({"DIVERGENT", "CONFORMING", "NONCOMPLIANT"})
MITIGATION_DONE = frozenset({"CONFORMING", "NONCOMPLIANT"})


class Way(enum.StrEnum):
    API = "api"
    FILE_OPERATIONS = "file-operations"


# --- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class XnatTarget:
    """A surveyed resource's place in XNAT."""

    project: str
    subject: str
    experiment: str  # the session's ID (accession number), e.g. XNAT_E00001
    experiment_label: str
    scan: str
    label: str
    resource_id: int | None

    @property
    def session_url(self) -> str:
        return f"/data/experiments/{quote_segment(self.experiment)}"

    @property
    def url(self) -> str:
        return f"{self.session_url}/scans/{quote_segment(self.scan)}/resources/{quote_segment(self.label)}"

    @property
    def backup_url(self) -> str:
        return f"{self.session_url}/resources/{BACKUP_RESOURCE}"

    @property
    def archive_path(self) -> str:
        """How XNAT's catalog refresh service names the resource."""
        return (f"/archive/projects/{self.project}/subjects/{self.subject}/experiments/{self.experiment}"
                f"/scans/{self.scan}/resources/{self.label}")

    def document(self) -> dict[str, Any]:
        return {"project": self.project, "subjectId": self.subject, "experimentId": self.experiment,
                "experimentLabel": self.experiment_label, "scanId": self.scan, "resourceLabel": self.label,
                "resourceId": self.resource_id, "uri": self.url}


@dataclass(frozen=True, slots=True)
class XnatActionResult(ActionResult):
    """An action's outcome, with what XNAT made of the file's catalog entry."""

    catalog_entry_downgraded: bool | None = None  # True: the new entry is a plain cat:entry (no UID)
    backup_name: str | None = None  # the backup's name in RESOURCE_SURVEY_BACKUP (its sha256)

    def report_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        if self.action.kind is not ActionKind.RETAIN and self.outcome is Outcome.DONE:
            fields["catalogEntryDowngraded"] = self.catalog_entry_downgraded
        if self.backup_name is not None:
            fields["backupName"] = self.backup_name
        return fields


@dataclass(frozen=True, slots=True)
class XnatResourceResult(ResourceResult):
    """A resource's outcome through XNAT: which way, why, and what XNAT reported."""

    way: Way | None = None
    way_reason: str | None = None
    target: XnatTarget | None = None
    request_id: int | None = None
    xnat_report: dict[str, Any] | None = None  # XNAT's own ResourceMitigationReport, paths made relative
    xnat_survey: dict[str, Any] | None = None  # how XNAT's survey compared with ours
    catalog_entries: dict[str, int] | None = None
    manifest: str | None = None
    request_status: str | None = None  # XNAT's status afterwards, when known better than from the outcome
    resurvey_status: str | None = None

    def report_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "way": None if self.way is None else self.way.value,
            "wayReason": self.way_reason,
            "xnatTarget": None if self.target is None else self.target.document(),
        }
        if self.request_id is not None:
            fields["xnatRequestId"] = self.request_id
        if self.xnat_report is not None:
            fields["xnat"] = self.xnat_report
        if self.xnat_survey is not None:
            fields["xnatSurvey"] = self.xnat_survey
        if self.catalog_entries is not None:
            fields["catalogEntries"] = self.catalog_entries
        if self.manifest is not None:
            fields["backupManifest"] = self.manifest
        if self.resurvey_status is not None:
            fields["resurveyStatus"] = self.resurvey_status
        status = self.resurvey_status or self.request_status
        if status is not None:
            fields["requestStatus"] = status
        return fields


def _untouched(plan: ResourcePlan, status: ResourceStatus, reason: str, **extra: Any) -> XnatResourceResult:
    results = tuple(XnatActionResult(a, Outcome.SKIPPED, error=reason) for a in plan.actions)
    return XnatResourceResult(plan, status, extra.pop("backup_folder", ""), results, reason=reason, **extra)


# --- XNAT's REST API, as this module uses it -------------------------------------------------------


def _result_rows(document: Any) -> list[dict[str, Any]]:
    try:
        rows = document["ResultSet"]["Result"]
    except (KeyError, TypeError):
        return []
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _status_text(response_text: str) -> str:
    text = response_text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    if isinstance(value, dict):
        value = value.get("rsnStatus") or value.get("status") or ""
    return str(value).strip().strip('"').upper()


class XnatArchive:
    """The REST calls the executors make, with XNAT's paths and JSON shapes in one place."""

    def __init__(self, client: XnatClient) -> None:
        self.client = client
        self._labels: dict[str, dict[str, str]] = {}

    # objects
    def experiment(self, experiment_id: str) -> dict[str, str]:
        document = self.client.get_json(f"/data/experiments/{quote_segment(experiment_id)}",
                                        what=f"session {experiment_id}")
        try:
            fields = document["items"][0]["data_fields"]
        except (KeyError, IndexError, TypeError):
            raise XnatServerError(f"XNAT's answer about session {experiment_id} has no data_fields") from None
        return {k: str(v) for k, v in fields.items() if isinstance(v, str | int)}

    def experiment_id_by_label(self, project: str, label: str) -> str | None:
        if project not in self._labels:
            rows = _result_rows(self.client.get_json(f"/data/projects/{quote_segment(project)}/experiments",
                                                     {"columns": "ID,label"}, what=f"sessions of project {project}"))
            self._labels[project] = {str(r.get("label")): str(r.get("ID")) for r in rows if r.get("ID")}
        return self._labels[project].get(label)

    def scan_resources(self, experiment_id: str, scan: str) -> list[dict[str, Any]]:
        path = f"/data/experiments/{quote_segment(experiment_id)}/scans/{quote_segment(scan)}/resources"
        return _result_rows(self.client.get_json(path, what=f"resources of scan {scan}"))

    def files(self, resource_url: str) -> dict[str, dict[str, Any]]:
        """Catalog entries of a resource by name (relative to the resource), from XNAT's file listing."""
        try:
            rows = _result_rows(self.client.get_json(f"{resource_url}/files", what="the resource's file listing"))
        except XnatNotFoundError:
            return {}
        return {str(r["Name"]): r for r in rows if r.get("Name")}

    def download(self, resource_url: str, name: str) -> bytes:
        return self.client.get_bytes(f"{resource_url}/files/{quote_segment(name)}", what="a file download")

    def upload(self, resource_url: str, name: str, data: bytes, *, overwrite: bool = False,
               file_format: str | None = None, content: str | None = None) -> int:
        """PUT a file; returns the status (409 only when an earlier, retried attempt may have written it)."""
        query = {"inbody": "true"}
        if overwrite:
            query["overwrite"] = "true"
        if file_format:
            query["format"] = file_format
        if content:
            query["content"] = content
        response = self.client.request("PUT", f"{resource_url}/files/{quote_segment(name)}", query=query, data=data,
                                       accept=(200, 201), accept_on_retry=(409,), retry=True, what="a file upload")
        return response.status_code

    def delete_file(self, resource_url: str, name: str) -> None:
        self.client.request("DELETE", f"{resource_url}/files/{quote_segment(name)}", accept=(200, 204),
                            accept_on_retry=(404,), retry=True, what="a file deletion")

    def ensure_resource(self, resource_url: str, file_format: str, content: str) -> None:
        self.client.request("PUT", resource_url, query={"format": file_format, "content": content},
                            accept=(200, 201, 409), retry=True, what="creating the backup resource")

    def refresh_catalog(self, archive_path: str, options: str = "populateStats") -> None:
        self.client.request("POST", "/data/services/refresh/catalog",
                            query={"resource": archive_path, "options": options}, accept=(200, 201, 204),
                            retry=True, what="XNAT's catalog refresh")

    # XNAT 1.8.8+ survey and mitigation API
    def has_mitigation_api(self, project: str) -> bool:
        """Probe: the project-level status of XNAT's survey API answers 200 where the API exists (404 where not)."""
        try:
            self.client.request("GET", f"/xapi/resources/survey/project/{quote_segment(project)}/status",
                                accept=(200,), what="probing XNAT's survey API")
        except XnatNotFoundError:
            return False
        return True

    def latest_request(self, resource_id: int) -> dict[str, Any] | None:
        try:
            document = self.client.get_xapi_json(f"/xapi/resources/survey/resource/{resource_id}",
                                                 what="the resource's latest survey request")
        except XnatNotFoundError:
            return None
        return document if isinstance(document, dict) else None

    def request(self, request_id: int) -> dict[str, Any]:
        document = self.client.get_xapi_json(f"/xapi/resources/survey/request/{request_id}",
                                             what=f"survey request {request_id}")
        if not isinstance(document, dict):
            raise XnatServerError(f"XNAT's answer about survey request {request_id} is not an object")
        return document

    def request_status(self, request_id: int) -> str:
        response = self.client.request("GET", f"/xapi/resources/survey/request/{request_id}/status", accept=(200,),
                                       what=f"the status of survey request {request_id}")
        return _status_text(response.text)

    def start_survey(self, resource_id: int) -> int:
        response = self.client.request("POST", f"/xapi/resources/survey/resource/{resource_id}", accept=(200, 201),
                                       retry=False, what="queueing XNAT's survey")
        return _request_id(response.text)

    def survey_report(self, request_id: int) -> dict[str, Any]:
        document = self.client.get_xapi_json(f"/xapi/resources/survey/request/{request_id}/report",
                                             what=f"XNAT's survey report for request {request_id}")
        if not isinstance(document, dict):
            raise XnatServerError("XNAT's survey report is not an object")
        return document

    def start_mitigation(self, request_id: int, run_id: str) -> int:
        response = self.client.request(
            "POST", f"/xapi/resources/mitigate/request/{request_id}", accept=(200, 201), retry=False,
            query={"reason": "xnat-resource-survey", "comment": f"run {run_id}"}, what="queueing XNAT's mitigation")
        return _request_id(response.text, default=request_id)

    def mitigation_report(self, request_id: int) -> dict[str, Any] | None:
        try:
            document = self.client.get_xapi_json(f"/xapi/resources/mitigate/request/{request_id}/report",
                                                 what=f"XNAT's mitigation report for request {request_id}")
        except XnatConflictError:  # only served once CONFORMING: take it from the request itself
            report = self.request(request_id).get("mitigationReport")
            return report if isinstance(report, dict) else None
        return document if isinstance(document, dict) else None

    def cancel(self, request_id: int) -> None:
        try:
            self.client.request("DELETE", f"/xapi/resources/survey/request/{request_id}", accept=(200, 204),
                                accept_on_retry=(404,), retry=True, what=f"cancelling survey request {request_id}")
        except XnatPermissionError:
            raise
        except XnatRequestError as exc:
            log.warning("could not cancel XNAT's survey request", request=request_id, error=str(exc))


def _is_open(request: Mapping[str, Any], status: str) -> bool:
    return str(request.get("rsnStatus", "")).upper() == status and not request.get("closingDate")


def _request_id(text: str, default: int | None = None) -> int:
    match = re.search(r"\d+", text or "")
    if match is None:
        if default is not None:
            return default
        raise XnatServerError("XNAT did not answer with a request ID")
    return int(match.group(0))


# --- mapping surveyed resources onto XNAT ----------------------------------------------------------


def parse_scan_uri(uri: str) -> tuple[str, str]:
    """`/experiments/E/scans/S` (optionally under `/data` or `/archive`) -> (E, S)."""
    match = re.fullmatch(r"(?:/data|/REST)?(?:/archive)?(?:/projects/[^/]+(?:/subjects/[^/]+)?)?"
                         r"/experiments/([^/]+)/scans/([^/]+)/?", uri.strip())
    if match is None:
        raise ResolveProblem(f"--xnat-scan {uri!r} is not a scan URI like /experiments/<session ID>/scans/<scan ID>")
    return match.group(1), match.group(2)


class TargetResolver:
    """Which XNAT session, scan and resource a surveyed folder is."""

    def __init__(self, archive: XnatArchive, *, session_id: str | None, project_id: str | None,
                 scan_uri: str | None) -> None:
        self.archive = archive
        self.session_id = session_id
        self.project_id = project_id
        self.scan = parse_scan_uri(scan_uri) if scan_uri else None
        self._experiments: dict[str, dict[str, str]] = {}

    def resolve(self, plan: ResourcePlan) -> XnatTarget:
        identity = plan.identity
        label = identity.get("resourceLabel")
        scan = identity.get("scanId")
        session_id = self.session_id
        if self.scan is not None:
            session_id = session_id or self.scan[0]
            if scan is None:
                scan = self.scan[1]
        if not scan or not label:
            raise ResolveProblem(f"{plan.resource_path} is not a scan resource (SCANS/<scan>/<label>); only scan "
                                 "resources are mitigated through XNAT")
        experiment_id = self._experiment_id(plan, session_id)
        fields = self._experiment(experiment_id)
        project = fields.get("project", "")
        surveyed_project = identity.get("project")
        if surveyed_project and project and surveyed_project != project:
            raise ResolveProblem(f"the mount's catalog belongs to project {surveyed_project!r} but XNAT session "
                                 f"{experiment_id} is in project {project!r}: is --xnat-session right?")
        if identity.get("session") and fields.get("label") and identity["session"] != fields["label"]:
            raise ResolveProblem(f"the mount holds session {identity['session']!r} but XNAT session {experiment_id} "
                                 f"is labelled {fields['label']!r}")
        rows = self.archive.scan_resources(experiment_id, scan)
        matching = [r for r in rows if str(r.get("label")) == label]
        if not matching:
            raise ResolveProblem(f"XNAT session {experiment_id} has no resource {label!r} on scan {scan}")
        raw_id = matching[0].get("xnat_abstractresource_id")
        resource_id = int(raw_id) if raw_id not in (None, "") and str(raw_id).isdigit() else None
        return XnatTarget(project=project, subject=fields.get("subject_ID", ""), experiment=experiment_id,
                          experiment_label=fields.get("label", ""), scan=scan, label=label, resource_id=resource_id)

    def _experiment_id(self, plan: ResourcePlan, session_id: str | None) -> str:
        identity = plan.identity
        if session_id and not identity.get("session"):
            return session_id
        label = identity.get("session")
        if label:
            if session_id:
                return session_id  # checked against the label by the caller
            project = self.project_id or identity.get("project")
            if not project:
                raise ResolveProblem(f"cannot tell which XNAT project holds session {label!r}: pass --xnat-project")
            found = self.archive.experiment_id_by_label(project, label)
            if found is None:
                raise ResolveProblem(f"XNAT project {project!r} has no session labelled {label!r}")
            return found
        raise ResolveProblem("ROOT is a session whose XNAT ID the mount does not show: pass --xnat-session <ID> "
                             "(the session wrapper of command.json does)")

    def _experiment(self, experiment_id: str) -> dict[str, str]:
        if experiment_id not in self._experiments:
            try:
                self._experiments[experiment_id] = self.archive.experiment(experiment_id)
            except XnatNotFoundError:
                raise ResolveProblem(f"XNAT has no session with ID {experiment_id!r}") from None
        return self._experiments[experiment_id]


# --- the mount (a read-only, live view of the archive) ---------------------------------------------


def _folder(root: str, plan: ResourcePlan) -> str:
    return root if plan.resource_path == "." else os.path.join(root, *safe_relative(plan.resource_path).split("/"))


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mount_staleness(root: str, plan: ResourcePlan) -> str | None:
    """Why the mounted resource no longer looks as the survey saw it, or None."""
    folder = _folder(root, plan)
    try:
        present = {e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)
                   and not is_catalog_name(e.name)}
    except OSError as exc:
        return f"cannot list the resource: {exc.strerror}"
    surveyed = {_name(f.path) for f in plan.files_at_survey}
    if added := sorted(present - surveyed):
        return f"{len(added)} file(s) added since the survey"
    if gone := sorted(surveyed - present):
        return f"{len(gone)} file(s) gone since the survey"
    for action in plan.actions:
        path = os.path.join(folder, _name(action.source.path))
        try:
            st = os.lstat(path)
        except OSError:
            return "a file to change is gone since the survey"
        if not stat.S_ISREG(st.st_mode) or st.st_size != action.source.size or st.st_mtime_ns != action.source.mtime_ns:
            return "a file to change changed since the survey (size or modification time)"
    return None


def read_mount_file(root: str, plan: ResourcePlan, state: FileState) -> bytes:
    """The surveyed bytes of a file, read from the mount and proven by the survey's sha256."""
    path = os.path.join(_folder(root, plan), _name(state.path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise FileProblem(f"cannot read the file from the archive mount: {exc.strerror or exc}") from exc
    if state.sha256 is not None and _sha256(data) != state.sha256:
        raise FileProblem("the file changed since the survey (sha256 differs); not touched")
    return data


def mount_catalog(root: str, plan: ResourcePlan) -> tuple[CatalogEntry, ...] | None:
    if plan.catalog_path is None:
        return None
    try:
        return read_entries(os.path.join(root, *safe_relative(plan.catalog_path).split("/")))
    except (OSError, ET.ParseError):
        return None


# --- comparing XNAT's survey with ours -------------------------------------------------------------


class _Names:
    """Matches XNAT's absolute server paths to file names within the resource (by path suffix)."""

    def __init__(self, plan: ResourcePlan) -> None:
        prefix = "" if plan.resource_path == "." else plan.resource_path + "/"
        self.prefix = prefix
        self.known = sorted({f.path[len(prefix):] if f.path.startswith(prefix) else _name(f.path)
                             for f in plan.files_at_survey}, key=len, reverse=True)

    def of_server_path(self, path: str) -> str:
        for name in self.known:
            if path == name or path.endswith("/" + name):
                return name
        return _name(path)

    def of_report_path(self, path: str) -> str:
        return path[len(self.prefix):] if self.prefix and path.startswith(self.prefix) else _name(path)

    def rel(self, name: str) -> str:
        return self.prefix + name


def _duplicate_sets(duplicates: Mapping[str, Any],
                    name_of: Callable[[str], str]) -> dict[tuple[str, str], dict[str, str]]:
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for class_uid, instances in (duplicates or {}).items():
        for instance_uid, members in (instances or {}).items():
            groups[(class_uid, instance_uid)] = {name_of(p): str(e) for p, e in (members or {}).items()}
    return groups


def compare_surveys(plan: ResourcePlan, ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """How XNAT's ResourceSurveyReport compares with our survey of the same resource.

    Returns counts (never file names, which may carry patient names) and a verdict: `agree`,
    `template` (XNAT expects other names for the same files: another dicomFileNameTemplate) or
    `disagree` (one survey sees mismatches or duplicates the other does not).
    """
    names = _Names(plan)
    our_xnat = ours.get("xnat", {})
    our_mismatch = {names.of_report_path(p): str(e) for p, e in our_xnat.get("mismatchedFiles", {}).items()}
    their_mismatch = {names.of_server_path(p): str(e) for p, e in (theirs.get("mismatchedFiles") or {}).items()}
    our_dups = _duplicate_sets(our_xnat.get("duplicates", {}), names.of_report_path)
    their_dups = _duplicate_sets(theirs.get("duplicates") or {}, names.of_server_path)

    our_expected = {**our_mismatch, **{n: e for g in our_dups.values() for n, e in g.items()}}
    their_expected = {**their_mismatch, **{n: e for g in their_dups.values() for n, e in g.items()}}
    template = sorted(n for n in set(our_expected) & set(their_expected) if our_expected[n] != their_expected[n])
    # A file we call mismatched that XNAT saw (its UIDs are in XNAT's report) but found well named: a template too.
    their_uids = {(c, i) for c, instances in (theirs.get("uids") or {}).items() for i in instances}
    files = {f["path"]: f for f in ours.get("files", [])}
    for name in set(our_mismatch) - set(their_expected):
        record = files.get(names.rel(name), {})
        if (record.get("sopClassUID"), record.get("sopInstanceUID")) in their_uids:
            template.append(name)
    only_ours = (set(our_mismatch) ^ set(their_mismatch)) | {n for g in set(our_dups) ^ set(their_dups)
                                                            for n in (our_dups.get(g) or their_dups.get(g) or {})}
    for group in set(our_dups) & set(their_dups):
        if set(our_dups[group]) != set(their_dups[group]):
            only_ours |= set(our_dups[group]) ^ set(their_dups[group])
    verdict = "template" if template else ("disagree" if only_ours else "agree")
    return {
        "verdict": verdict,
        "requestId": theirs.get("resourceSurveyRequestId"),
        "xnatMismatchedFiles": len(their_mismatch), "ourMismatchedFiles": len(our_mismatch),
        "xnatDuplicates": len(their_dups), "ourDuplicates": len(our_dups),
        "filesWithOtherExpectedNames": len(set(template)),
        "filesSeenByOneSurveyOnly": len(only_ours - set(template)),
    }


# --- the executors -----------------------------------------------------------------------------------


@dataclass
class _Context:
    archive: XnatArchive
    root: str
    run_id: str
    journal: Journal
    survey: Mapping[str, Mapping[str, Any]]  # our survey's resources by path
    wait_s: float


def _status_after(results: Sequence[ActionResult], plan: ResourcePlan, extra_error: bool = False) -> ResourceStatus:
    failed = sum(1 for r in results if r.outcome is Outcome.FAILED)
    done = sum(1 for r in results if r.outcome is Outcome.DONE and r.action.kind is not ActionKind.RETAIN)
    if results and failed and not done:
        return ResourceStatus.FAILED
    if failed or plan.conflicts or extra_error or any(r.outcome is Outcome.SKIPPED for r in results):
        return ResourceStatus.PARTIAL
    return ResourceStatus.MITIGATED


class XnatApiExecutor:
    """XNAT's own survey and mitigation (XNAT 1.8.8+): catalog entries are renamed in place."""

    def __init__(self, context: _Context) -> None:
        self.c = context

    def execute(self, plan: ResourcePlan, target: XnatTarget, why: str) -> XnatResourceResult:
        c = self.c
        common: dict[str, Any] = {"way": Way.API, "way_reason": why, "target": target}
        if target.resource_id is None:
            return _untouched(plan, ResourceStatus.FAILED, "XNAT did not give the resource's numeric ID", **common)
        rid = target.resource_id
        resource = plan.resource_path
        latest = c.archive.latest_request(rid)
        if latest is not None and str(latest.get("rsnStatus", "")).upper() in MITIGATION_WORKING:
            # Queued by an earlier run (or someone else): wait for it, report what XNAT did.
            request_id = int(latest["id"])
            c.journal.append("xnat-mitigation", "adopted", resource=resource, requestId=request_id)
            c.journal.commit()
            log.info("XNAT is already mitigating this resource; waiting for it", resource=resource,
                     request=request_id)
            return self._finish(plan, request_id, common, adopted=True)

        stale = mount_staleness(c.root, plan)
        if stale is not None:
            return _untouched(plan, ResourceStatus.STALE, stale, **common)

        ours = c.survey.get(resource, {})
        comparison: dict[str, Any] | None = None
        if latest is not None and _is_open(latest, "DIVERGENT"):
            # An open survey of XNAT's, from an earlier run or someone else: use it if it says what ours says;
            # otherwise it is out of date: cancel it (it only holds a report) and ask XNAT to survey afresh.
            request_id = int(latest["id"])
            comparison = compare_surveys(plan, ours, c.archive.survey_report(request_id))
            if comparison["verdict"] == "agree":
                status = "DIVERGENT"
                c.journal.append("xnat-survey", "adopted", resource=resource, requestId=request_id)
            else:
                c.archive.cancel(request_id)
                comparison, latest = None, None
        if comparison is None:
            started_ms = int(time.time() * 1000)
            c.journal.append("xnat-survey", "start", resource=resource, resourceId=rid)
            request_id = self._start_survey(rid, latest, started_ms)
            c.journal.append("xnat-survey", "queued", resource=resource, requestId=request_id)
            c.journal.commit()
            status = self._wait(request_id, SURVEY_WORKING)
        common["request_id"] = request_id
        if status in SURVEY_WORKING:
            return _untouched(plan, ResourceStatus.FAILED, f"XNAT's survey (request {request_id}) did not finish "
                              f"within {c.wait_s:.0f} s; nothing was changed", request_status=status, **common)
        if status not in SURVEY_DONE:
            return _untouched(plan, ResourceStatus.FAILED, f"XNAT's survey (request {request_id}) ended {status}; "
                              "nothing was changed", request_status=status, **common)
        if comparison is None:
            comparison = compare_surveys(plan, ours, c.archive.survey_report(request_id))
        common["xnat_survey"] = comparison
        c.journal.append("xnat-survey", "done", resource=resource, requestId=request_id, status=status,
                         verdict=comparison["verdict"])
        c.journal.commit()
        if comparison["verdict"] != "agree" or status != "DIVERGENT":
            if status == "DIVERGENT":
                c.archive.cancel(request_id)  # our own request: leave no open request behind that nobody acts on
            if comparison["verdict"] == "template":
                reason = (f"XNAT expects other names than this survey for {comparison['filesWithOtherExpectedNames']}"
                          " file(s): XNAT's dicomFileNameTemplate differs from --template. Set --template to the "
                          "site's template (Administer > Site Administration > DICOM); nothing was changed")
                return _untouched(plan, ResourceStatus.FAILED, reason, request_status="DIVERGENT", **common)
            reason = (f"XNAT's own survey disagrees with this one ({comparison['filesSeenByOneSurveyOnly']} file(s) "
                      "mismatched or duplicated in one survey only): the resource changed since, or files are not "
                      "DICOM entries in XNAT's catalog. Nothing was changed; survey again")
            return _untouched(plan, ResourceStatus.STALE, reason, request_status="DIVERGENT", **common)

        self._queue_mitigation(request_id, resource)
        return self._finish(plan, request_id, common, adopted=False)

    def _start_survey(self, resource_id: int, latest: dict[str, Any] | None, started_ms: int) -> int:
        c = self.c
        if latest is not None and str(latest.get("rsnStatus", "")).upper() in SURVEY_WORKING:
            return int(latest["id"])  # a survey is already under way: use it
        last: XnatRequestError | None = None
        for delay in [*c.archive.client.retry.delays(), None]:
            try:
                return c.archive.start_survey(resource_id)
            except XnatConflictError as exc:  # an open request is being worked on
                last = exc
            except (XnatUnavailableError, XnatServerError) as exc:
                last = exc  # it may have been queued nonetheless: look before asking again
            found = c.archive.latest_request(resource_id)
            if found is not None:
                created = found.get("created") or found.get("timestamp") or 0
                status = str(found.get("rsnStatus", "")).upper()
                if status in SURVEY_WORKING or (isinstance(created, int) and created >= started_ms - 1000
                                                and status in SURVEY_DONE):
                    return int(found["id"])
                if _is_open(found, "DIVERGENT"):  # an older open survey blocks a new one
                    c.archive.cancel(int(found["id"]))
            if delay is None:
                break
            time.sleep(delay)
        assert last is not None
        raise last

    def _queue_mitigation(self, request_id: int, resource: str) -> None:
        c = self.c
        c.journal.append("xnat-mitigation", "start", resource=resource, requestId=request_id)
        c.journal.commit()
        last: XnatRequestError | None = None
        for delay in [*c.archive.client.retry.delays(), None]:
            try:
                c.archive.start_mitigation(request_id, c.run_id)
                break
            except (XnatConflictError, XnatUnavailableError, XnatServerError) as exc:
                last = exc
            status = c.archive.request_status(request_id)
            if status in MITIGATION_WORKING or status in MITIGATION_DONE or status == "ERROR":
                break  # the earlier attempt reached XNAT
            if isinstance(last, XnatConflictError) or delay is None:
                raise last
            time.sleep(delay)
        c.journal.append("xnat-mitigation", "queued", resource=resource, requestId=request_id)
        c.journal.commit()

    def _wait(self, request_id: int, working: frozenset[str]) -> str:
        deadline = time.monotonic() + self.c.wait_s
        pause = 0.1
        while True:
            status = self.c.archive.request_status(request_id)
            if status not in working or time.monotonic() >= deadline:
                return status
            time.sleep(min(pause, max(deadline - time.monotonic(), 0.0)))
            pause = min(pause * 1.5, 5.0)

    def _finish(self, plan: ResourcePlan, request_id: int, common: dict[str, Any], *,
                adopted: bool) -> XnatResourceResult:
        c = self.c
        common = {**common, "request_id": request_id}
        status = self._wait(request_id, MITIGATION_WORKING | SURVEY_WORKING)
        if status in MITIGATION_WORKING:
            waiting = (f"XNAT has not finished mitigating within {c.wait_s:.0f} s (request {request_id} is "
                       f"{status}); it carries on: run again later to collect its report")
            return _untouched(plan, ResourceStatus.PARTIAL, waiting, request_status=status, **common)
        report = c.archive.mitigation_report(request_id) if status in MITIGATION_DONE or status == "ERROR" else None
        if report is None:
            return _untouched(plan, ResourceStatus.FAILED, f"XNAT's mitigation (request {request_id}) ended {status} "
                              "without a mitigation report", request_status=status, **common)
        c.journal.append("xnat-mitigation", "done", resource=plan.resource_path, requestId=request_id, status=status)
        c.journal.commit()
        results, converted = actions_from_xnat(plan, c.survey.get(plan.resource_path, {}), report)
        results, counts = catalog_flags(c.root, plan, results)
        common["catalog_entries"] = counts
        extra_error = bool(converted["catalogWriteError"] or converted["resourceSaveError"]) or status == "ERROR"
        outcome = _status_after(results, plan, extra_error)
        reason: str | None = None
        if adopted:
            reason = f"finished XNAT's mitigation request {request_id}, queued by an earlier run"
        if status == "ERROR":
            reason = f"XNAT's mitigation (request {request_id}) ended in ERROR; see the errors per file"
        return XnatResourceResult(plan, outcome, str(report.get("cachePath") or ""), tuple(results), reason=reason,
                                  xnat_report=converted, request_status=status, **common)


def actions_from_xnat(plan: ResourcePlan, ours: Mapping[str, Any],
                      report: Mapping[str, Any]) -> tuple[list[XnatActionResult], dict[str, Any]]:
    """What XNAT did, as our actions (for the report and restore), and XNAT's report with relative paths."""
    names = _Names(plan)
    states = {names.of_report_path(f.path): f for f in plan.files_at_survey}
    our_xnat = ours.get("xnat", {})
    mismatched = {names.of_report_path(p) for p in our_xnat.get("mismatchedFiles", {})}
    groups = {n: g for g, members in _duplicate_sets(our_xnat.get("duplicates", {}), names.of_report_path).items()
              for n in members}

    def state(name: str) -> FileState:
        return states.get(name) or FileState(names.rel(name), 0, 0, None)

    moved = {names.of_server_path(o): names.of_server_path(n) for o, n in (report.get("movedFiles") or {}).items()}
    removed = {names.of_server_path(o): str(b) for o, b in (report.get("removedFiles") or {}).items()}
    retained = [names.of_server_path(p) for p in report.get("retainedFiles") or []]
    backup_errors = {names.of_server_path(p): e for p, e in (report.get("backupErrors") or {}).items()}
    move_errors = {names.of_server_path(p): e for p, e in (report.get("moveErrors") or {}).items()}
    delete_errors = {names.of_server_path(p): str(e) for p, e in (report.get("deleteErrors") or {}).items()}
    planned = {_name(a.source.path): a for a in plan.actions}

    def reason(name: str, kind: ActionKind) -> str:
        if kind is ActionKind.REMOVE:
            return "DUPLICATE_SURPLUS"
        return "NAME_MISMATCH" if name in mismatched and name not in groups else "DUPLICATE_KEPT:NEWEST"

    def message(error: Any) -> str:
        return str(error.get("message") if isinstance(error, dict) else error)

    results: list[XnatActionResult] = []
    seen: set[str] = set()
    for name in sorted(set(removed) - set(moved)) + sorted(set(delete_errors) - set(removed)):
        action = Action(ActionKind.REMOVE, state(name), None, reason(name, ActionKind.REMOVE), groups.get(name))
        if name in delete_errors:
            results.append(XnatActionResult(action, Outcome.FAILED, removed.get(name), delete_errors[name],
                                            Step.DELETE))
        else:
            results.append(XnatActionResult(action, Outcome.DONE, removed[name]))
        seen.add(name)
    for name in sorted(set(moved) | (set(move_errors) - seen)):
        new = moved.get(name)
        if new is None and name in planned and planned[name].target:
            new = names.of_report_path(planned[name].target or "")
        action = Action(ActionKind.RENAME, state(name), names.rel(new) if new else None,
                        reason(name, ActionKind.RENAME), groups.get(name))
        if name in move_errors:
            results.append(XnatActionResult(action, Outcome.FAILED, removed.get(name), message(move_errors[name]),
                                            Step.MOVE))
        else:
            results.append(XnatActionResult(action, Outcome.DONE, removed.get(name)))
        seen.add(name)
    for name in sorted(set(backup_errors) - seen):
        planned_action = planned.get(name)
        kind = planned_action.kind if planned_action is not None else ActionKind.RENAME
        action = Action(kind, state(name), planned_action.target if planned_action else None, reason(name, kind),
                        groups.get(name))
        results.append(XnatActionResult(action, Outcome.FAILED, None, message(backup_errors[name]), Step.BACKUP))
        seen.add(name)
    for name in retained:
        if name not in seen:
            results.append(XnatActionResult(Action(ActionKind.RETAIN, state(name), None, "DUPLICATE_KEPT:NEWEST",
                                                   groups.get(name)), Outcome.DONE))
            seen.add(name)
    for name, planned_action in planned.items():
        if name not in seen and planned_action.kind is not ActionKind.RETAIN:
            results.append(XnatActionResult(planned_action, Outcome.SKIPPED, error="XNAT's mitigation did not act "
                                            "on this file"))

    def rel_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {names.rel(k): v for k, v in mapping.items()}

    converted = {
        "resourceSurveyRequestId": int(report.get("resourceSurveyRequestId") or 0),
        "cachePath": str(report.get("cachePath") or ""),
        "movedFiles": {names.rel(o): names.rel(n) for o, n in moved.items()},
        "removedFiles": rel_map(removed),
        "retainedFiles": sorted({names.rel(p) for p in retained}),
        "backupErrors": {names.rel(k): {"file": names.rel(k), "message": message(v)} for k, v in backup_errors.items()},
        "moveErrors": {names.rel(k): {"file": names.rel(k), "message": message(v)} for k, v in move_errors.items()},
        "deleteErrors": rel_map(delete_errors),
        "catalogWriteError": report.get("catalogWriteError") or None,
        "resourceSaveError": report.get("resourceSaveError") or None,
        "totalMovedFiles": int(report.get("totalMovedFiles") or len(moved)),
        "totalRemovedFiles": int(report.get("totalRemovedFiles") or len(removed)),
        "totalFileErrors": int(report.get("totalFileErrors") or (len(backup_errors) + len(move_errors)
                                                                  + len(delete_errors))),
    }
    return results, converted


@dataclass
class _Backup:
    name: str  # the sha256, the backup's file name in RESOURCE_SURVEY_BACKUP
    size: int


class XnatFileOpsExecutor:
    """Renames and removals by upload, verify and delete, with verified backups in XNAT first."""

    def __init__(self, context: _Context) -> None:
        self.c = context
        self._verified: set[tuple[str, str]] = set()  # (session, backup name) read back this run

    def execute(self, plan: ResourcePlan, target: XnatTarget, why: str) -> XnatResourceResult:
        c = self.c
        common: dict[str, Any] = {"way": Way.FILE_OPERATIONS, "way_reason": why, "target": target,
                                  "backup_folder": f"xnat:{target.backup_url}"}
        resource = plan.resource_path
        if not plan.actions:
            status = ResourceStatus.PARTIAL if plan.conflicts else ResourceStatus.NOTHING_TO_DO
            return _untouched(plan, status, "nothing can be done safely" if plan.conflicts else "", **common)
        stale = mount_staleness(c.root, plan)
        if stale is not None:
            return _untouched(plan, ResourceStatus.STALE, stale, **common)
        listing = c.archive.files(target.url)
        entries = mount_catalog(c.root, plan)
        if entries is not None and {e.uri for e in entries} != set(listing):
            differ = len({e.uri for e in entries} ^ set(listing))
            return _untouched(plan, ResourceStatus.FAILED, f"the mounted catalog and XNAT's file listing differ in "
                              f"{differ} name(s): is the mount XNAT session {target.experiment}? Nothing was changed",
                              **common)
        catalog_before = _catalog_sha(c.root, plan)
        c.journal.append("resource-start", "done", resource=resource, way=Way.FILE_OPERATIONS.value,
                         experiment=target.experiment)
        c.journal.commit()

        # 1. A verified copy of every file that will change, in XNAT, before anything is touched.
        c.archive.ensure_resource(target.backup_url, BACKUP_FORMAT, BACKUP_RESOURCE)
        backups = c.archive.files(target.backup_url)
        results: dict[int, XnatActionResult] = {}
        verified: dict[int, _Backup] = {}
        for index, action in enumerate(plan.actions):
            if action.kind is ActionKind.RETAIN:
                results[index] = XnatActionResult(action, Outcome.DONE)
                continue
            try:
                verified[index] = self._backup(plan, target, action, backups)
            except (FileProblem, XnatRequestError) as exc:
                if isinstance(exc, XnatPermissionError):
                    raise
                results[index] = XnatActionResult(action, Outcome.FAILED, None, str(exc), Step.BACKUP)
                c.journal.append("backup", "failed", resource=resource, path=action.source.path, error=str(exc))
                continue
            c.journal.append("backup", "done", resource=resource, path=action.source.path,
                             backup=verified[index].name)
        c.journal.commit()

        # 2. The manifest: which original each backup is. Written and read back before any change.
        manifest_name: str | None = None
        if verified:
            try:
                manifest_name = self._write_manifest(plan, target, [(plan.actions[i], b) for i, b in
                                                                     sorted(verified.items())])
            except (FileProblem, XnatRequestError) as exc:
                if isinstance(exc, XnatPermissionError):
                    raise
                for index in verified:
                    results[index] = XnatActionResult(plan.actions[index], Outcome.FAILED, None,
                                                      f"the backup manifest could not be written: {exc}", Step.BACKUP)
                verified.clear()
            else:
                c.journal.append("manifest", "done", resource=resource, manifest=manifest_name)
                c.journal.commit()

        # 3. Renames and removals, in the plan's order (a name is freed before it is taken).
        replaceable = frozenset(_name(plan.actions[i].source.path) for i in verified
                                if plan.actions[i].kind is ActionKind.REMOVE)
        for index, action in enumerate(plan.actions):
            if index not in verified:
                continue
            backup = verified[index]
            backup_path = f"{target.backup_url}/files/{backup.name}"
            step = Step.DELETE if action.kind is ActionKind.REMOVE else Step.MOVE
            c.journal.append(step.value, "start", resource=resource, path=action.source.path, target=action.target)
            try:
                if action.kind is ActionKind.REMOVE:
                    self._remove(plan, target, action, listing)
                else:
                    self._rename(plan, target, action, listing, replaceable)
            except (FileProblem, XnatRequestError) as exc:
                if isinstance(exc, XnatPermissionError):
                    raise
                results[index] = XnatActionResult(action, Outcome.FAILED, backup_path, str(exc), step,
                                                  backup_name=backup.name)
                c.journal.append(step.value, "failed", resource=resource, path=action.source.path, error=str(exc))
                continue
            results[index] = XnatActionResult(action, Outcome.DONE, backup_path, backup_name=backup.name,
                                              catalog_entry_downgraded=action.kind is ActionKind.RENAME)
            c.journal.append(step.value, "done", resource=resource, path=action.source.path, target=action.target)
        c.journal.commit()

        # 4. XNAT recomputes the resource's statistics; then see what became of the catalog entries.
        refresh_error = None
        try:
            c.archive.refresh_catalog(target.archive_path)
        except XnatPermissionError:
            raise
        except XnatRequestError as exc:
            refresh_error = f"XNAT's catalog refresh failed: {exc}"
        ordered = [results[i] for i in range(len(plan.actions))]
        ordered, counts = catalog_flags(c.root, plan, ordered)
        done = [r for r in ordered if r.outcome is Outcome.DONE]
        catalog = None
        if plan.catalog_path is not None:
            catalog = CatalogResult(plan.catalog_path, None, catalog_before, _catalog_sha(c.root, plan),
                                    sum(1 for r in done if r.action.kind is ActionKind.RENAME),
                                    sum(1 for r in done if r.action.kind is ActionKind.REMOVE), refresh_error)
        c.journal.append("resource", "done", resource=resource)
        c.journal.commit()
        status = _status_after(ordered, plan, refresh_error is not None)
        reason = None
        if counts.get("downgraded"):
            reason = (f"{counts['downgraded']} catalog entr{'y' if counts['downgraded'] == 1 else 'ies'} became plain "
                      "cat:entry (no UID or instanceNumber): XNAT's own survey and snapshots ignore them")
            log.warning("catalog entries downgraded by file operations", resource=resource, **counts)
        return XnatResourceResult(plan, status, common.pop("backup_folder"), tuple(ordered), catalog, reason,
                                  catalog_entries=counts, manifest=manifest_name, **common)

    # --- the steps ------------------------------------------------------------------------------

    def _backup(self, plan: ResourcePlan, target: XnatTarget, action: Action,
                backups: dict[str, dict[str, Any]]) -> _Backup:
        sha = action.source.sha256
        if sha is None:
            raise FileProblem("the survey recorded no checksum; no way to verify a backup")
        key = (target.experiment, sha)
        if key in self._verified:
            return _Backup(sha, action.source.size)
        overwrite = False
        if sha in backups:
            # Uploaded by an earlier run (or another resource with the same bytes): prove it, reuse it.
            if _sha256(self.c.archive.download(target.backup_url, sha)) == sha:
                self._verified.add(key)
                return _Backup(sha, action.source.size)
            overwrite = True  # a broken copy under the name its bytes should hash to: nothing to lose
        data = read_mount_file(self.c.root, plan, action.source)
        put_verified(self.c.archive, target.backup_url, sha, data, sha=sha, file_format=BACKUP_FORMAT, content=None,
                     replace_any=True, stray_path=None, overwrite=overwrite)
        backups[sha] = {"Name": sha, "Size": str(len(data))}
        self._verified.add(key)
        return _Backup(sha, len(data))

    def _write_manifest(self, plan: ResourcePlan, target: XnatTarget, items: Iterable[tuple[Action, _Backup]]) -> str:
        c = self.c
        files = [{
            "originalPath": action.source.path, "originalName": _name(action.source.path),
            "backupName": backup.name, "sha256": action.source.sha256, "size": backup.size,
            "action": action.kind.value, "newName": _name(action.target) if action.target else None,
            "reason": action.reason,
        } for action, backup in items]
        document = {
            "manifestType": MANIFEST_TYPE, "schemaVersion": "1.0", "runId": c.run_id, "createdAt": iso(now_utc()),
            "project": target.project, "subjectId": target.subject, "experimentId": target.experiment,
            "scanId": target.scan, "resourceLabel": target.label, "resourcePath": plan.resource_path,
            "backupResource": BACKUP_RESOURCE, "files": files,
        }
        data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")
        name = f"manifest-{_safe(c.run_id)}-scan{_safe(target.scan)}-{_safe(target.label)}-{_sha256(data)[:12]}.json"
        c.archive.upload(target.backup_url, name, data, file_format="JSON")
        if c.archive.download(target.backup_url, name) != data:
            raise FileProblem("the manifest in XNAT reads back different bytes")
        return name

    def _keeper_present(self, plan: ResourcePlan, action: Action, listing: Mapping[str, Any]) -> bool:
        keeper = next((a for a in plan.actions if a.group == action.group and a.kind is not ActionKind.REMOVE), None)
        if keeper is None:
            return True
        return any(_name(p) in listing for p in (keeper.source.path, keeper.target) if p)

    def _remove(self, plan: ResourcePlan, target: XnatTarget, action: Action, listing: dict[str, Any]) -> None:
        name = _name(action.source.path)
        if name not in listing:
            if not os.path.lexists(os.path.join(_folder(self.c.root, plan), name)):
                return  # removed by an earlier attempt, after its backup was verified
            if any(a.kind is ActionKind.RENAME and a.target and _name(a.target) == name for a in plan.actions):
                return  # on disk but not in XNAT's catalog (a cut-off upload): the rename's upload replaces it
            raise FileProblem("the file is on disk but not in XNAT's catalog: XNAT's REST API cannot remove it; "
                              "left in place")
        if not self._keeper_present(plan, action, listing):
            raise FileProblem("the copy to keep is gone; this copy stays")
        _check_listed_size(listing[name], action.source)
        self.c.archive.delete_file(target.url, name)
        listing.pop(name, None)

    def _rename(self, plan: ResourcePlan, target: XnatTarget, action: Action, listing: dict[str, Any],
                replaceable: frozenset[str]) -> None:
        """`replaceable`: names whose files this run has backed up and removes (they may be overwritten)."""
        assert action.target is not None
        old, new = _name(action.source.path), _name(action.target)
        archive = self.c.archive
        if new in listing:
            if _sha256(archive.download(target.url, new)) != action.source.sha256:
                raise FileProblem(f"{new} exists in XNAT and is not this file; never overwritten")
            # Uploaded by an earlier attempt: only the old name is left to remove.
        else:
            if old not in listing:
                raise FileProblem("the file is gone from XNAT (its backup is kept)")
            _check_listed_size(listing[old], action.source)
            data = read_mount_file(self.c.root, plan, action.source)
            row = listing[old]
            fmt, content = row.get("file_format") or None, row.get("file_content") or None
            put_verified(archive, target.url, new, data, sha=action.source.sha256 or "", file_format=fmt,
                         content=content, replace_any=new in replaceable,
                         stray_path=os.path.join(_folder(self.c.root, plan), new))
            listing[new] = {**row, "Name": new}
            self.c.journal.append("upload", "done", resource=plan.resource_path, path=action.source.path,
                                  target=action.target)
        if old in listing:
            archive.delete_file(target.url, old)
            listing.pop(old, None)


def catalog_flags(root: str, plan: ResourcePlan,
                  results: Sequence[XnatActionResult]) -> tuple[list[XnatActionResult], dict[str, int]]:
    """Which renamed files' catalog entries are now plain cat:entry, read from the mounted (live) catalog.

    A renamed file whose entry cannot be found there counts as downgraded when it was renamed by an upload
    (the files API makes nothing else) and as unknown (None) otherwise.
    """
    entries = mount_catalog(root, plan)
    by_uri = {e.uri: e for e in entries} if entries is not None else None
    updated: list[XnatActionResult] = []
    downgraded = 0
    for result in results:
        flag: bool | None = result.catalog_entry_downgraded
        if result.outcome is Outcome.DONE and result.action.kind is ActionKind.RENAME and result.action.target:
            entry = by_uri.get(_name(result.action.target)) if by_uri is not None else None
            if entry is not None:
                flag = not entry.is_dcm_entry
            downgraded += bool(flag)
        elif result.outcome is Outcome.DONE and result.action.kind is ActionKind.REMOVE:
            flag = False
        updated.append(dataclasses.replace(result, catalog_entry_downgraded=flag))
    counts = {"downgraded": downgraded}
    if entries is not None:
        counts["dcmEntries"] = sum(1 for e in entries if e.is_dcm_entry)
        counts["plainEntries"] = sum(1 for e in entries if not e.is_dcm_entry)
    return updated, counts


def put_verified(archive: XnatArchive, resource_url: str, name: str, data: bytes, *, sha: str,
                 file_format: str | None, content: str | None, replace_any: bool, stray_path: str | None,
                 overwrite: bool = False) -> None:
    """Upload `data` as `name` (a name XNAT's listing did not show) and read it back until XNAT serves it right.

    What may already sit under the name without being in the catalog, or answer a retried upload: our
    own upload, cut off or garbled (a prefix of `data`, or whatever an upload of ours just made), which is
    replaced; for backups (`replace_any`: named by the sha256 their bytes must have, so a wrong copy there
    holds nothing) anything. Any other file stays untouched and the step fails. `stray_path` is where the
    name lies on the archive mount, to look at a file XNAT has on disk but not in its catalog.
    """
    try:
        status = archive.upload(resource_url, name, data, overwrite=overwrite, file_format=file_format,
                                content=content)
    except XnatConflictError:
        status = 409  # the name was taken before this call
    for attempt in range(2):
        try:
            existing: bytes | None = archive.download(resource_url, name)
            listed = True
        except XnatNotFoundError:  # not in the catalog; perhaps on disk (a cut-off upload): look through the mount
            existing, listed = _read_or_none(stray_path), False
        if listed and existing is not None and _sha256(existing) == sha:
            return
        ours = status in (200, 201) or existing is None or data.startswith(existing)
        if not (replace_any or ours):
            raise FileProblem(f"{name} already exists and is not this file; never overwritten")
        if attempt == 1:
            raise FileProblem(f"the copy uploaded to XNAT as {name} reads back different bytes")
        status = archive.upload(resource_url, name, data, overwrite=True, file_format=file_format, content=content)


def _read_or_none(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _check_listed_size(row: Mapping[str, Any], state: FileState) -> None:
    size = row.get("Size")
    if size not in (None, "") and str(size).isdigit() and int(str(size)) != state.size:
        raise FileProblem("the file in XNAT differs from the surveyed one (size); not touched")


def _catalog_sha(root: str, plan: ResourcePlan) -> str | None:
    if plan.catalog_path is None:
        return None
    try:
        with open(os.path.join(root, *safe_relative(plan.catalog_path).split("/")), "rb") as handle:
            return _sha256(handle.read())
    except OSError:
        return None


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"


# --- choosing the way, per server --------------------------------------------------------------------


@dataclass
class XnatExecutor:
    """The `xnat` executor: resolves each resource in XNAT, then takes the way the server allows."""

    client: XnatClient
    request: MitigationRequest
    root: str
    run_id: str
    journal: Journal
    survey_report: Mapping[str, Any]
    name: str = "xnat"
    way: Way | None = None
    way_reason: str | None = None
    mitigation_api: bool | None = None
    _probed: bool = False
    _resolver: TargetResolver | None = None
    _context: _Context | None = None

    def __post_init__(self) -> None:
        archive = XnatArchive(self.client)
        self._resolver = TargetResolver(archive, session_id=self.request.xnat_session,
                                        project_id=self.request.xnat_project, scan_uri=self.request.xnat_scan)
        survey = {r["path"]: r for r in self.survey_report.get("resources", [])}
        self._context = _Context(archive, self.root, self.run_id, self.journal, survey, self.request.xnat_timeout)

    def execute_batch(self, plans: Sequence[ResourcePlan]) -> list[ResourceResult]:
        """One resource after the other: each is its own XNAT request sequence, so nothing is shared."""
        return [self.execute(plan) for plan in plans]

    def execute(self, plan: ResourcePlan) -> ResourceResult:
        assert self._resolver is not None and self._context is not None
        try:
            target = self._resolver.resolve(plan)
        except ResolveProblem as exc:
            return _untouched(plan, ResourceStatus.FAILED, f"{exc}; nothing was changed")
        except XnatPermissionError:
            raise
        except XnatRequestError as exc:
            return _untouched(plan, ResourceStatus.FAILED, f"{exc}; nothing was changed")
        if not self._probed:
            try:
                self._choose(target.project)
            except XnatPermissionError:
                raise
            except XnatRequestError as exc:
                self._probed = False  # ask again for the next resource
                return _untouched(plan, ResourceStatus.FAILED, f"cannot tell whether XNAT has its own mitigation API "
                                  f"({exc}); nothing was changed", target=target)
        if self.way is None:
            return _untouched(plan, ResourceStatus.FAILED, self.way_reason or "refused", target=target,
                              way_reason=self.way_reason, request_status="DIVERGENT")
        executor = (XnatApiExecutor(self._context) if self.way is Way.API else XnatFileOpsExecutor(self._context))
        try:
            return executor.execute(plan, target, self.way_reason or "")
        except XnatPermissionError:
            raise
        except (XnatRequestError, FileProblem) as exc:
            # Whatever was done is safe (no delete before a verified backup); a rerun finishes from XNAT's state.
            return _untouched(plan, ResourceStatus.FAILED, f"stopped on an XNAT error: {exc}", target=target,
                              way=self.way, way_reason=self.way_reason)

    def _choose(self, project: str) -> None:
        assert self._context is not None
        self._probed = True
        version = self.client.version()
        shown = f"XNAT {version}" if version else "this XNAT"
        self.mitigation_api = self._context.archive.has_mitigation_api(project)
        if self.mitigation_api:
            self.way = Way.API
            self.way_reason = (f"{shown} has its own resource survey and mitigation API: XNAT surveys, backs up "
                               "and renames catalog entries in place (they stay cat:dcmEntry with their UIDs)")
            if self.request.keep is not KeepPolicy.NEWEST:
                self.way_reason += (f"; XNAT keeps the newest copy of a duplicate, so --keep {self.request.keep.value}"
                                    " does not apply")
                log.warning("XNAT's mitigation keeps the newest copy of a duplicate; --keep is not applied",
                            keep=self.request.keep.value)
        elif self.request.rest_file_operations is RestFileOperations.ALLOW:
            self.way = Way.FILE_OPERATIONS
            self.way_reason = (f"{shown} has no resource mitigation API (XNAT 1.8.8 or later has it) and "
                               "--rest-file-operations=allow: files are backed up to the session resource "
                               f"{BACKUP_RESOURCE}, then renamed by upload-then-delete; the catalog entries of "
                               "renamed files become plain cat:entry (no UID or instanceNumber)")
        else:
            self.way = None
            older = (" (it reports version " + version + ")") if version and version_tuple(version) < API_SINCE else ""
            self.way_reason = (f"{shown} has no resource survey and mitigation API{older} and REST file operations "
                               "are refused (--rest-file-operations=refuse, the default): nothing was changed. "
                               "Upgrade XNAT to 1.8.8 or later to use XNAT's own mitigation, or rerun with "
                               "--rest-file-operations=allow, knowing that renamed files then get plain cat:entry "
                               "catalog entries (no UID or instanceNumber), which XNAT's survey and snapshots ignore")
            log.error("mitigation refused", reason=self.way_reason)
        log.info("XNAT mitigation way chosen", way=None if self.way is None else self.way.value,
                 xnat_version=version, mitigation_api=self.mitigation_api)

    def server_document(self) -> dict[str, Any]:
        return {"host": self.client.host, "version": self.client.version() if self._probed else None,
                "mitigationApi": self.mitigation_api, "way": None if self.way is None else self.way.value,
                "wayReason": self.way_reason}

    def confirm(self, results: Sequence[ResourceResult], survey: Surveyor, output: str) -> list[ResourceResult]:
        """Survey the mount again (a read-only, live view of the archive) and record what it finds now."""
        changed = [r for r in results if isinstance(r, XnatResourceResult) and r.way is not None
                   and r.status in (ResourceStatus.MITIGATED, ResourceStatus.PARTIAL)]
        if not changed:
            return list(results)
        try:
            report_path = survey(output)
            with open(report_path, encoding="utf-8") as handle:
                report = json.load(handle)
        except Exception as exc:  # a failed re-survey must not hide what was done
            log.warning("re-survey after mitigation failed", error=str(exc))
            return list(results)
        statuses = {r["path"]: r["requestStatus"] for r in report.get("resources", [])}
        confirmed: list[ResourceResult] = []
        for result in results:
            if result in changed and isinstance(result, XnatResourceResult):
                status = statuses.get(result.plan.resource_path, "RESOURCE_DELETED")
                update: dict[str, Any] = {"resurvey_status": status}
                if status not in ("CONFORMING", "NONCOMPLIANT") and result.status is ResourceStatus.MITIGATED:
                    update["status"] = ResourceStatus.PARTIAL
                    update["reason"] = f"the re-survey of the mount after mitigation finds the resource {status}"
                result = dataclasses.replace(result, **update)
            confirmed.append(result)
        log.info("re-survey after mitigation", report=report_path,
                 conforming=sum(1 for s in statuses.values() if s == "CONFORMING"), resources=len(statuses))
        return confirmed


def connect(request: MitigationRequest) -> XnatClient:
    """Log in with XNAT_HOST / XNAT_USER / XNAT_PASS."""
    del request  # credentials come from the environment only: never from the command line or a report
    return XnatClient.connect()


__all__ = [
    "BACKUP_RESOURCE",
    "Way",
    "XnatActionResult",
    "XnatApiExecutor",
    "XnatArchive",
    "XnatExecutor",
    "XnatFileOpsExecutor",
    "XnatResourceResult",
    "XnatTarget",
    "actions_from_xnat",
    "compare_surveys",
    "connect",
]
