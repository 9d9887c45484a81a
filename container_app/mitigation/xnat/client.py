"""A thin, typed client for XNAT's REST API, over the `xnat` package's session.

What it adds to xnatpy: bounded timeouts on every call; bounded retries with backoff where a retry is
safe (GET always; PUT, DELETE and selected POSTs when the caller says so); one exception hierarchy
with messages a user can act on (`errors`: 401/403 are about permissions, 404, 409, 5xx, timeouts,
dropped connections); and secrets kept out of every message: the password or token, the user name when it
is an alias token, and the JSESSION id never appear in logs, reports or exceptions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import requests
import structlog

from container_app.core.errors import XnatError
from container_app.mitigation.xnat.errors import (
    XnatConflictError,
    XnatJustificationError,
    XnatNotFoundError,
    XnatPermissionError,
    XnatRequestError,
    XnatServerError,
    XnatUnavailableError,
)
from container_app.mitigation.xnat.justification import JUSTIFICATION_WORDS, Justification
from container_app.mitigation.xnat.redact import Redactor

log = structlog.get_logger("xnat_resource_survey.xnat")

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
ENV_RETRIES = "XNAT_RESOURCE_SURVEY_HTTP_ATTEMPTS"
ENV_BACKOFF = "XNAT_RESOURCE_SURVEY_HTTP_BACKOFF"
OWNER_HINT = ("the XNAT user running this needs owner rights on the project to survey and mitigate "
              "(XNAT's survey and mitigation API and file changes require them)")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0

    def delays(self) -> Iterator[float]:
        """The pause before each retry: exponential, capped."""
        delay = self.backoff_s
        for _ in range(max(self.attempts - 1, 0)):
            yield min(delay, self.max_backoff_s)
            delay *= 2

    @classmethod
    def from_environment(cls) -> RetryPolicy:
        """Defaults, unless the (test-oriented) environment variables say otherwise."""
        policy = cls()
        try:
            attempts = int(os.environ.get(ENV_RETRIES, policy.attempts))
            backoff = float(os.environ.get(ENV_BACKOFF, policy.backoff_s))
        except ValueError:
            return policy
        return cls(attempts=max(attempts, 1), backoff_s=max(backoff, 0.0), max_backoff_s=policy.max_backoff_s)


def public_url(url: str) -> str:
    """A URL without any user:password@ part."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def display_path(path: str) -> str:
    """A request path for messages and logs: file names (which may carry patient names) left out."""
    path = path.split("?", 1)[0]
    return re.sub(r"(/files)/[^?]+", r"\1/<file>", path)


def quote_segment(value: str) -> str:
    """One path segment, percent-encoded (file names may hold anything)."""
    return quote(value, safe="")


def quote_path(name: str) -> str:
    """A name inside a resource (`secondary/x.dcm`) as URL path segments: each percent-encoded, joined by '/'.

    Not one segment with %2F: Tomcat refuses encoded slashes in paths unless told otherwise, and XNAT's
    FileList takes the rest of the path after `files/` as the file's path in the resource.
    """
    return "/".join(quote_segment(part) for part in name.split("/"))


def is_alias_token(user: str | None) -> bool:
    return bool(user) and re.fullmatch(r"[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}", user or "") is not None


def _quiet_logger() -> logging.Logger:
    """xnatpy logs through its own logger; keep it quiet (it would print user names and URLs to stderr)."""
    logger = logging.getLogger("xnat_resource_survey.xnatpy")
    logger.propagate = False
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.CRITICAL)
    return logger


class XnatClient:
    """One authenticated connection to XNAT. Use as a context manager, or call `close()`."""

    def __init__(self, session: Any, host: str, *, redact: Redactor, retry: RetryPolicy,
                 timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                 relogin: Callable[[], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._session = session
        self.host = host
        self._redact = redact
        self.retry = retry
        self.timeout = timeout
        self._relogin = relogin
        self._sleep = sleep
        self._version: str | None = None
        self.justification: Justification | None = None
        session.skip_response_check = True  # statuses are judged here, with messages of our own

    def __repr__(self) -> str:
        return f"XnatClient({self.host!r})"

    def justify(self, justification: Justification) -> None:
        """Send `justification` on every later call that changes something (any method but GET)."""
        self.justification = justification

    # --- connecting --------------------------------------------------------------------------------

    @classmethod
    def connect(cls, host: str | None = None, user: str | None = None, password: str | None = None, *,
                retry: RetryPolicy | None = None,
                timeout: tuple[float, float] = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) -> XnatClient:
        """Log in to XNAT: arguments, else XNAT_HOST / XNAT_USER / XNAT_PASS (as the Container Service sets them)."""
        import xnat
        from xnat import exceptions as xnat_exceptions

        host = host or os.environ.get("XNAT_HOST") or None
        user = user or os.environ.get("XNAT_USER") or None
        password = password or os.environ.get("XNAT_PASS") or None
        redact = Redactor([password, user if is_alias_token(user) else None])
        if not host:
            raise XnatError("no XNAT to talk to: set XNAT_HOST (the Container Service sets it, with XNAT_USER "
                            "and XNAT_PASS) or run with --executor filesystem on a writable archive")
        if not host.startswith(("http://", "https://")):
            raise XnatError(f"XNAT_HOST must start with http:// or https:// (got {redact(public_url(host))!r})")
        if "@" in urlsplit(host).netloc:
            userinfo = urlsplit(host).netloc.rsplit("@", 1)[0]
            redact.add(userinfo.partition(":")[2] or None)
        shown = public_url(host)
        if user is None or password is None:
            raise XnatError(f"XNAT_USER and XNAT_PASS must both be set to log in to {shown} (an alias token's "
                            "alias and secret, as the Container Service gives a container)")
        retry = retry or RetryPolicy.from_environment()
        session: Any = None
        last: Exception | None = None
        for attempt, delay in enumerate([*retry.delays(), None]):
            try:
                session = xnat.connect(host, user=user, password=password, no_parse_model=True, cli=True,
                                       logger=_quiet_logger(), default_timeout=timeout, pilot_timeout=timeout)
                break
            except (xnat_exceptions.XNATLoginFailedError, xnat_exceptions.XNATExpiredCredentialsError):
                raise XnatPermissionError(
                    f"XNAT at {shown} refused the credentials (401): XNAT_USER/XNAT_PASS are wrong or the token "
                    "has expired (XNAT invalidates a container's token when the container ends). This is about "
                    f"permissions: {OWNER_HINT}", status=401, method="LOGIN") from None
            except xnat_exceptions.XNATAuthError as exc:
                raise XnatPermissionError(
                    f"cannot log in to XNAT at {shown}: {redact(str(exc))} This is about permissions: {OWNER_HINT}",
                    status=401, method="LOGIN") from None
            except (requests.ConnectionError, requests.Timeout, xnat_exceptions.XNATConnectionError,
                    xnat_exceptions.XNATSSLError) as exc:
                last = exc
            except xnat_exceptions.XNATResponseError as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                if status in (401, 403):
                    raise XnatPermissionError(
                        f"XNAT at {shown} refused the login ({status}). This is about permissions: {OWNER_HINT}",
                        status=status, method="LOGIN") from None
                if status not in RETRYABLE_STATUS:
                    raise XnatServerError(f"XNAT at {shown} answered {status} while logging in; is XNAT_HOST "
                                          "XNAT's address?", status=status, method="LOGIN") from None
                last = exc
            except requests.RequestException as exc:
                last = exc
            if delay is None:
                break
            log.warning("XNAT not reachable yet, retrying", host=shown, attempt=attempt + 1,
                        error=type(last).__name__)
            time.sleep(delay)
        if session is None:
            reason = _transport_reason(last) if last is not None else "no answer"
            raise XnatUnavailableError(f"cannot reach XNAT at {shown}: {redact(reason)}. Is XNAT_HOST right and the "
                                       "server up? Nothing was changed", method="LOGIN")
        session.keepalive = False  # no background requests: every call is ours, bounded and retried

        def relogin() -> None:
            session.interface.cookies.clear()
            session.interface.auth = (user, password)  # basic auth on every request from now on

        client = cls(session, shown, redact=redact, retry=retry, timeout=timeout, relogin=relogin)
        log.info("connected to XNAT", host=shown, user=None if is_alias_token(user) else session.logged_in_user)
        return client

    def close(self) -> None:
        """Log out (best effort) and drop the connection; never raises."""
        session, self._session = self._session, None
        if session is None:
            return
        # Logging out is a courtesy (the token expires with the container): never let it fail the run.
        with contextlib.suppress(Exception):
            session.interface.delete(session._format_uri("/data/JSESSION"), timeout=(2.0, 5.0))
        with contextlib.suppress(Exception):
            session.disconnect()

    def __enter__(self) -> XnatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None, data: bytes | None = None,
                json_body: Any = None, accept: Collection[int] = (200, 201), accept_on_retry: Collection[int] = (),
                retry: bool | None = None, what: str | None = None) -> requests.Response:
        """One call, retried on no answer or a transient status when `retry` (default: GET only).

        `accept_on_retry` lists statuses that mean success only after an earlier attempt may have
        reached XNAT (a DELETE answered 404, an upload answered 409): the caller checks which.
        """
        if self._session is None:
            raise XnatUnavailableError("the XNAT connection is closed", method=method, path=display_path(path))
        retry = (method == "GET") if retry is None else retry
        if method != "GET" and self.justification is not None:
            query = {**self.justification.query(), **(query or {})}
        shown = display_path(path)
        what = what or f"{method} {shown}"
        delays = iter(self.retry.delays()) if retry else iter(())
        reauthenticated = False
        attempt = 0
        while True:
            attempt += 1
            error: XnatRequestError
            try:
                response = self._send(method, path, query, data, json_body)
            except requests.RequestException as exc:
                error = XnatUnavailableError(
                    f"XNAT at {self.host} did not answer {what}: {self._redact(_transport_reason(exc))}",
                    method=method, path=shown)
            else:
                status = response.status_code
                if status in accept or (attempt > 1 and status in accept_on_retry):
                    return response
                if status == 401 and not reauthenticated and self._relogin is not None:
                    reauthenticated = True  # the JSESSION may have expired: log in again, once
                    self._relogin()
                    continue
                error = self._status_error(method, shown, what, response)
                if status not in RETRYABLE_STATUS or isinstance(error, XnatJustificationError):
                    raise error
            delay = next(delays, None)
            if delay is None:
                raise error
            log.warning("XNAT request failed, retrying", request=what, status=error.status, attempt=attempt,
                        retry_in_s=delay)
            self._sleep(delay)

    def _send(self, method: str, path: str, query: Mapping[str, str] | None, data: bytes | None,
              json_body: Any) -> requests.Response:
        session = self._session
        query_dict = dict(query) if query else None
        timeout = self.timeout
        response: requests.Response
        if method == "GET":
            response = session.get(path, query=query_dict, timeout=timeout)
        elif method == "PUT":
            response = session.put(path, data=data, json=json_body, query=query_dict, timeout=timeout)
        elif method == "POST":
            response = session.post(path, data=data, json=json_body, query=query_dict, timeout=timeout)
        elif method == "DELETE":
            response = session.delete(path, query=query_dict, timeout=timeout)
        else:
            raise ValueError(method)
        return response

    def _status_error(self, method: str, shown: str, what: str, response: requests.Response) -> XnatRequestError:
        status = response.status_code
        detail = self._detail(response)
        where = f"{what} ({method} {shown})" if what != f"{method} {shown}" else what
        said = f"{getattr(response, 'reason', '') or ''} {detail}"
        if method != "GET" and status in (400, 403, 500) and JUSTIFICATION_WORDS.search(said):
            # FileList and CatalogResource answer 500 (their catch of Exception), other handlers 403 or 400:
            # in every case it is the site's or project's rule, not a failure of XNAT nor a missing right.
            sent = "although this run sent one" if self.justification is not None else "and none was sent"
            return XnatJustificationError(
                f"XNAT refused {where} because this site or project requires a justification (a reason and an "
                f"action name) for every change, {sent} ({status}{detail}). Nothing was changed by this call; "
                "an XNAT administrator can check the site's 'Require change justification' setting",
                status=status, method=method, path=shown)
        if status == 401:
            return XnatPermissionError(
                f"XNAT at {self.host} refused the credentials (401) for {where}: the token is wrong or has expired. "
                f"This is about permissions: {OWNER_HINT}", status=status, method=method, path=shown)
        if status == 403:
            return XnatPermissionError(
                f"XNAT at {self.host} refused permission (403) for {where}: {OWNER_HINT}", status=status,
                method=method, path=shown)
        if status == 404:
            return XnatNotFoundError(f"XNAT has no such object (404) for {where}{detail}", status=status,
                                     method=method, path=shown)
        if status == 409:
            return XnatConflictError(f"XNAT refused {where} in its current state (409){detail}", status=status,
                                     method=method, path=shown)
        if status >= 500:
            return XnatServerError(f"XNAT failed on {where} ({status}){detail}", status=status, method=method,
                                   path=shown)
        return XnatServerError(f"XNAT answered {status} to {where}{detail}", status=status, method=method, path=shown)

    def _detail(self, response: requests.Response) -> str:
        """A short, secret-free excerpt of an error answer (plain text only: XNAT's HTML pages say nothing)."""
        try:
            text = response.text
        except Exception:
            return ""
        text = text.strip()
        if not text or text.startswith("<"):
            return ""
        text = " ".join(text.split())[:200]
        return f": {self._redact(text)}"

    # --- conveniences --------------------------------------------------------------------------------

    def get_json(self, path: str, query: Mapping[str, str] | None = None, *, what: str | None = None) -> Any:
        response = self.request("GET", path, query={"format": "json", **(query or {})}, accept=(200,), what=what)
        try:
            return response.json()
        except ValueError:
            raise XnatServerError(f"XNAT answered {what or display_path(path)} with something that is not JSON",
                                  status=response.status_code, method="GET", path=display_path(path)) from None

    def get_xapi_json(self, path: str, *, what: str | None = None) -> Any:
        response = self.request("GET", path, accept=(200,), what=what)
        try:
            return response.json()
        except ValueError:
            raise XnatServerError(f"XNAT answered {what or display_path(path)} with something that is not JSON",
                                  status=response.status_code, method="GET", path=display_path(path)) from None

    def get_bytes(self, path: str, *, what: str | None = None) -> bytes:
        return self.request("GET", path, accept=(200,), what=what).content

    def version(self) -> str | None:
        """XNAT's version string, or None when it will not say (it is only reported, never relied on)."""
        if self._version is None:
            for path in ("/xapi/siteConfig/buildInfo", "/data/version"):
                try:
                    response = self.request("GET", path, accept=(200,), what="XNAT's version")
                except XnatError:
                    continue
                text = response.text.strip()
                try:
                    info = response.json()
                except ValueError:
                    info = text
                value = str(info.get("version") or "") if isinstance(info, dict) else str(info).strip().strip('"')
                if re.fullmatch(r"[0-9][0-9A-Za-z.\-]*", value):
                    self._version = value
                    break
        return self._version


def version_tuple(version: str | None) -> tuple[int, ...]:
    if not version:
        return ()
    return tuple(int(p) for p in re.findall(r"\d+", version.split("-")[0])[:3])


def _transport_reason(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    if "Connection refused" in text or "ECONNREFUSED" in text:
        return "connection refused"
    if "RemoteDisconnected" in text or "Connection aborted" in text or "reset by peer" in text:
        return "the connection was dropped"
    if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
        return "unknown host name"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS/SSL failure"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut off"
    return type(exc).__name__
