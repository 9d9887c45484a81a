"""The stand-in's `/xapi/...` routes: build info, schemas, and the resource survey and mitigation API.

`serve_xapi` gets the path segments after `xapi`, from an authenticated request. The survey and mitigation
work itself is surveys.py's (the worker thread), surveyor.py's and mitigator.py's, with the requests and
their statuses in survey_requests.py; this module is the HTTP face of it.
"""

from __future__ import annotations

from typing import Any

from tests.xnat_standin import schema
from tests.xnat_standin.archive import Resource, StandInError
from tests.xnat_standin.framing import Answer, Request, json_answer, text_answer
from tests.xnat_standin.state import StandInState
from tests.xnat_standin.survey_requests import OPEN_SURVEY_STATUSES, Status, SurveyRequest

JSON = dict[str, Any]


def serve_xapi(state: StandInState, request: Request, s: list[str]) -> Answer:
    method = request.method
    if s == ["siteConfig", "buildInfo"]:
        return json_answer(200, {"version": state.version, "buildNumber": "standin", "buildDate": "",
                                 "sha": "standin", "shaFull": "standin", "commit": "standin", "tag": state.version,
                                 "branch": "stand-in", "isDirty": "false", "timestamp": "0"})
    if s == ["siteConfig", "buildInfo", "version"]:
        return text_answer(200, state.version)
    if s == ["schemas"]:
        return json_answer(200, list(schema.SCHEMA_NAMES))
    if s[:1] == ["schemas"] and "/".join(s[1:]) in schema.SCHEMA_NAMES:
        return Answer(200, schema.XNAT_XSD.encode(), "application/xml")
    if s[:1] == ["resources"] and state.mitigation_api:
        return _ResourceSurveyApi(state, request).serve(method, s[1:])
    raise StandInError(404, f"the stand-in does not serve {method} {request.path}")


class _ResourceSurveyApi:
    """`/xapi/resources/...`: XNAT's ResourceSurveyApi, as far as the stand-in plays it."""

    def __init__(self, state: StandInState, request: Request) -> None:
        self.state = state
        self.request = request
        self.surveys = state.surveys
        self.archive = state.archive

    def _resource(self, text: str) -> Resource:
        if not text.isdigit():
            raise StandInError(400, f"resource IDs are integers, not {text!r}")
        resource = self.archive.resource_by_id(int(text))
        self.state.accounts.require(self.request, resource.session.project, "delete")
        if resource.scan_id is None:
            raise StandInError(404, f"resource {text} is not a scan resource: the survey API works on scan resources")
        return resource

    def _dicom_resource(self, text: str) -> Resource:
        """A resource a survey request can be made for: XNAT generates requests only for resources whose
        format is DICOM (HibernateResourceSurveyRequestEntityService.TEMPLATE_GENERATE_SURVEY_REQUESTS:
        `WHERE r.format = 'DICOM'`), and `ResourceSurveyServiceImpl.queueResourceSurvey`, finding none made
        and none open, answers NotFoundException (404) from `getRequestByResourceId` (oncai/xnat 1.8.7+)."""
        resource = self._resource(text)
        if resource.format() != "DICOM" and self.surveys.open_for(resource.id) is None:
            raise StandInError(404, f"No resource survey request was found for resource ID {resource.id}")
        return resource

    def _request(self, text: str) -> SurveyRequest:
        if not text.isdigit():
            raise StandInError(400, f"request IDs are integers, not {text!r}")
        found = self.surveys.request(int(text))
        self.state.accounts.require(self.request, found.resource.session.project, "delete")
        return found

    def _project(self, project: str) -> str:
        if project not in self.archive.projects():
            raise StandInError(404, f"the stand-in has no project {project!r}")
        self.state.accounts.require(self.request, project, "delete")
        return project

    def serve(self, method: str, s: list[str]) -> Answer:
        with self.archive.lock:
            return self._serve(method, s)

    def _serve(self, method: str, s: list[str]) -> Answer:
        fail = self.request.flag("__standin_mitigation_error")
        match (method, s):
            case ("POST", ["survey", "resource", rid]):
                return json_answer(200, self.surveys.queue_survey(self._dicom_resource(rid), self.request.user).id)
            case ("GET", ["survey", "resource", rid]):
                return json_answer(200, self.surveys.latest_for(self._resource(rid).id).to_json())
            case ("DELETE", ["survey", "resource", rid]):
                latest = self.surveys.latest_for(self._resource(rid).id)
                return json_answer(200, self.surveys.cancel(latest))
            case ("GET", ["survey", "resource", rid, "status"]):
                return json_answer(200, self.surveys.latest_for(self._resource(rid).id).status.value)
            case ("GET", ["survey", "resource", rid, "report"]):
                latest = self.surveys.latest_for(self._resource(rid).id)
                return json_answer(200, self._survey_report(latest))
            case ("GET", ["survey", "request", qid]):
                return json_answer(200, self._request(qid).to_json())
            case ("DELETE", ["survey", "request", qid]):
                return json_answer(200, self.surveys.cancel(self._request(qid)))
            case ("GET", ["survey", "request", qid, "status"]):
                return json_answer(200, self._request(qid).status.value)
            case ("GET", ["survey", "request", qid, "report"]):
                return json_answer(200, self._survey_report(self._request(qid)))
            case ("POST", ["survey", "project", project]):
                self._project(project)
                ids = []
                for session in self.archive.sessions(project):
                    for resource in self.archive.resources_of(session, None, all_levels=True):
                        if resource.scan_id is not None and resource.format() == "DICOM":
                            try:
                                ids.append(self.surveys.queue_survey(resource, self.request.user).id)
                            except StandInError:
                                continue
                return json_answer(200, ids)
            case ("GET", ["survey", "project", project]):
                self._project(project)
                return json_answer(200, [r.to_json() for r in self.surveys.for_project(project)
                                         if r.is_open and r.status in OPEN_SURVEY_STATUSES])
            case ("GET", ["survey", "project", project, "status"]):
                self._project(project)
                by_resource: dict[int, SurveyRequest] = {}
                for r in self.surveys.for_project(project):
                    if r.is_open:
                        by_resource[r.resource.id] = r
                return json_answer(200, {str(k): v.status.value for k, v in sorted(by_resource.items())})
            case ("POST", ["mitigate", "resource", rid]):
                latest = self.surveys.latest_for(self._resource(rid).id)
                return json_answer(200, self.surveys.queue_mitigation(latest, self.request.user, fail=fail).id)
            case ("POST", ["mitigate", "request", qid]):
                return json_answer(200, self.surveys.queue_mitigation(self._request(qid), self.request.user,
                                                                      fail=fail).id)
            case ("POST", ["mitigate", "project", project]):
                self._project(project)
                ids = [self.surveys.queue_mitigation(r, self.request.user, fail=fail).id
                       for r in self.surveys.for_project(project) if r.status is Status.DIVERGENT]
                return json_answer(200, ids)
            case ("GET", ["mitigate", "resource", rid, "report"]):
                return json_answer(200, self._mitigation_report(self.surveys.latest_for(self._resource(rid).id)))
            case ("GET", ["mitigate", "request", qid, "report"]):
                return json_answer(200, self._mitigation_report(self._request(qid)))
        raise StandInError(404, f"the stand-in does not serve {method} /xapi/resources/{'/'.join(s)}")

    @staticmethod
    def _survey_report(request: SurveyRequest) -> JSON:
        if request.survey_report is None:
            raise StandInError(404, f"The resource survey request with ID {request.id} does not have an associated "
                                    "resource survey report.")
        return request.survey_report

    @staticmethod
    def _mitigation_report(request: SurveyRequest) -> JSON:
        # XNAT answers the mitigation report only for CONFORMING requests (ConflictedStateException: 409).
        if request.status is not Status.CONFORMING or request.mitigation_report is None:
            raise StandInError(409, f"Mitigation is not completed for resource {request.resource.id}, current status "
                                    f"is: {request.status}")
        return request.mitigation_report
