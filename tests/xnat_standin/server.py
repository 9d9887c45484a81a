"""The XNAT stand-in server: a real HTTP server on loopback, backed by an archive folder on disk.

It is a stand-in for tests, not XNAT: it serves the subset of XNAT's REST API that
`xnat-resource-survey` and the `xnat` package use, in XNAT's JSON shapes. See API.md beside this file.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import http.server
import json
import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pydicom

from container_app.core import naming
from tests.xnat_standin import catalogs, schema
from tests.xnat_standin.archive import (
    RESOURCE_XSI_TYPE,
    SCAN_XSI_TYPE,
    SESSION_XSI_TYPE,
    Archive,
    Resource,
    Session,
    StandInError,
    now_text,
    resolve_inside,
)
from tests.xnat_standin.faults import Faults
from tests.xnat_standin.surveys import OPEN_SURVEY_STATUSES, Status, SurveyRequest, SurveyService

VERSION_WITH_MITIGATION = "1.8.10"
VERSION_WITHOUT_MITIGATION = "1.8.7"
ROLES = ("owner", "member", "collaborator")
#: Query parameters never written to the request log.
_SECRET_PARAMS = frozenset({"password", "pass", "secret", "token", "alias", "j_password", "j_username"})

JSON = dict[str, Any]


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the stand-in saw it. Never holds a password, token secret, alias or session id."""

    method: str
    path: str
    query: str
    status: int  # 0: the connection was dropped without an answer
    user: str | None


@dataclass
class _Token:
    user: str
    secret: str
    valid: bool = True
    created: float = field(default_factory=time.time)


@dataclass(frozen=True)
class _Principal:
    user: str
    alias: str | None


class _Answer(Exception):
    """Raised by handlers to answer right away."""

    def __init__(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})


class _Drop(Exception):
    """Close the connection without an answer."""


def result_set(rows: list[JSON], title: str = "") -> JSON:
    """XNAT's JSON table shape."""
    return {"ResultSet": {"Result": rows, "totalRecords": str(len(rows)), "title": title}}


@dataclass
class _Request:
    method: str
    path: str  # normalised: /data/... (REST and /data/archive folded in)
    segments: list[str]
    query: dict[str, list[str]]
    raw_query: str
    headers: Any
    body: bytes
    principal: _Principal | None = None
    cookie_set: bool = False  # the answer already carries a new JSESSIONID
    head: bool = False

    def param(self, name: str, default: str | None = None) -> str | None:
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() == "true"

    @property
    def user(self) -> str:
        assert self.principal is not None
        return self.principal.user


class StandIn:
    """A running XNAT stand-in. Use `run_standin(...)` to start one."""

    def __init__(self, archive_root: Path, *, mitigation_api: bool = True,
                 users: Mapping[str, str] | None = None, roles: Mapping[str, Mapping[str, str]] | None = None,
                 template: str = naming.DEFAULT_TEMPLATE, cache_root: Path | None = None,
                 mitigation_delay: float = 0.05) -> None:
        self.archive = Archive(Path(archive_root))
        self.mitigation_api = mitigation_api
        self.version = VERSION_WITH_MITIGATION if mitigation_api else VERSION_WITHOUT_MITIGATION
        self.faults = Faults()
        self._users = dict(users if users is not None else {"admin": "secret"})
        self._roles: dict[str, dict[str, str | None]] = {u: dict(r) for u, r in (roles or {}).items()}
        self._tokens: dict[str, _Token] = {}
        self._sessions: dict[str, _Principal] = {}
        self._auth_lock = threading.Lock()
        self._log: list[LoggedRequest] = []
        self._log_lock = threading.Lock()
        self.cache_root = Path(cache_root) if cache_root is not None else Path(archive_root).parent / "standin-cache"
        self.surveys = SurveyService(self.archive, naming.parse_template(template), self.cache_root, mitigation_delay)
        self._scan_types: dict[Path, str] = {}
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.standin = self  # type: ignore[attr-defined]
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

    @property
    def mitigation_delay(self) -> float:
        return self.surveys.delay

    @mitigation_delay.setter
    def mitigation_delay(self, value: float) -> None:
        self.surveys.delay = value

    @property
    def requests_log(self) -> list[LoggedRequest]:
        with self._log_lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._log_lock:
            self._log.clear()

    def _record(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self._log.append(entry)

    # --- users, tokens, roles --------------------------------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        with self._auth_lock:
            self._users[user] = password

    def issue_token(self, user: str) -> tuple[str, str]:
        """A new alias token of `user`: (alias, secret), as XNAT_USER and XNAT_PASS in a container."""
        if user not in self._users:
            raise KeyError(f"the stand-in has no user {user!r}")
        alias = str(uuid.uuid4())
        secret = secrets.token_urlsafe(48)
        with self._auth_lock:
            self._tokens[alias] = _Token(user, secret)
        return alias, secret

    def invalidate_token(self, alias: str) -> None:
        """Play a token that expired (XNAT invalidates a container's token when the container finishes)."""
        with self._auth_lock:
            if alias in self._tokens:
                self._tokens[alias].valid = False
            for sid, principal in list(self._sessions.items()):
                if principal.alias == alias:
                    del self._sessions[sid]

    def set_role(self, user: str, project: str, role: str | None) -> None:
        """`owner`, `member`, `collaborator` or None (no access). Users never given a role own every project."""
        if role is not None and role not in ROLES:
            raise ValueError(f"role must be one of {ROLES} or None")
        with self._auth_lock:
            self._roles.setdefault(user, {})[project] = role

    def role(self, user: str, project: str) -> str | None:
        with self._auth_lock:
            if user not in self._roles:
                return "owner"
            return self._roles[user].get(project)

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

    # --- authentication --------------------------------------------------------------------------

    def _check_basic(self, user: str, password: str) -> _Principal | None:
        with self._auth_lock:
            known = self._users.get(user)
            if known is not None and secrets.compare_digest(known, password):
                return _Principal(user, None)
            token = self._tokens.get(user)
            if token is not None and token.valid and secrets.compare_digest(token.secret, password):
                return _Principal(token.user, user)
        return None

    def _principal_for_session(self, sid: str) -> _Principal | None:
        with self._auth_lock:
            return self._sessions.get(sid)

    def _new_session(self, principal: _Principal) -> str:
        sid = secrets.token_hex(16).upper()
        with self._auth_lock:
            self._sessions[sid] = principal
        return sid

    def _end_session(self, sid: str) -> None:
        with self._auth_lock:
            self._sessions.pop(sid, None)

    # --- access ----------------------------------------------------------------------------------

    def _require(self, request: _Request, project: str, level: str) -> None:
        """level: read (any role), edit (owner or member), delete (owner)."""
        role = self.role(request.user, project)
        allowed = {"read": ROLES, "edit": ("owner", "member"), "delete": ("owner",)}[level]
        if role not in allowed:
            raise StandInError(403, f"User {request.user} has insufficient privileges on project {project} "
                                    f"(the stand-in needs {level} rights)")

    # --- JSON for objects ------------------------------------------------------------------------

    def _scan_type(self, resource_dir: Path) -> str:
        cached = self._scan_types.get(resource_dir)
        if cached is not None:
            return cached
        found = ""
        for file in sorted(resource_dir.iterdir()) if resource_dir.is_dir() else []:
            if file.is_file() and not file.name.endswith(catalogs.CATALOG_SUFFIX):
                try:
                    dataset = pydicom.dcmread(file, stop_before_pixels=True, force=True,
                                              specific_tags=["SeriesDescription"])
                    found = str(dataset.get("SeriesDescription", "") or "")
                except Exception:
                    found = ""
                break
        self._scan_types[resource_dir] = found
        return found

    def resource_row(self, resource: Resource) -> JSON:
        count, size = resource.stats()
        return {
            "xnat_abstractresource_id": str(resource.id),
            "label": resource.label,
            "element_name": RESOURCE_XSI_TYPE,
            "category": "scans" if resource.scan_id is not None else "resources",
            "cat_id": resource.scan_id if resource.scan_id is not None else resource.session.id,
            "cat_desc": "",
            "format": resource.format(),
            "content": resource.content or "",
            "tags": "",
            "file_count": str(count),
            "file_size": str(size),
        }

    def resource_item(self, resource: Resource) -> JSON:
        count, size = resource.stats()
        fields: JSON = {
            "xnat_abstractresource_id": resource.id,
            "label": resource.label,
            "format": resource.format(),
            "file_count": count,
            "file_size": size,
            "URI": str(resource.catalog_path or resource.path),
        }
        if resource.content:
            fields["content"] = resource.content
        return {"children": [], "meta": {"xsi:type": RESOURCE_XSI_TYPE, "isHistory": False}, "data_fields": fields}

    def scan_item(self, session: Session, scan_id: str) -> JSON:
        resources = self.archive.resources_of(session, scan_id)
        scan_type = self._scan_type(resources[0].path) if resources else ""
        return {
            "children": [{"field": "file", "items": [self.resource_item(r) for r in resources]}] if resources else [],
            "meta": {"xsi:type": SCAN_XSI_TYPE, "isHistory": False},
            "data_fields": {"ID": scan_id, "type": scan_type, "series_description": scan_type,
                            "image_session_ID": session.id, "project": session.project,
                            "xnat_imagescandata_id": self._scan_pk(session, scan_id)},
        }

    def _scan_pk(self, session: Session, scan_id: str) -> int:
        digest = hashlib.sha256(f"{session.id}/{scan_id}".encode()).digest()
        return int.from_bytes(digest[:3], "big")

    def experiment_item(self, session: Session) -> JSON:
        children: list[JSON] = []
        scans = [self.scan_item(session, s) for s in session.scan_ids()]
        if scans:
            children.append({"field": "scans/scan", "items": scans})
        session_resources = self.archive.resources_of(session, None)
        if session_resources:
            children.append({"field": "resources/resource", "items": [self.resource_item(r) for r in
                                                                      session_resources]})
        return {
            "children": children,
            "meta": {"xsi:type": SESSION_XSI_TYPE, "isHistory": False},
            "data_fields": {"ID": session.id, "label": session.label, "project": session.project,
                            "subject_ID": session.subject_id, "modality": "MR", "UID": ""},
        }

    def experiment_row(self, session: Session) -> JSON:
        return {"ID": session.id, "label": session.label, "project": session.project,
                "subject_ID": session.subject_id, "xsiType": SESSION_XSI_TYPE, "date": "",
                "insert_date": session.insert_date(), "URI": f"/data/experiments/{session.id}"}

    def file_rows(self, resource: Resource) -> list[JSON]:
        rows = []
        for entry in resource.entries():
            file = resource.path / entry.uri
            size = file.stat().st_size if file.is_file() else 0
            rows.append({
                "Name": entry.uri.rsplit("/", 1)[-1],
                "Size": str(size),
                "URI": f"{resource.rest_uri}/files/{entry.uri}",
                "collection": resource.label,
                "file_tags": entry.tags or "",
                "file_format": entry.format or "",
                "file_content": entry.content or "",
                "cat_ID": str(resource.id),
                "digest": entry.digest or "",
            })
        return rows


# --------------------------------------------------------------------------------------------------
# Routing


def _categories(method: str, segments: list[str]) -> frozenset[str]:
    """The named fault targets a request belongs to."""
    s = segments
    if (s[:2] == ["data", "services"] and len(s) > 2 and s[2] == "auth") or s[:2] == ["data", "auth"] or s == [
            "data", "JSESSION"] or not s:
        return frozenset({"auth"})
    if s[:4] == ["data", "services", "refresh", "catalog"]:
        return frozenset({"refresh"})
    if s[:3] == ["xapi", "resources", "survey"]:
        return frozenset({"survey"})
    if s[:3] == ["xapi", "resources", "mitigate"]:
        return frozenset({"mitigate", "mitigate_queue"} if method == "POST" else {"mitigate"})
    if "files" in s:
        index = s.index("files")
        if index == len(s) - 1:
            return frozenset({"files"} if method == "GET" else {"resource"})
        return frozenset({"download" if method == "GET" else "delete" if method == "DELETE" else "upload"})
    if s and s[-1] in ("projects", "experiments", "scans", "resources", "subjects"):
        return frozenset({"listing"})
    if len(s) >= 2 and s[-2] == "resources":
        return frozenset({"resource"})
    return frozenset()


def _normalise(path: str) -> list[str]:
    segments = [unquote(p) for p in path.split("/") if p != ""]
    if segments[:1] == ["REST"]:
        segments[0] = "data"
    if segments[:2] == ["data", "archive"]:
        del segments[1]
    return segments


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive answers would otherwise wait ~40 ms on delayed ACKs
    server_version = "XNAT-stand-in/1.0"
    standin: StandIn

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the stand-in keeps its own log, without credentials

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    # --- plumbing --------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        standin: StandIn = self.server.standin  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        segments = _normalise(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        logged_query = "&".join(f"{k}={'***' if k.lower() in _SECRET_PARAMS else ','.join(v)}"
                                for k, v in query.items())
        path = "/" + "/".join(segments)
        body = self._read_body()
        # HEAD is served as GET without the body.
        request = _Request("GET" if method == "HEAD" else method, path, segments, query, split.query, self.headers,
                           body, head=method == "HEAD")
        def record(status: int) -> None:
            standin._record(LoggedRequest(method, path, logged_query, status,
                                          request.principal.user if request.principal else None))

        try:
            for rule in standin.faults.take(method, path, _categories(method, segments)):
                if rule.kind == "slow":
                    time.sleep(rule.delay)
                elif rule.kind == "drop":
                    raise _Drop
                elif rule.kind in ("partial_upload", "mitigation_error"):
                    request.query.setdefault(f"__standin_{rule.kind}", ["true"])
                else:
                    raise _Answer(int(rule.kind), f"stand-in fault switch: {rule.kind}\n".encode())
            answer = self._dispatch(standin, request)
        except _Drop:
            record(0)  # before closing, so a test that sees the failure also sees the log
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except StandInError as exc:
            answer = _Answer(exc.status, (exc.message + "\n").encode())
        except _Answer as exc:
            answer = exc
        except Exception as exc:  # a bug in the stand-in: answer 500 and keep serving
            answer = _Answer(500, f"the stand-in failed: {type(exc).__name__}: {exc}\n".encode())
        record(answer.status)
        try:
            self._send(answer, request, standin)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, answer: _Answer, request: _Request, standin: StandIn) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if request.principal is not None and not request.cookie_set and not self._cookie_session(standin):
            sid = standin._new_session(request.principal)
            self.send_header("Set-Cookie", f"JSESSIONID={sid}; Path=/; HttpOnly")
        self.end_headers()
        if not request.head:
            self.wfile.write(answer.body)

    def _cookie_session(self, standin: StandIn) -> _Principal | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "JSESSIONID" and value:
                return standin._principal_for_session(value)
        return None

    def _cookie_sid(self) -> str | None:
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == "JSESSIONID" and value:
                return value
        return None

    def _authenticate(self, standin: StandIn, request: _Request) -> None:
        header = self.headers.get("Authorization") or ""
        if header.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            principal = standin._check_basic(user, password)
            if principal is None:
                raise _Answer(401, b"Login attempt failed. Please try again.\n",
                              headers={"WWW-Authenticate": 'Basic realm="XNAT stand-in"'})
            request.principal = principal
            return
        request.principal = self._cookie_session(standin)

    # --- dispatch --------------------------------------------------------------------------------

    def _dispatch(self, standin: StandIn, request: _Request) -> _Answer:
        s = request.segments
        method = request.method
        self._authenticate(standin, request)
        if not s:
            return _html(200, "<html><body><h1>XNAT stand-in</h1></body></html>")
        if s == ["data", "services", "auth"] and method in ("PUT", "POST"):
            return self._login(standin, request)
        if request.principal is None:
            raise _Answer(401, b"Authentication required (XNAT stand-in).\n",
                          headers={"WWW-Authenticate": 'Basic realm="XNAT stand-in"'})
        if s[0] == "data":
            return self._data(standin, request, s[1:])
        if s[0] == "xapi":
            return self._xapi(standin, request, s[1:])
        raise StandInError(404, f"the stand-in does not serve {request.path}")

    def _login(self, standin: StandIn, request: _Request) -> _Answer:
        form = parse_qs(request.body.decode("utf-8", "replace"))
        user = (form.get("username") or [""])[0]
        password = (form.get("password") or [""])[0]
        principal = standin._check_basic(user, password)
        if principal is None:
            raise _Answer(401, b"<html><h3>Login attempt failed. Please try again.</h3></html>",
                          "text/html; charset=utf-8")
        sid = standin._new_session(principal)
        request.principal = principal
        request.cookie_set = True
        return _Answer(200, sid.encode(), headers={"Set-Cookie": f"JSESSIONID={sid}; Path=/; HttpOnly"})

    # --- /data -----------------------------------------------------------------------------------

    def _data(self, standin: StandIn, request: _Request, s: list[str]) -> _Answer:
        method = request.method
        archive = standin.archive
        if s == ["JSESSION"]:
            sid = self._cookie_sid()
            if method == "DELETE":
                if sid:
                    standin._end_session(sid)
                return _text(200, "")
            if sid and standin._principal_for_session(sid):
                return _text(200, sid)
            new_sid = standin._new_session(request.principal) if request.principal else ""
            request.cookie_set = True
            return _Answer(200, new_sid.encode(), headers={"Set-Cookie": f"JSESSIONID={new_sid}; Path=/; HttpOnly"})
        if s == ["auth"]:
            return _text(200, f"User '{request.user}' is logged in")
        if s == ["version"]:
            return _text(200, standin.version)
        if s == ["services", "tokens", "issue"]:
            alias, secret = standin.issue_token(request.user)
            now = int(time.time() * 1000)
            return _json(200, {"alias": alias, "secret": secret, "xdatUserId": request.user, "singleUse": False,
                               "estimatedExpirationTime": now + 2 * 24 * 3600 * 1000, "enabled": True,
                               "validIPAddresses": [], "id": len(standin._tokens), "created": now,
                               "timestamp": now, "disabled": 0})
        if s[:2] == ["search", "elements"] and method == "GET":
            return _search_elements(s[2:])
        if s == ["services", "refresh", "catalog"] and method == "POST":
            return self._refresh(standin, request)
        with archive.lock:
            if s == ["projects"] and method == "GET":
                rows = [{"ID": p, "secondary_ID": p, "name": p, "description": "", "pi_firstname": "",
                         "pi_lastname": "", "URI": f"/data/projects/{p}"}
                        for p in archive.projects() if standin.role(request.user, p) is not None]
                return _json(200, result_set(rows, "Projects"))
            if s == ["experiments"] and method == "GET":
                project = request.param("project")
                sessions = [x for x in archive.sessions(project) if standin.role(request.user, x.project)]
                return _json(200, result_set([standin.experiment_row(x) for x in sessions], "Experiments"))
            if s[:1] == ["projects"] and len(s) >= 2:
                return self._project(standin, request, s[1], s[2:])
            if s[:1] == ["experiments"] and len(s) >= 2:
                session = archive.find_session(s[1])
                standin._require(request, session.project, "read")
                return self._experiment(standin, request, session, s[2:])
            if s[:1] == ["subjects"] and len(s) >= 2:
                sessions = [x for x in archive.sessions() if x.subject_id == s[1]]
                if not sessions:
                    raise StandInError(404, f"the stand-in has no subject {s[1]!r}")
                return self._subject(standin, request, sessions[0], s[2:])
        raise StandInError(404, f"the stand-in does not serve {method} {request.path}")

    def _project(self, standin: StandIn, request: _Request, project: str, rest: list[str]) -> _Answer:
        archive = standin.archive
        if project not in archive.projects():
            raise StandInError(404, f"the stand-in has no project {project!r}")
        standin._require(request, project, "read")
        if not rest:
            return _json(200, {"items": [{"children": [], "meta": {"xsi:type": "xnat:projectData", "isHistory": False},
                                          "data_fields": {"ID": project, "secondary_ID": project, "name": project}}]})
        if rest == ["subjects"]:
            rows = [{"ID": x.subject_id, "label": x.subject_label, "project": project, "insert_date": x.insert_date(),
                     "URI": f"/data/subjects/{x.subject_id}"} for x in archive.sessions(project)]
            return _json(200, result_set(rows, "Subjects"))
        if rest == ["experiments"]:
            return _json(200, result_set([standin.experiment_row(x) for x in archive.sessions(project)],
                                         "Experiments"))
        if rest[0] == "experiments" and len(rest) >= 2:
            return self._experiment(standin, request, archive.find_session(rest[1], project), rest[2:])
        if rest[0] == "subjects" and len(rest) >= 2:
            matches = [x for x in archive.sessions(project) if rest[1] in (x.subject_id, x.subject_label)]
            if not matches:
                raise StandInError(404, f"the stand-in has no subject {rest[1]!r}")
            return self._subject(standin, request, matches[0], rest[2:])
        raise StandInError(404, f"the stand-in does not serve {request.method} {request.path}")

    def _subject(self, standin: StandIn, request: _Request, session: Session, rest: list[str]) -> _Answer:
        standin._require(request, session.project, "read")
        if not rest:
            return _json(200, {"items": [{"children": [], "meta": {"xsi:type": "xnat:subjectData", "isHistory": False},
                                          "data_fields": {"ID": session.subject_id, "label": session.subject_label,
                                                          "project": session.project}}]})
        if rest == ["experiments"]:
            return _json(200, result_set([standin.experiment_row(session)], "Experiments"))
        if rest[0] == "experiments" and len(rest) >= 2:
            found = standin.archive.find_session(rest[1], session.project)
            if found.subject_id != session.subject_id:
                raise StandInError(404, f"the stand-in has no experiment {rest[1]!r} for that subject")
            return self._experiment(standin, request, found, rest[2:])
        raise StandInError(404, f"the stand-in does not serve {request.method} {request.path}")

    def _experiment(self, standin: StandIn, request: _Request, session: Session, rest: list[str]) -> _Answer:
        archive = standin.archive
        method = request.method
        standin._require(request, session.project, "read")
        if not rest:
            if method == "GET":
                return _json(200, {"items": [standin.experiment_item(session)]})
            raise StandInError(405, "the stand-in does not change experiments")
        if rest == ["scans"] and method == "GET":
            rows = []
            for each in session.scan_ids():
                item = standin.scan_item(session, each)["data_fields"]
                rows.append({"ID": each, "type": item["type"], "series_description": item["series_description"],
                             "quality": "usable", "xsiType": SCAN_XSI_TYPE, "note": "",
                             "xnat_imagescandata_id": str(item["xnat_imagescandata_id"]),
                             "URI": f"/data/experiments/{session.id}/scans/{each}"})
            return _json(200, result_set(rows, "Scans"))
        scan_id: str | None = None
        if rest[0] == "scans" and len(rest) >= 2:
            scan_id = rest[1]
            if scan_id not in session.scan_ids():
                raise StandInError(404, f"the stand-in has no scan {scan_id!r}")
            rest = rest[2:]
            if not rest and method == "GET":
                return _json(200, {"items": [standin.scan_item(session, scan_id)]})
        if rest == ["resources"] and method == "GET":
            rows = [standin.resource_row(r) for r in archive.resources_of(session, scan_id)]
            return _json(200, result_set(rows, "Resources"))
        if rest[:1] == ["resources"] and len(rest) >= 2:
            return self._resource(standin, request, session, scan_id, rest[1], rest[2:])
        raise StandInError(404, f"the stand-in does not serve {method} {request.path}")

    def _resource(self, standin: StandIn, request: _Request, session: Session, scan_id: str | None, ref: str,
                  rest: list[str]) -> _Answer:
        archive = standin.archive
        method = request.method
        if not rest:
            if method in ("PUT", "POST"):
                standin._require(request, session.project, "edit")
                if ref.isdigit():
                    raise StandInError(400, "the stand-in creates resources by label, not by ID")
                archive.create_resource(session, scan_id, ref, fmt=request.param("format"),
                                        content=request.param("content"))
                return _text(200, "")
            resource = archive.find_resource(session, scan_id, ref)
            if method == "DELETE":
                standin._require(request, session.project, "delete")
                archive.delete_resource(resource)
                return _text(200, "")
            return _json(200, {"items": [standin.resource_item(resource)]})
        if rest[0] != "files":
            raise StandInError(404, f"the stand-in does not serve {method} {request.path}")
        name = "/".join(rest[1:])
        if not name:
            if method == "GET":
                resource = archive.find_resource(session, scan_id, ref)
                return _json(200, result_set(standin.file_rows(resource), "Files"))
            raise StandInError(405, "name the file to upload: .../files/{name}")
        if method == "GET":
            resource = archive.find_resource(session, scan_id, ref)
            entry = next((e for e in resource.entries() if e.uri == name), None)
            file = resolve_inside(resource.path, name)
            if entry is None or not file.is_file():
                raise StandInError(404, f"the stand-in has no file {name!r} in that resource")
            return _Answer(200, file.read_bytes(), "application/octet-stream")
        if method in ("PUT", "POST"):
            standin._require(request, session.project, "edit")
            try:
                resource = archive.find_resource(session, scan_id, ref)
            except StandInError:
                if ref.isdigit():
                    raise
                resource = archive.create_resource(session, scan_id, ref, fmt=None, content=None)
            return self._upload(request, resource, name)
        if method == "DELETE":
            standin._require(request, session.project, "delete")
            resource = archive.find_resource(session, scan_id, ref)
            catalog = resource.catalog_path
            if catalog is None or not any(e.uri == name for e in resource.entries()):
                raise StandInError(404, f"the stand-in has no file {name!r} in that resource")
            file = resolve_inside(resource.path, name)
            if file.is_file():
                file.unlink()
            catalogs.rename_and_remove(catalog, {}, frozenset({name}))
            return _text(200, "")
        raise StandInError(405, f"the stand-in does not serve {method} on files")

    def _upload(self, request: _Request, resource: Resource, name: str) -> _Answer:
        content_type = request.headers.get("Content-Type") or ""
        data = request.body
        if content_type.lower().startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + data)
            parts = [p for p in message.iter_parts() if p.get_filename() is not None] if message.is_multipart() else []
            if not parts:
                raise StandInError(400, "the multipart upload has no file part")
            payload = parts[0].get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
        target = resolve_inside(resource.path, name)
        entries = resource.entries()
        existing = next((e for e in entries if e.uri == name), None)
        if (existing is not None or target.exists()) and not request.flag("overwrite"):
            raise StandInError(409, f"File already exists: {name} (add overwrite=true to replace it)")
        target.parent.mkdir(parents=True, exist_ok=True)
        if request.flag("__standin_partial_upload"):
            target.write_bytes(data[: len(data) // 2])
            raise StandInError(500, "the stand-in was told to fail this upload midway (fault switch)")
        temporary = target.with_name(f".{target.name}.standin-upload")
        temporary.write_bytes(data)
        os.replace(temporary, target)
        digest = hashlib.md5(data).hexdigest()
        catalog = resource.ensure_catalog()
        if existing is not None:
            catalogs.set_digests(catalog, {name: digest})
        else:
            user = request.user
            catalogs.add_entries(catalog, lambda prefix: [catalogs.plain_entry_xml(
                prefix, name, digest=digest, fmt=request.param("format"), content=request.param("content"),
                user=user, when=now_text())])
        return _text(200, "")

    def _refresh(self, standin: StandIn, request: _Request) -> _Answer:
        archive = standin.archive
        targets = request.query.get("resource") or []
        if not targets:
            raise StandInError(400, "name at least one resource to refresh: ?resource=/archive/...")
        options = {o.strip() for v in request.query.get("options", []) for o in v.split(",") if o.strip()}
        unknown = options - {"checksum", "delete", "append", "populateStats"}
        if unknown:
            raise StandInError(400, f"unknown refresh options: {sorted(unknown)}")
        with archive.lock:
            resources: list[Resource] = []
            for target in targets:
                resources += self._refresh_targets(standin, request, target)
            for resource in resources:
                _refresh_resource(resource, options, request.user)
        return _text(200, "")

    def _refresh_targets(self, standin: StandIn, request: _Request, target: str) -> list[Resource]:
        archive = standin.archive
        parts = _normalise(target)
        if parts[:1] == ["data"]:
            parts = parts[1:]
        if parts[:1] == ["archive"]:
            parts = parts[1:]
        pairs: dict[str, str] = {}
        for key, value in zip(parts[::2], parts[1::2], strict=False):
            pairs[key] = value
        if "experiments" not in pairs:
            raise StandInError(400, f"the stand-in refreshes sessions, scans and resources, not {target!r}")
        session = archive.find_session(pairs["experiments"], pairs.get("projects"))
        standin._require(request, session.project, "edit")
        scan_id = pairs.get("scans")
        if "resources" in pairs:
            return [archive.find_resource(session, scan_id, pairs["resources"])]
        if scan_id is not None:
            return archive.resources_of(session, scan_id)
        return archive.resources_of(session, None, all_levels=True)

    # --- /xapi -----------------------------------------------------------------------------------

    def _xapi(self, standin: StandIn, request: _Request, s: list[str]) -> _Answer:
        method = request.method
        if s == ["siteConfig", "buildInfo"]:
            return _json(200, {"version": standin.version, "buildNumber": "standin", "buildDate": "",
                               "sha": "standin", "shaFull": "standin", "commit": "standin", "tag": standin.version,
                               "branch": "stand-in", "isDirty": "false", "timestamp": "0"})
        if s == ["siteConfig", "buildInfo", "version"]:
            return _text(200, standin.version)
        if s == ["schemas"]:
            return _json(200, list(schema.SCHEMA_NAMES))
        if s[:1] == ["schemas"] and "/".join(s[1:]) in schema.SCHEMA_NAMES:
            return _Answer(200, schema.XNAT_XSD.encode(), "application/xml")
        if s[:1] == ["resources"] and standin.mitigation_api:
            return _ResourceSurveyApi(standin, request).serve(method, s[1:])
        raise StandInError(404, f"the stand-in does not serve {method} {request.path}")


def _refresh_resource(resource: Resource, options: set[str], user: str) -> None:
    catalog = resource.catalog_path
    if catalog is None:
        if "append" not in options:
            return
        catalog = resource.ensure_catalog()
    entries = resource.entries()
    if "delete" in options:
        gone = frozenset(e.uri for e in entries if not (resource.path / e.uri).is_file())
        if gone:
            catalogs.rename_and_remove(catalog, {}, gone)
            entries = [e for e in entries if e.uri not in gone]
    if "checksum" in options:
        missing = {e.uri: catalogs.md5_of(resource.path / e.uri) for e in entries
                   if not e.digest and (resource.path / e.uri).is_file()}
        if missing:
            catalogs.set_digests(catalog, missing)
    if "append" in options:
        known = {e.uri for e in entries}
        new = []
        for file in sorted(resource.path.rglob("*")):
            relative = file.relative_to(resource.path).as_posix()
            if (file.is_file() and relative not in known and not file.name.endswith(catalogs.CATALOG_SUFFIX)
                    and not any(part.startswith(".") for part in relative.split("/"))):
                new.append((relative, catalogs.md5_of(file) if "checksum" in options else None))
        if new:
            when = now_text()
            catalogs.add_entries(catalog, lambda prefix: [
                catalogs.plain_entry_xml(prefix, rel, digest=digest, fmt=None, content=None, user=user, when=when)
                for rel, digest in new])
    # populateStats: the stand-in computes counts and sizes on every listing, nothing to store.


class _ResourceSurveyApi:
    """`/xapi/resources/...`: XNAT's ResourceSurveyApi, as far as the stand-in plays it."""

    def __init__(self, standin: StandIn, request: _Request) -> None:
        self.standin = standin
        self.request = request
        self.surveys = standin.surveys
        self.archive = standin.archive

    def _resource(self, text: str) -> Resource:
        if not text.isdigit():
            raise StandInError(400, f"resource IDs are integers, not {text!r}")
        resource = self.archive.resource_by_id(int(text))
        self.standin._require(self.request, resource.session.project, "delete")
        if resource.scan_id is None:
            raise StandInError(404, f"resource {text} is not a scan resource: the survey API works on scan resources")
        return resource

    def _request(self, text: str) -> SurveyRequest:
        if not text.isdigit():
            raise StandInError(400, f"request IDs are integers, not {text!r}")
        found = self.surveys.request(int(text))
        self.standin._require(self.request, found.resource.session.project, "delete")
        return found

    def _project(self, project: str) -> str:
        if project not in self.archive.projects():
            raise StandInError(404, f"the stand-in has no project {project!r}")
        self.standin._require(self.request, project, "delete")
        return project

    def serve(self, method: str, s: list[str]) -> _Answer:
        with self.archive.lock:
            return self._serve(method, s)

    def _serve(self, method: str, s: list[str]) -> _Answer:
        fail = self.request.flag("__standin_mitigation_error")
        match (method, s):
            case ("POST", ["survey", "resource", rid]):
                return _json(200, self.surveys.queue_survey(self._resource(rid), self.request.user).id)
            case ("GET", ["survey", "resource", rid]):
                return _json(200, self.surveys.latest_for(self._resource(rid).id).to_json())
            case ("DELETE", ["survey", "resource", rid]):
                latest = self.surveys.latest_for(self._resource(rid).id)
                return _json(200, self.surveys.cancel(latest))
            case ("GET", ["survey", "resource", rid, "status"]):
                return _json(200, self.surveys.latest_for(self._resource(rid).id).status.value)
            case ("GET", ["survey", "resource", rid, "report"]):
                latest = self.surveys.latest_for(self._resource(rid).id)
                return _json(200, self._survey_report(latest))
            case ("GET", ["survey", "request", qid]):
                return _json(200, self._request(qid).to_json())
            case ("DELETE", ["survey", "request", qid]):
                return _json(200, self.surveys.cancel(self._request(qid)))
            case ("GET", ["survey", "request", qid, "status"]):
                return _json(200, self._request(qid).status.value)
            case ("GET", ["survey", "request", qid, "report"]):
                return _json(200, self._survey_report(self._request(qid)))
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
                return _json(200, ids)
            case ("GET", ["survey", "project", project]):
                self._project(project)
                return _json(200, [r.to_json() for r in self.surveys.for_project(project)
                                   if r.is_open and r.status in OPEN_SURVEY_STATUSES])
            case ("GET", ["survey", "project", project, "status"]):
                self._project(project)
                by_resource: dict[int, SurveyRequest] = {}
                for r in self.surveys.for_project(project):
                    if r.is_open:
                        by_resource[r.resource.id] = r
                return _json(200, {str(k): v.status.value for k, v in sorted(by_resource.items())})
            case ("POST", ["mitigate", "resource", rid]):
                latest = self.surveys.latest_for(self._resource(rid).id)
                return _json(200, self.surveys.queue_mitigation(latest, self.request.user, fail=fail).id)
            case ("POST", ["mitigate", "request", qid]):
                return _json(200, self.surveys.queue_mitigation(self._request(qid), self.request.user, fail=fail).id)
            case ("POST", ["mitigate", "project", project]):
                self._project(project)
                ids = [self.surveys.queue_mitigation(r, self.request.user, fail=fail).id
                       for r in self.surveys.for_project(project) if r.status is Status.DIVERGENT]
                return _json(200, ids)
            case ("GET", ["mitigate", "resource", rid, "report"]):
                return _json(200, self._mitigation_report(self.surveys.latest_for(self._resource(rid).id)))
            case ("GET", ["mitigate", "request", qid, "report"]):
                return _json(200, self._mitigation_report(self._request(qid)))
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


#: The display fields the stand-in lists for its data types (xnatpy reads them on connect).
_SEARCH_FIELDS = {
    "xnat:projectData": ("ID", "NAME", "SECONDARY_ID", "DESCRIPTION"),
    "xnat:subjectData": ("SUBJECT_ID", "SUBJECT_LABEL", "PROJECT", "INSERT_DATE"),
    SESSION_XSI_TYPE: ("SESSION_ID", "LABEL", "PROJECT", "SUBJECT_ID", "DATE", "INSERT_DATE"),
}


def _search_elements(rest: list[str]) -> _Answer:
    if not rest:
        rows = [{"ELEMENT_NAME": name, "SINGULAR": name.split(":")[1], "PLURAL": name.split(":")[1], "COUNT": "0",
                 "SECURED": "true"} for name in _SEARCH_FIELDS]
        return _json(200, result_set(rows, "Elements"))
    fields = _SEARCH_FIELDS.get("/".join(rest))
    if fields is None:
        raise StandInError(404, f"the stand-in has no search element {'/'.join(rest)!r}")
    rows = [{"FIELD_ID": f, "HEADER": f.lower(), "SUMMARY": "", "TYPE": "string", "REQUIRES_VALUE": "false",
             "DESC": "", "ELEMENT_NAME": "/".join(rest), "SRC": "0"} for f in fields]
    return _json(200, result_set(rows, "Fields"))


def _json(status: int, payload: Any) -> _Answer:
    return _Answer(status, json.dumps(payload).encode(), "application/json")


def _text(status: int, text: str) -> _Answer:
    return _Answer(status, text.encode(), "text/plain; charset=utf-8")


def _html(status: int, text: str) -> _Answer:
    return _Answer(status, text.encode(), "text/html; charset=utf-8")


def run_standin(archive_root: Path, *, mitigation_api: bool = True, users: Mapping[str, str] | None = None,
                roles: Mapping[str, Mapping[str, str]] | None = None, template: str = naming.DEFAULT_TEMPLATE,
                cache_root: Path | None = None, mitigation_delay: float = 0.05) -> StandIn:
    """Start an XNAT stand-in on 127.0.0.1 (ephemeral port). Use it as a context manager, or call `.stop()`."""
    return StandIn(archive_root, mitigation_api=mitigation_api, users=users, roles=roles, template=template,
                   cache_root=cache_root, mitigation_delay=mitigation_delay)


__all__ = ["LoggedRequest", "StandIn", "result_set", "run_standin"]
