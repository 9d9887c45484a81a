"""The stand-in's authentication and rights: accounts, alias tokens, JSESSIONID sessions, project roles.

`Accounts` holds the state (behind one lock: handlers run on many threads); the functions below are the
parts of request handling that are about who is asking: reading basic auth or the session cookie,
`PUT /data/services/auth`, `/data/JSESSION`, `/data/auth` and `/data/services/tokens/issue`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from tests.xnat_standin.archive import StandInError
from tests.xnat_standin.framing import Answer, Principal, Request, json_answer, text_answer

ROLES = ("owner", "member", "collaborator")


@dataclass
class _Token:
    user: str
    secret: str
    valid: bool = True
    created: float = field(default_factory=time.time)


class Accounts:
    """Users and passwords, alias tokens, open sessions and per-project roles."""

    def __init__(self, users: Mapping[str, str] | None, roles: Mapping[str, Mapping[str, str]] | None) -> None:
        self._users = dict(users if users is not None else {"admin": "secret"})
        self._roles: dict[str, dict[str, str | None]] = {u: dict(r) for u, r in (roles or {}).items()}
        self._tokens: dict[str, _Token] = {}
        self._sessions: dict[str, Principal] = {}
        self._lock = threading.Lock()

    # --- users, tokens, roles --------------------------------------------------------------------

    def add_user(self, user: str, password: str) -> None:
        with self._lock:
            self._users[user] = password

    def issue_token(self, user: str) -> tuple[str, str]:
        """A new alias token of `user`: (alias, secret), as XNAT_USER and XNAT_PASS in a container."""
        if user not in self._users:
            raise KeyError(f"the stand-in has no user {user!r}")
        alias = str(uuid.uuid4())
        secret = secrets.token_urlsafe(48)
        with self._lock:
            self._tokens[alias] = _Token(user, secret)
        return alias, secret

    @property
    def token_count(self) -> int:
        return len(self._tokens)

    def invalidate_token(self, alias: str) -> None:
        """Play a token that expired (XNAT invalidates a container's token when the container finishes)."""
        with self._lock:
            if alias in self._tokens:
                self._tokens[alias].valid = False
            for sid, principal in list(self._sessions.items()):
                if principal.alias == alias:
                    del self._sessions[sid]

    def set_role(self, user: str, project: str, role: str | None) -> None:
        """`owner`, `member`, `collaborator` or None (no access). Users never given a role own every project."""
        if role is not None and role not in ROLES:
            raise ValueError(f"role must be one of {ROLES} or None")
        with self._lock:
            self._roles.setdefault(user, {})[project] = role

    def role(self, user: str, project: str) -> str | None:
        with self._lock:
            if user not in self._roles:
                return "owner"
            return self._roles[user].get(project)

    # --- authentication --------------------------------------------------------------------------

    def check_basic(self, user: str, password: str) -> Principal | None:
        with self._lock:
            known = self._users.get(user)
            if known is not None and secrets.compare_digest(known, password):
                return Principal(user, None)
            token = self._tokens.get(user)
            if token is not None and token.valid and secrets.compare_digest(token.secret, password):
                return Principal(token.user, user)
        return None

    def principal_for_session(self, sid: str) -> Principal | None:
        with self._lock:
            return self._sessions.get(sid)

    def new_session(self, principal: Principal) -> str:
        sid = secrets.token_hex(16).upper()
        with self._lock:
            self._sessions[sid] = principal
        return sid

    def end_session(self, sid: str) -> None:
        with self._lock:
            self._sessions.pop(sid, None)

    # --- access ----------------------------------------------------------------------------------

    def require(self, request: Request, project: str, level: str) -> None:
        """level: read (any role), edit (owner or member), delete (owner)."""
        role = self.role(request.user, project)
        allowed = {"read": ROLES, "edit": ("owner", "member"), "delete": ("owner",)}[level]
        if role not in allowed:
            raise StandInError(403, f"User {request.user} has insufficient privileges on project {project} "
                                    f"(the stand-in needs {level} rights)")


def _cookie_principal(accounts: Accounts, request: Request) -> Principal | None:
    sid = request.cookie("JSESSIONID")
    return accounts.principal_for_session(sid) if sid else None


def authenticate(accounts: Accounts, request: Request) -> None:
    """Set `request.principal` from basic auth (401 when wrong) or else from the JSESSIONID cookie."""
    header = request.headers.get("Authorization") or ""
    if header.lower().startswith("basic "):
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        principal = accounts.check_basic(user, password)
        if principal is None:
            raise Answer(401, b"Login attempt failed. Please try again.\n",
                         headers={"WWW-Authenticate": 'Basic realm="XNAT stand-in"'})
        request.principal = principal
        return
    request.principal = _cookie_principal(accounts, request)


def session_cookie(accounts: Accounts, request: Request) -> str | None:
    """The Set-Cookie value that opens a session, for an authenticated request with no live session cookie."""
    if request.principal is None or request.cookie_set or _cookie_principal(accounts, request) is not None:
        return None
    sid = accounts.new_session(request.principal)
    return f"JSESSIONID={sid}; Path=/; HttpOnly"


def login(accounts: Accounts, request: Request) -> Answer:
    """`PUT /data/services/auth` with form `username`, `password`: the session id, as XNAT answers it."""
    form = parse_qs(request.body.decode("utf-8", "replace"))
    user = (form.get("username") or [""])[0]
    password = (form.get("password") or [""])[0]
    principal = accounts.check_basic(user, password)
    if principal is None:
        raise Answer(401, b"<html><h3>Login attempt failed. Please try again.</h3></html>",
                     "text/html; charset=utf-8")
    sid = accounts.new_session(principal)
    request.principal = principal
    request.cookie_set = True
    return Answer(200, sid.encode(), headers={"Set-Cookie": f"JSESSIONID={sid}; Path=/; HttpOnly"})


def jsession(accounts: Accounts, request: Request) -> Answer:
    """`/data/JSESSION`: DELETE ends the session; GET answers its id, opening one when there is none."""
    sid = request.cookie("JSESSIONID")
    if request.method == "DELETE":
        if sid:
            accounts.end_session(sid)
        return text_answer(200, "")
    if sid and accounts.principal_for_session(sid):
        return text_answer(200, sid)
    new_sid = accounts.new_session(request.principal) if request.principal else ""
    request.cookie_set = True
    return Answer(200, new_sid.encode(), headers={"Set-Cookie": f"JSESSIONID={new_sid}; Path=/; HttpOnly"})


def logged_in(request: Request) -> Answer:
    """`/data/auth`."""
    return text_answer(200, f"User '{request.user}' is logged in")


def issue_token(accounts: Accounts, request: Request) -> Answer:
    """`/data/services/tokens/issue`: a new alias token of the caller (fields as in API.md)."""
    alias, secret = accounts.issue_token(request.user)
    now = int(time.time() * 1000)
    return json_answer(200, {"alias": alias, "secret": secret, "xdatUserId": request.user, "singleUse": False,
                             "estimatedExpirationTime": now + 2 * 24 * 3600 * 1000, "enabled": True,
                             "validIPAddresses": [], "id": accounts.token_count, "created": now,
                             "timestamp": now, "disabled": 0})
