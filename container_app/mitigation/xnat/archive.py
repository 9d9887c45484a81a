"""XNAT's REST API as the executors and restore use it: its paths and JSON shapes in one place."""

from __future__ import annotations

import enum
import json
import re
from typing import Any

import structlog

from container_app.mitigation.xnat.client import XnatClient, quote_path, quote_segment
from container_app.mitigation.xnat.errors import XnatConflictError, XnatNotFoundError, XnatServerError, item_failure
from container_app.mitigation.xnat.justification import Justification

log = structlog.get_logger("xnat_resource_survey.xnat_executor")

#: The session resource the file-operations way backs originals up to (named by sha256, never by file name).
BACKUP_RESOURCE = "RESOURCE_SURVEY_BACKUP"
BACKUP_FORMAT = "BACKUP"


class Upload(enum.Enum):
    """What became of an upload."""

    WRITTEN = "WRITTEN"
    #: XNAT found the name taken and wrote nothing: without `overwrite=true`, `FileList.handlePut` (xnat-web
    #: through 1.8.10.1) answers 200 with `{"duplicates": [...]}` for every name `CatalogUtils.storeCatalogEntry`
    #: found already on disk (whether in the catalog or not); it never answers 409.
    NAME_TAKEN = "NAME_TAKEN"


def upload_outcome(status: int, text: str) -> Upload:
    """Read a successful upload's answer (XNAT sends the duplicates JSON as text/html)."""
    if status == 409:  # not XNAT's way, but a proxy or another server may say it so
        return Upload.NAME_TAKEN
    text = text.strip()
    if not text.startswith("{"):
        return Upload.WRITTEN
    try:
        document = json.loads(text)
    except ValueError:
        return Upload.WRITTEN
    duplicates = document.get("duplicates") if isinstance(document, dict) else None
    return Upload.NAME_TAKEN if isinstance(duplicates, list) and duplicates else Upload.WRITTEN


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

    def __init__(self, client: XnatClient, run_id: str | None = None) -> None:
        self.client = client
        self._labels: dict[str, dict[str, str]] = {}
        if client.justification is None:
            # Until a run names itself (justify), changes still carry a reason: a site may require one.
            client.justify(Justification.for_run(run_id) if run_id else Justification(
                "xnat-resource-survey: misnamed and duplicated DICOM files", "xnat-resource-survey",
                "xnat-resource-survey"))

    def justify(self, run_id: str, what: str = "mitigation") -> None:
        """Every later change carries this run's justification (`event_comment` names the run)."""
        self.client.justify(Justification.for_run(run_id, what))

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
        return self.client.get_bytes(f"{resource_url}/files/{quote_path(name)}", what="a file download")

    def upload(self, resource_url: str, name: str, data: bytes, *, overwrite: bool = False,
               file_format: str | None = None, content: str | None = None) -> Upload:
        """PUT a file: WRITTEN, or NAME_TAKEN when XNAT wrote nothing because the name exists (perhaps
        written by an earlier attempt of this same call, retried after its answer was lost)."""
        query = {"inbody": "true"}
        if overwrite:
            query["overwrite"] = "true"
        if file_format:
            query["format"] = file_format
        if content:
            query["content"] = content
        response = self.client.request("PUT", f"{resource_url}/files/{quote_path(name)}", query=query, data=data,
                                       accept=(200, 201), accept_on_retry=(409,), retry=True, what="a file upload")
        return upload_outcome(response.status_code, response.text)

    def delete_file(self, resource_url: str, name: str) -> None:
        self.client.request("DELETE", f"{resource_url}/files/{quote_path(name)}", accept=(200, 204),
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
        self.justify(run_id)
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
        with item_failure() as failure:
            self.client.request("DELETE", f"/xapi/resources/survey/request/{request_id}", accept=(200, 204),
                                accept_on_retry=(404,), retry=True, what=f"cancelling survey request {request_id}")
        if failure.error is not None:
            log.warning("could not cancel XNAT's survey request", request=request_id, error=str(failure.error))


def _request_id(text: str, default: int | None = None) -> int:
    match = re.search(r"\d+", text or "")
    if match is None:
        if default is not None:
            return default
        raise XnatServerError("XNAT did not answer with a request ID")
    return int(match.group(0))
