"""The stand-in's state: the archive, accounts, surveys, fault switches and request log the routes work on.

`server.StandIn` is this state plus the running HTTP server. The two are separate classes so that the
route modules can take the state (and import this module) while server.py imports the route modules:
no import goes both ways.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from container_app.core import naming
from tests.xnat_standin.archive import Archive
from tests.xnat_standin.auth import Accounts
from tests.xnat_standin.faults import Faults
from tests.xnat_standin.framing import LoggedRequest
from tests.xnat_standin.shapes import Shapes
from tests.xnat_standin.surveys import SurveyService

VERSION_WITH_MITIGATION = "1.8.10"
VERSION_WITHOUT_MITIGATION = "1.8.6"  # XNAT's survey and mitigation API is in 1.8.7 and later

JSON = dict[str, Any]


class StandInState:
    """Everything a stand-in knows; `StandIn` (server.py) adds the HTTP server around it."""

    def __init__(self, archive_root: Path, *, mitigation_api: bool = True,
                 users: Mapping[str, str] | None = None, roles: Mapping[str, Mapping[str, str]] | None = None,
                 template: str = naming.DEFAULT_TEMPLATE, cache_root: Path | None = None,
                 mitigation_delay: float = 0.05) -> None:
        self.archive = Archive(Path(archive_root))
        self.mitigation_api = mitigation_api
        self.version = VERSION_WITH_MITIGATION if mitigation_api else VERSION_WITHOUT_MITIGATION
        self.faults = Faults()
        self.accounts = Accounts(users, roles)
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self.cache_root = Path(cache_root) if cache_root is not None else Path(archive_root).parent / "standin-cache"
        self.surveys = SurveyService(self.archive, naming.parse_template(template), self.cache_root, mitigation_delay)
        self.shapes = Shapes(self.archive)
        #: The files API's behaviour follows this version: through 1.8.10.1 (and, as no release is known to have
        #: changed it, the default) a DELETE takes every file whose name starts with the name (catalogs.py).
        #: A later version plays a hypothetical fixed XNAT that deletes the exact name only.
        self.files_api_version = "1.8.10.1"
        #: Site preferences `requireChangeJustification` (with `showChangeJustification`) and `requireEventName`:
        #: changing calls without `event_reason` / `event_action` are refused as XNAT refuses them (data_routes.py).
        self.require_justification = False
        self.require_event_name = False

    @property
    def mitigation_delay(self) -> float:
        return self.surveys.delay

    @mitigation_delay.setter
    def mitigation_delay(self, value: float) -> None:
        self.surveys.delay = value

    # --- the request log -------------------------------------------------------------------------

    @property
    def requests_log(self) -> list[LoggedRequest]:
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def log_request(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self._log.append(entry)

    # --- users, tokens, roles (kept in auth.Accounts) --------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        self.accounts.add_user(user, password)

    def issue_token(self, user: str) -> tuple[str, str]:
        """A new alias token of `user`: (alias, secret), as XNAT_USER and XNAT_PASS in a container."""
        return self.accounts.issue_token(user)

    def invalidate_token(self, alias: str) -> None:
        """Play a token that expired (XNAT invalidates a container's token when the container finishes)."""
        self.accounts.invalidate_token(alias)

    def set_role(self, user: str, project: str, role: str | None) -> None:
        """`owner`, `member`, `collaborator` or None (no access). Users never given a role own every project."""
        self.accounts.set_role(user, project, role)

    def role(self, user: str, project: str) -> str | None:
        return self.accounts.role(user, project)

    # --- helpers for tests -----------------------------------------------------------------------

    def experiment_id(self, project: str, session_label: str) -> str:
        with self.archive.lock:
            return self.archive.find_session(session_label, project).id

    def resource_id(self, project: str, session_label: str, scan_id: str | None, label: str) -> int:
        with self.archive.lock:
            session = self.archive.find_session(session_label, project)
            return self.archive.find_resource(session, scan_id, label).id

    def resource_path(self, resource_id: int) -> Path:
        with self.archive.lock:
            return self.archive.resource_by_id(resource_id).path

    def survey_request(self, request_id: int) -> JSON:
        with self.archive.lock:
            return self.surveys.request(request_id).to_json()
