"""The XNAT stand-in server: a real HTTP server on loopback, backed by an archive folder on disk.

It is a stand-in for tests, not XNAT: it serves the subset of XNAT's REST API that
`xnat-resource-survey` and the `xnat` package use, in XNAT's JSON shapes. See API.md beside this file.

This module wires the parts together: `StandIn` is the state (state.py) with an HTTP server (framing.py)
whose requests go through authentication (auth.py) to the `/data` routes (data_routes.py) or the `/xapi`
routes (xapi_routes.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from container_app.core import naming
from tests.xnat_standin import auth
from tests.xnat_standin.archive import StandInError
from tests.xnat_standin.data_routes import serve_data
from tests.xnat_standin.framing import (
    Answer,
    LoggedRequest,
    Request,
    StandInHTTPServer,
    html_answer,
    result_set,
)
from tests.xnat_standin.state import StandInState
from tests.xnat_standin.xapi_routes import serve_xapi


class StandIn(StandInState):
    """A running XNAT stand-in. Use `run_standin(...)` to start one."""

    def __init__(self, archive_root: Path, *, mitigation_api: bool = True,
                 users: Mapping[str, str] | None = None, roles: Mapping[str, Mapping[str, str]] | None = None,
                 template: str = naming.DEFAULT_TEMPLATE, cache_root: Path | None = None,
                 mitigation_delay: float = 0.05) -> None:
        super().__init__(archive_root, mitigation_api=mitigation_api, users=users, roles=roles, template=template,
                         cache_root=cache_root, mitigation_delay=mitigation_delay)
        self._server = StandInHTTPServer(self)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="xnat-standin", daemon=True)
        self._thread.start()
        self._stopped = False

    # --- control ---------------------------------------------------------------------------------

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self.surveys.stop()

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- what the HTTP handler calls (framing.StandInHooks) ---------------------------------------

    def dispatch(self, request: Request) -> Answer:
        """Authenticate, then route: `/` and the login answer anyone; the rest needs a principal."""
        s = request.segments
        method = request.method
        auth.authenticate(self.accounts, request)
        if not s:
            return html_answer(200, "<html><body><h1>XNAT stand-in</h1></body></html>")
        if s == ["data", "services", "auth"] and method in ("PUT", "POST"):
            return auth.login(self.accounts, request)
        if request.principal is None:
            raise Answer(401, b"Authentication required (XNAT stand-in).\n",
                         headers={"WWW-Authenticate": 'Basic realm="XNAT stand-in"'})
        if s[0] == "data":
            return serve_data(self, request, s[1:])
        if s[0] == "xapi":
            return serve_xapi(self, request, s[1:])
        raise StandInError(404, f"the stand-in does not serve {request.path}")

    def session_cookie(self, request: Request) -> str | None:
        return auth.session_cookie(self.accounts, request)


def run_standin(archive_root: Path, *, mitigation_api: bool = True, users: Mapping[str, str] | None = None,
                roles: Mapping[str, Mapping[str, str]] | None = None, template: str = naming.DEFAULT_TEMPLATE,
                cache_root: Path | None = None, mitigation_delay: float = 0.05) -> StandIn:
    """Start an XNAT stand-in on 127.0.0.1 (ephemeral port). Use it as a context manager, or call `.stop()`."""
    return StandIn(archive_root, mitigation_api=mitigation_api, users=users, roles=roles, template=template,
                   cache_root=cache_root, mitigation_delay=mitigation_delay)


# LoggedRequest and result_set live in framing.py; they stay importable from here, where they always were.
__all__ = ["LoggedRequest", "StandIn", "result_set", "run_standin"]
