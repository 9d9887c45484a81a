"""The stand-in's resource survey and mitigation service (XNAT 1.8.8+'s, as its source describes it).

Requests move through XNAT's statuses on a background worker, one step every `delay` seconds:
CREATED -> QUEUED_FOR_SURVEY -> SURVEYING -> DIVERGENT | CONFORMING | NONCOMPLIANT | ERROR, then
QUEUED_FOR_MITIGATION -> MITIGATING -> CONFORMING | NONCOMPLIANT | ERROR.

The survey reads the catalog's `cat:dcmEntry` entries only (as XNAT does), computes each file's
expected name with `container_app.core.naming`, and groups by (SOPClassUID, SOPInstanceUID). Entries whose
file is missing, or whose catalog UID differs from the header, vanish from the report as they do in
XNAT. Mitigation renames entries in place (they stay `cat:dcmEntry` with `UID` and `instanceNumber`),
backs files up under the cache folder, keeps the newest file of a duplicate group and removes the rest.
"""

from __future__ import annotations

import datetime
import itertools
import queue
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword

from container_app.core import naming
from container_app.core.vocabulary import RequestStatus
from tests.xnat_standin import catalogs
from tests.xnat_standin.archive import SESSION_XSI_TYPE, Archive, Resource, StandInError

# XNAT's request statuses, spelled as XNAT spells them (the same enum the tool reports with).
Status = RequestStatus


CLOSING = frozenset({Status.CONFORMING, Status.NONCOMPLIANT, Status.RESOURCE_DELETED, Status.CANCELED, Status.ERROR})
OPEN_SURVEY_STATUSES = (Status.CREATED, Status.QUEUED_FOR_SURVEY, Status.SURVEYING, Status.DIVERGENT)


def _millis(when: float) -> int:
    return int(when * 1000)


@dataclass
class SurveyRequest:
    id: int
    resource: Resource
    requester: str
    request_time: str
    status: Status = Status.CREATED
    created: float = field(default_factory=time.time)
    timestamp: float = field(default_factory=time.time)
    closing_date: float | None = None
    mitigation_requester: str | None = None
    survey_report: dict[str, Any] | None = None
    mitigation_report: dict[str, Any] | None = None
    fail_mitigation: bool = False
    # The survey's findings, with paths, for the mitigation.
    findings: Findings | None = None

    @property
    def is_open(self) -> bool:
        return self.closing_date is None

    def set_status(self, status: Status) -> None:
        self.status = status
        self.timestamp = time.time()
        if status in CLOSING:
            self.closing_date = self.timestamp

    def to_json(self) -> dict[str, Any]:
        r = self.resource
        s = r.session
        return {
            "id": self.id,
            "created": _millis(self.created),
            "timestamp": _millis(self.timestamp),
            "enabled": True,
            "disabled": 0,
            "resourceId": r.id,
            "rsnStatus": self.status.value,
            "projectId": s.project,
            "subjectId": s.subject_id,
            "experimentId": s.id,
            "xsiType": SESSION_XSI_TYPE,
            "scanId": int(r.scan_id) if r.scan_id and r.scan_id.isdigit() else 0,
            "resourceLabel": r.label,
            "resourceUri": str(r.catalog_path or r.path),
            "subjectLabel": s.subject_label,
            "experimentLabel": s.label,
            "scanLabel": r.scan_id or "",
            "scanDescription": "",
            "workflowId": 0,
            "requester": self.requester,
            "mitigationRequester": self.mitigation_requester,
            "requestTime": self.request_time,
            "closingDate": _millis(self.closing_date) if self.closing_date is not None else None,
            "surveyReport": self.survey_report,
            "mitigationReport": self.mitigation_report,
        }


@dataclass
class Findings:
    total_entries: int
    uids: dict[str, list[str]]
    bad_files: list[Path]
    mismatched: dict[Path, str]
    duplicates: dict[tuple[str, str], dict[Path, str]]
    non_actionable: dict[tuple[str, str], dict[Path, str]]

    @property
    def status(self) -> Status:
        if self.bad_files or self.mismatched or self.duplicates:
            return Status.DIVERGENT
        return Status.NONCOMPLIANT if self.non_actionable else Status.CONFORMING


def _non_empty(report: dict[str, Any]) -> dict[str, Any]:
    """XNAT's `@JsonInclude(NON_EMPTY)`: empty maps, lists, strings and nulls are left out."""
    return {k: v for k, v in report.items() if not (v is None or (isinstance(v, dict | list | str) and not v))}


_BINARY_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV"})


def header_lookup(path: Path, keywords: tuple[str, ...]) -> Callable[[str], str | None] | None:
    """Header values as XNAT's DICOM library returns them, or None if the file is not readable DICOM."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # forced reads of non-DICOM bytes warn; such files are bad files
            dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if "SOPInstanceUID" not in dataset and "SOPClassUID" not in dataset:
            return None  # not DICOM (forced parsing of other bytes finds no SOP identity)
    except Exception:
        return None
    values: dict[str, str | None] = {}
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        try:
            if tag is None or tag not in dataset:
                values[keyword] = None
                continue
            element = dataset.get_item(tag)
            raw = element.value if element is not None else None
            if isinstance(raw, bytes) and dictionary_VR(tag) not in _BINARY_VRS:
                values[keyword] = naming.first_value(raw.decode("latin-1"))
                continue
            value = dataset[tag].value
            if isinstance(value, list | tuple):
                value = value[0] if value else None
            values[keyword] = naming.first_value(str(value)) if value is not None else None
        except Exception:
            return None
    return values.get


def survey(resource: Resource, template: naming.NamingTemplate) -> Findings:
    """XNAT's survey of one resource's catalog."""
    keywords = tuple(dict.fromkeys(("SOPClassUID", "SOPInstanceUID", *template.keywords)))
    catalog = resource.catalog_path
    if catalog is None:
        raise StandInError(500, "the resource has no catalog")
    total = 0
    bad: list[Path] = []
    groups: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    for entry in catalogs.read_entries(catalog):
        if not entry.is_dcm_entry or not entry.uid or not entry.entry_id:
            continue
        file = resource.path / entry.uri
        if not file.is_file():
            continue  # XNAT drops these silently
        lookup = header_lookup(file, keywords)
        if lookup is None:
            total += 1
            bad.append(file)
            continue
        if lookup("SOPInstanceUID") != entry.uid:
            continue  # XNAT drops these silently too
        total += 1
        class_uid = lookup("SOPClassUID")
        if not class_uid:
            bad.append(file)
            continue
        groups.setdefault((class_uid, entry.uid), []).append((file, template.render(lookup)))
    uids: dict[str, list[str]] = {}
    for class_uid, instance_uid in groups:
        uids.setdefault(class_uid, []).append(instance_uid)
    findings = Findings(total, uids, bad, {}, {}, {})
    for key, members in groups.items():
        if len(members) == 1:
            file, expected = members[0]
            if file.name != expected:
                findings.mismatched[file] = expected
        elif len({expected for _f, expected in members}) == 1:
            findings.duplicates[key] = dict(members)
        else:
            findings.non_actionable[key] = dict(members)
    return findings


def _nested(groups: dict[tuple[str, str], dict[Path, str]]) -> dict[str, dict[str, dict[str, str]]]:
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (class_uid, instance_uid), files in groups.items():
        out.setdefault(class_uid, {})[instance_uid] = {str(p): n for p, n in files.items()}
    return out


def survey_report(request_id: int, findings: Findings) -> dict[str, Any]:
    """The `ResourceSurveyReport` JSON, in XNAT's field names."""
    return _non_empty({
        "resourceSurveyRequestId": request_id,
        "surveyDate": _millis(time.time()),
        "totalEntries": findings.total_entries,
        "totalUids": sum(len(v) for v in findings.uids.values()),
        "totalBadFiles": len(findings.bad_files),
        "totalMismatchedFiles": len(findings.mismatched),
        "totalDuplicates": len(findings.duplicates),
        "totalFilesInDuplicates": sum(len(v) for v in findings.duplicates.values()),
        "totalNonActionableDuplicates": len(findings.non_actionable),
        "totalFilesInNonActionableDuplicates": sum(len(v) for v in findings.non_actionable.values()),
        "uids": findings.uids,
        "badFiles": [str(p) for p in findings.bad_files],
        "mismatchedFiles": {str(p): n for p, n in findings.mismatched.items()},
        "duplicates": _nested(findings.duplicates),
        "nonActionableDuplicates": _nested(findings.non_actionable),
    })


def _error(exc: BaseException) -> str:
    return f"Error: ({type(exc).__name__}) {exc}"


def mitigate(request: SurveyRequest, findings: Findings, cache_root: Path) -> tuple[dict[str, Any], bool]:
    """XNAT's mitigation of one surveyed resource: (ResourceMitigationReport JSON, had errors)."""
    resource = request.resource
    session = resource.session
    source = resource.path
    cache = cache_root / session.project / session.id / request.request_time / (resource.scan_id or resource.label)
    cache.mkdir(parents=True, exist_ok=True)
    log_lines = [f"Beginning mitigation from resource survey request {request.id} for resource {resource.id}"]

    backups: dict[Path, Path] = {}
    moves: dict[Path, Path] = {}
    for file, expected in findings.mismatched.items():
        backups[file] = cache / file.relative_to(source)
        moves[file] = source / expected
    retained: list[Path] = []
    for members in findings.duplicates.values():
        for file in members:
            backups[file] = cache / file.relative_to(source)
        # XNAT keeps the newest file (by creation time); ties go to the one already at its name, then name order.
        keep = max(members, key=lambda f: (f.stat().st_mtime_ns, f.name == members[f], f.name))
        moves[keep] = source / members[keep]
        if keep.name == members[keep]:
            retained.append(keep)

    backup_errors: dict[str, dict[str, str]] = {}
    move_errors: dict[str, dict[str, str]] = {}
    delete_errors: dict[str, str] = {}
    deletes: list[Path] = []
    for file, target in backups.items():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise FileExistsError(str(target))
            shutil.copy2(file, target)
            log_lines.append(f" * {file} backed up to {target}")
            if file not in moves:
                deletes.append(file)
        except OSError as exc:
            backup_errors[str(file)] = {"file": str(target), "message": _error(exc)}

    removals: set[str] = set()
    for file in deletes:
        try:
            file.unlink()
            removals.add(file.relative_to(source).as_posix())
            log_lines.append(f" * deleted {file}")
        except OSError as exc:
            delete_errors[str(file)] = _error(exc)

    renames: dict[str, str] = {}
    pending = [(f, t) for f, t in moves.items() if f != t]
    fail_from = len(pending) // 2 if request.fail_mitigation else len(pending)
    for index, (file, target) in enumerate(pending):
        try:
            if index >= fail_from:
                raise OSError(f"the stand-in was told to fail this mitigation (fault switch) at {file.name}")
            if target.exists():
                raise FileExistsError(str(target))
            shutil.copy2(file, target)
            file.unlink()
            renames[file.relative_to(source).as_posix()] = target.relative_to(source).as_posix()
            log_lines.append(f" * {file} -> {target}")
        except OSError as exc:
            move_errors[str(file)] = {"file": str(target), "message": _error(exc)}

    catalog_write_error: str | None = None
    catalog = resource.catalog_path
    if request.fail_mitigation:
        catalog_write_error = (f"Unable to write catalog {resource.rest_uri}: IOException stand-in fault. To access "
                               "this data, you will need to perform a catalog refresh.")
    elif catalog is not None:
        try:
            catalogs.rename_and_remove(catalog, renames, frozenset(removals))
        except OSError as exc:
            catalog_write_error = f"Unable to write catalog {resource.rest_uri}: {_error(exc)}"
    (cache / f"mitigation-{session.id}-{resource.scan_id}-{request.request_time}.log").write_text(
        "\n".join(log_lines) + "\n", encoding="utf-8")

    total_errors = len(backup_errors) + len(move_errors) + len(delete_errors)
    report = _non_empty({
        "resourceSurveyRequestId": request.id,
        "cachePath": str(cache),
        "movedFiles": {str(f): str(t) for f, t in moves.items()},
        "removedFiles": {str(f): str(t) for f, t in backups.items()},
        "retainedFiles": [str(p) for p in retained],
        "backupErrors": backup_errors,
        "moveErrors": move_errors,
        "deleteErrors": delete_errors,
        "catalogWriteError": catalog_write_error,
        "resourceSaveError": None,
        "totalMovedFiles": len(moves),
        "totalRemovedFiles": len(backups),
        "totalFileErrors": total_errors,
    })
    return report, bool(total_errors or catalog_write_error)


class SurveyService:
    """Survey requests and the worker that moves them through their statuses."""

    def __init__(self, archive: Archive, template: naming.NamingTemplate, cache_root: Path, delay: float) -> None:
        self.archive = archive
        self.template = template
        self.cache_root = cache_root
        self.delay = delay
        self._requests: dict[int, SurveyRequest] = {}
        self._ids = itertools.count(1)
        self._queue: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name="standin-survey-worker", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._worker.join(timeout=5)

    # --- lookups (callers hold archive.lock) ------------------------------------------------------

    def request(self, request_id: int) -> SurveyRequest:
        found = self._requests.get(request_id)
        if found is None:
            raise StandInError(404, f"the stand-in has no resource survey request {request_id}")
        return found

    def latest_for(self, resource_id: int) -> SurveyRequest:
        found = [r for r in self._requests.values() if r.resource.id == resource_id]
        if not found:
            raise StandInError(404, f"no resource survey request found for resource ID {resource_id}")
        return max(found, key=lambda r: r.id)

    def open_for(self, resource_id: int) -> SurveyRequest | None:
        found = [r for r in self._requests.values() if r.resource.id == resource_id and r.is_open]
        return max(found, key=lambda r: r.id) if found else None

    def for_project(self, project: str) -> list[SurveyRequest]:
        return sorted((r for r in self._requests.values() if r.resource.session.project == project),
                      key=lambda r: r.id)

    # --- actions (callers hold archive.lock) ------------------------------------------------------

    def queue_survey(self, resource: Resource, requester: str) -> SurveyRequest:
        request = self.open_for(resource.id)
        if request is None:
            stamp = datetime.datetime.now()
            request = SurveyRequest(next(self._ids), resource, requester,
                                    stamp.strftime("%Y%m%d_%H%M%S") + f"{stamp.microsecond // 1000:03d}")
            self._requests[request.id] = request
        if request.status is not Status.CREATED:
            raise StandInError(409, f'The resource survey request for resource {resource.id} should be "CREATED" '
                                    f'but instead is "{request.status}"')
        self._queue.put(("survey", request.id))
        return request

    def queue_mitigation(self, request: SurveyRequest, requester: str, *, fail: bool) -> SurveyRequest:
        if request.status is not Status.DIVERGENT:
            raise StandInError(409, f'The resource survey request {request.id} should be "DIVERGENT" but instead is '
                                    f'"{request.status}"')
        request.mitigation_requester = requester
        request.fail_mitigation = fail
        request.set_status(Status.QUEUED_FOR_MITIGATION)
        self._queue.put(("mitigate", request.id))
        return request

    def cancel(self, request: SurveyRequest) -> int:
        if not request.is_open or request.status in (Status.SURVEYING, Status.MITIGATING):
            raise StandInError(404, "The specified ID does not exist or the request can not be canceled.")
        request.set_status(Status.CANCELED)
        return request.id

    # --- the worker -------------------------------------------------------------------------------

    def _step(self, request: SurveyRequest, status: Status) -> bool:
        if self._stop.wait(self.delay):
            return False
        with self.archive.lock:
            if request.status is Status.CANCELED:
                return False
            request.set_status(status)
        return True

    def _work(self) -> None:
        while not self._stop.is_set():
            item = self._queue.get()
            if item is None:
                return
            kind, request_id = item
            with self.archive.lock:
                request = self._requests[request_id]
            try:
                if kind == "survey":
                    self._run_survey(request)
                else:
                    self._run_mitigation(request)
            except Exception as exc:  # an error in the stand-in's own work ends the request in ERROR
                with self.archive.lock:
                    request.set_status(Status.ERROR)
                    request.mitigation_report = request.mitigation_report or (
                        {"resourceSurveyRequestId": request.id, "cachePath": "", "resourceSaveError": _error(exc),
                         "totalMovedFiles": 0, "totalRemovedFiles": 0, "totalFileErrors": 0}
                        if kind == "mitigate" else None)

    def _run_survey(self, request: SurveyRequest) -> None:
        if not self._step(request, Status.QUEUED_FOR_SURVEY) or not self._step(request, Status.SURVEYING):
            return
        if self._stop.wait(self.delay):
            return
        with self.archive.lock:
            if request.status is Status.CANCELED:
                return
            findings = survey(request.resource, self.template)
            request.findings = findings
            request.survey_report = survey_report(request.id, findings)
            request.set_status(findings.status)

    def _run_mitigation(self, request: SurveyRequest) -> None:
        if not self._step(request, Status.MITIGATING):
            return
        if self._stop.wait(self.delay):
            return
        with self.archive.lock:
            assert request.findings is not None
            report, failed = mitigate(request, request.findings, self.cache_root)
            request.mitigation_report = report
            if failed:
                request.set_status(Status.ERROR)
            else:
                request.set_status(Status.NONCOMPLIANT if request.findings.non_actionable else Status.CONFORMING)
