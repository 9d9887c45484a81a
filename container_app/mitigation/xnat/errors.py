"""What can go wrong talking to XNAT: one exception tree under `core.errors.XnatError`, and how a run treats it.

A permission problem (401, 403), or a change refused for want of a justification, stops the run: every
later request would be refused too, and the user must fix the rights, the token or the site's setting.
Any other request error is a problem of the one resource or file at hand: it is reported there and the
run goes on (`item_failure`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from container_app.core.errors import XnatError


class XnatRequestError(XnatError):
    """A request XNAT answered with an error, or did not answer."""

    def __init__(self, message: str, *, status: int | None = None, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path


class XnatPermissionError(XnatRequestError):
    """401 or 403: the credentials are wrong or expired, or the user lacks rights."""


class XnatNotFoundError(XnatRequestError):
    """404."""


class XnatConflictError(XnatRequestError):
    """409: XNAT's state does not allow the request (already exists, not in the right status)."""


class XnatJustificationError(XnatRequestError):
    """XNAT refused a change for want of a justification (`event_reason`, `event_action`): a site or project rule.

    XNAT answers it as 500 (FileList, CatalogResource), 403 or 400 (other handlers); never retried.
    """


class XnatServerError(XnatRequestError):
    """5xx (or another unexpected status)."""


class XnatUnavailableError(XnatRequestError):
    """No answer: connection refused, timed out, or dropped."""


@dataclass(slots=True)
class ItemFailure:
    """Filled in by `item_failure` when the block failed; `error` stays None when it succeeded."""

    error: Exception | None = None


@contextmanager
def item_failure(*also: type[Exception]) -> Iterator[ItemFailure]:
    """Catch a request error (and the `also` kinds) of the block, except a permission error or a refusal for want
    of a justification, which stop the run (XNAT refuses every later change the same way).

    Use as `with item_failure(FileProblem) as failure: ...`, then look at `failure.error`.
    """
    failure = ItemFailure()
    caught: tuple[type[Exception], ...] = (XnatRequestError, *also)
    try:
        yield failure
    except (XnatPermissionError, XnatJustificationError):
        raise
    except caught as exc:
        failure.error = exc
