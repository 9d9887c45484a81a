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
