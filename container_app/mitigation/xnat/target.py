"""Which XNAT session, scan and resource a surveyed folder is."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from container_app.core.errors import ResolveProblem
from container_app.core.plan import ResourcePlan
from container_app.mitigation.xnat.archive import BACKUP_RESOURCE, XnatArchive
from container_app.mitigation.xnat.client import quote_segment
from container_app.mitigation.xnat.errors import XnatNotFoundError

#: The resource format XNAT's survey API takes (HibernateResourceSurveyRequestEntityService.
#: TEMPLATE_GENERATE_SURVEY_REQUESTS, oncai/xnat 1.8.7+: `WHERE r.format = 'DICOM'`).
DICOM_FORMAT = "DICOM"


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
    # The resource's format in XNAT's listing ("" when it has none), None when the listing does not say.
    # XNAT's own survey takes DICOM-format scan resources only (api_way).
    format: str | None = None
    # The project the run was launched on when the session is XNAT's in another one: a session shared into
    # that project, mounted from the Container Service's tree of links or copies (support.shared_data).
    shared_into: str | None = None

    @property
    def is_dicom_format(self) -> bool | None:
        return None if self.format is None else self.format.upper() == DICOM_FORMAT

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
        document: dict[str, Any] = {
            "project": self.project, "subjectId": self.subject, "experimentId": self.experiment,
            "experimentLabel": self.experiment_label, "scanId": self.scan, "resourceLabel": self.label,
            "resourceId": self.resource_id, "uri": self.url}
        if self.format is not None:
            document["resourceFormat"] = self.format
        if self.shared_into is not None:
            document["sharedInto"] = self.shared_into
        return document


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
        experiment_id, by_label = self._experiment_id(plan, session_id)
        fields = self._experiment(experiment_id)
        project = fields.get("project", "")
        surveyed_project = identity.get("project")
        if not by_label and surveyed_project and project and surveyed_project != project:
            raise ResolveProblem(f"the mount's catalog belongs to project {surveyed_project!r} but XNAT session "
                                 f"{experiment_id} is in project {project!r}: is --xnat-session right?")
        if identity.get("session") and fields.get("label") and identity["session"] != fields["label"]:
            raise ResolveProblem(f"the mount holds session {identity['session']!r} but XNAT session {experiment_id} "
                                 f"is labelled {fields['label']!r}")
        rows = self.archive.scan_resources(experiment_id, scan)
        matching = [r for r in rows if str(r.get("label")) == label]
        if not matching:
            raise ResolveProblem(f"XNAT session {experiment_id} has no resource {label!r} on scan {scan}")
        row = matching[0]
        raw_id = row.get("xnat_abstractresource_id")
        resource_id = int(raw_id) if raw_id not in (None, "") and str(raw_id).isdigit() else None
        # XNAT's resource listing carries `format` (XNAT's XnatAbstractresource row); another listing may not.
        resource_format = str(row.get("format") or "") if "format" in row else None
        shared_into = self.project_id if self.project_id and project and project != self.project_id else None
        return XnatTarget(project=project, subject=fields.get("subject_ID", ""), experiment=experiment_id,
                          experiment_label=fields.get("label", ""), scan=scan, label=label, resource_id=resource_id,
                          format=resource_format, shared_into=shared_into)

    def _experiment_id(self, plan: ResourcePlan, session_id: str | None) -> tuple[str, bool]:
        """The session's XNAT ID, and whether it was found by its label."""
        identity = plan.identity
        label = identity.get("session")
        if session_id:
            return session_id, False  # checked against the label by the caller
        if label:
            # A session is looked up first in the project its catalog names (the PROJECT metaField XNAT writes,
            # or the `<project>/arc001/` folder holding it): in the Container Service's tree of a project's shared
            # data the sessions shared into it keep their original project and label, and the same label in
            # the launch project may be another session. Then in --xnat-project.
            named = identity.get("project")
            tried: list[str] = []
            for project in dict.fromkeys(p for p in (named, self.project_id) if p):
                tried.append(project)
                found = self._by_label(project, label)
                if found is not None:
                    return found, True
            if not tried:
                raise ResolveProblem(f"cannot tell which XNAT project holds session {label!r}: pass --xnat-project")
            shown = " or ".join(repr(p) for p in tried)
            raise ResolveProblem(f"XNAT project {shown} has no session labelled {label!r}")
        raise ResolveProblem("ROOT is a session whose XNAT ID the mount does not show: pass --xnat-session <ID> "
                             "(the session wrapper of command.json does)")

    def _by_label(self, project: str, label: str) -> str | None:
        try:
            return self.archive.experiment_id_by_label(project, label)
        except XnatNotFoundError:  # no such project (a folder name that is not one): try the next
            return None

    def _experiment(self, experiment_id: str) -> dict[str, str]:
        if experiment_id not in self._experiments:
            try:
                self._experiments[experiment_id] = self.archive.experiment(experiment_id)
            except XnatNotFoundError:
                raise ResolveProblem(f"XNAT has no session with ID {experiment_id!r}") from None
        return self._experiments[experiment_id]
