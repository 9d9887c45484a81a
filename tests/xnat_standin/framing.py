"""The stand-in's HTTP framing: requests in, answers out, the request log.

This module reads the HTTP request (path folding, query, body), applies the fault switches (slow, drop,
fault statuses, and the flags the routes read for partial uploads and mitigation errors), and writes the
answer. It knows nothing about routes: the handler calls `dispatch` on the
object the server was started with (`StandInHooks`), so the route modules can import the request and
answer types from here without this module importing them back.
"""

from __future__ import annotations

import http.server
import json
import socket
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from tests.xnat_standin.archive import StandInError
from tests.xnat_standin.faults import Faults, categories

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


# Defined here rather than in auth.py because every Request carries one, and auth.py imports this module.
@dataclass(frozen=True)
class Principal:
    """Who sent a request: the account's user, and the alias when a token was used."""

    user: str
    alias: str | None


class Answer(Exception):
    """Raised by handlers to answer right away."""

    def __init__(self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8",
                 headers: Mapping[str, str] | None = None, reason: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.reason = reason  # the status line's phrase, where XNAT (Restlet) puts a message of its own
        self.body = body
        self.content_type = content_type
        self.headers = dict(headers or {})


class Drop(Exception):
    """Close the connection without an answer."""


def result_set(rows: list[JSON], title: str = "") -> JSON:
    """XNAT's JSON table shape."""
    return {"ResultSet": {"Result": rows, "totalRecords": str(len(rows)), "title": title}}


def json_answer(status: int, payload: Any) -> Answer:
    return Answer(status, json.dumps(payload).encode(), "application/json")


def text_answer(status: int, text: str) -> Answer:
    return Answer(status, text.encode(), "text/plain; charset=utf-8")


def html_answer(status: int, text: str) -> Answer:
    return Answer(status, text.encode(), "text/html; charset=utf-8")


@dataclass
class Request:
    method: str
    path: str  # normalised: /data/... (REST and /data/archive folded in)
    segments: list[str]
    query: dict[str, list[str]]
    raw_query: str
    headers: Any
    body: bytes
    principal: Principal | None = None
    cookie_set: bool = False  # the answer already carries a new JSESSIONID
    head: bool = False

    def param(self, name: str, default: str | None = None) -> str | None:
        for key, values in self.query.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return default

    def flag(self, name: str) -> bool:
        return (self.param(name) or "").lower() == "true"

    def cookie(self, name: str) -> str | None:
        """The first non-empty value of cookie `name` the request carries."""
        for part in (self.headers.get("Cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name and value:
                return value
        return None

    @property
    def user(self) -> str:
        assert self.principal is not None
        return self.principal.user


def normalise(path: str) -> list[str]:
    """Path segments, unquoted, with `/REST/...` and `/data/archive/...` folded into `/data/...`."""
    segments = [unquote(p) for p in path.split("/") if p != ""]
    if segments[:1] == ["REST"]:
        segments[0] = "data"
    if segments[:2] == ["data", "archive"]:
        del segments[1]
    return segments


class StandInHooks(Protocol):
    """What the handler needs from the stand-in it serves (`server.StandIn` provides it)."""

    faults: Faults

    def log_request(self, entry: LoggedRequest) -> None: ...

    def dispatch(self, request: Request) -> Answer: ...

    def session_cookie(self, request: Request) -> str | None: ...


class StandInHTTPServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server on 127.0.0.1 (ephemeral port) whose handlers serve `standin`."""

    daemon_threads = True

    def __init__(self, standin: StandInHooks) -> None:
        self.standin = standin
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # keep-alive answers would otherwise wait ~40 ms on delayed ACKs
    server_version = "XNAT-stand-in/1.0"
    server: StandInHTTPServer

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
        standin = self.server.standin
        split = urlsplit(self.path)
        segments = normalise(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        logged_query = "&".join(f"{k}={'***' if k.lower() in _SECRET_PARAMS else ','.join(v)}"
                                for k, v in query.items())
        path = "/" + "/".join(segments)
        body = self._read_body()
        # HEAD is served as GET without the body.
        request = Request("GET" if method == "HEAD" else method, path, segments, query, split.query, self.headers,
                          body, head=method == "HEAD")
        def record(status: int) -> None:
            standin.log_request(LoggedRequest(method, path, logged_query, status,
                                              request.principal.user if request.principal else None))

        try:
            for rule in standin.faults.take(method, path, categories(method, segments)):
                if rule.kind == "slow":
                    time.sleep(rule.delay)
                elif rule.kind == "drop":
                    raise Drop
                elif rule.kind in ("partial_upload", "mitigation_error"):
                    request.query.setdefault(f"__standin_{rule.kind}", ["true"])
                else:
                    raise Answer(int(rule.kind), f"stand-in fault switch: {rule.kind}\n".encode())
            answer = standin.dispatch(request)
        except Drop:
            record(0)  # before closing, so a test that sees the failure also sees the log
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        except StandInError as exc:
            answer = Answer(exc.status, (exc.message + "\n").encode())
        except Answer as exc:
            answer = exc
        except Exception as exc:  # a bug in the stand-in: answer 500 and keep serving
            answer = Answer(500, f"the stand-in failed: {type(exc).__name__}: {exc}\n".encode())
        record(answer.status)
        try:
            self._send(answer, request, standin)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _send(self, answer: Answer, request: Request, standin: StandInHooks) -> None:
        self.send_response(answer.status, answer.reason)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        cookie = standin.session_cookie(request)
        if cookie is not None:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        if not request.head:
            self.wfile.write(answer.body)
