"""Logging, configured once at start-up: readable on a terminal, JSON lines anywhere else.

The package logs through `get_logger`, whose loggers hand each event to structlog, configured by `configure`.
One exception, for start-up time (issue 17): a survey logging JSON lines (`configure(..., lightweight=True)`)
writes them itself, byte for byte as structlog's processors below would, and never imports structlog, whose
import (with rich, which it loads for tracebacks) took about 0.1 s of a 0.3 s survey of an empty folder. An
event that needs structlog's machinery (an exception to format, %-style arguments) still goes through it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    import structlog.types

LogFormat = Literal["auto", "console", "json"]

_configured: Literal["console", "json"] | None = None


class _CurrentStderr:
    """sys.stderr as it is at each write, not as it was at start-up: while a progress bar is live rich
    replaces it with a proxy that prints log lines above the bar instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def current_format() -> Literal["console", "json"] | None:
    """The form `configure` chose, or None before it ran (a library caller: no bar, progress as log lines)."""
    return _configured


def resolve_format(requested: LogFormat, stream: TextIO) -> Literal["console", "json"]:
    if requested != "auto":
        return requested
    return "console" if stream.isatty() else "json"


# --- JSON lines without structlog --------------------------------------------------------------------------

#: The method names a logger has, by level: logging's numbers, as structlog's filtering bound logger uses them
#: (written out, as logging's import is more than the rest of this module's).
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def _json_fallback(value: Any) -> Any:
    """structlog's JSONRenderer fallback for what json cannot encode: `__structlog__()`, else repr()."""
    try:
        return value.__structlog__()
    except AttributeError:
        return repr(value)


class _JsonLines:
    """structlog's chain as `configure` builds it for JSON, for an event without positional arguments or
    exc_info: the keywords in order, then event, level (the method's name) and an ISO UTC timestamp."""

    def __init__(self, min_level: int) -> None:
        self.min_level = min_level
        self._lock = threading.Lock()

    def write(self, method: str, event: str, fields: dict[str, Any]) -> None:
        if _LEVELS[method] < self.min_level:
            return
        fields.pop("exc_info", None)  # only a false one reaches here; format_exc_info drops it
        fields["event"] = event
        fields["level"] = method
        fields["timestamp"] = dt.datetime.now(tz=dt.UTC).isoformat().replace("+00:00", "Z")
        line = json.dumps(fields, sort_keys=False, default=_json_fallback)
        with self._lock:
            print(line, flush=True)  # to sys.stdout as it is now, as structlog's PrintLogger does


_lines: _JsonLines | None = None  # set by `configure` for a lightweight JSON run
_settings: tuple[Literal["console", "json"], bool] | None = None  # (form, verbose) that structlog is given


class Logger:
    """A named logger; structlog's bound logger is looked up only when an event needs it."""

    __slots__ = ("_bound", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._bound: Any = None

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("debug", event, args, fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("info", event, args, fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("warning", event, args, fields)

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        self._log("error", event, args, fields)

    def _log(self, method: str, event: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        if _lines is not None and not args and not fields.get("exc_info"):
            _lines.write(method, event, fields)
            return
        if self._bound is None:
            self._bound = _structlog().get_logger(self.name)
        getattr(self._bound, method)(event, *args, **fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def _structlog() -> Any:
    """structlog, configured as `configure` asked if it was not imported then (a lightweight run)."""
    global _settings
    import structlog

    if _lines is not None and _settings is not None:
        fmt, verbose = _settings
        _settings = None
        _configure_structlog(fmt, verbose)
    return structlog


def configure(requested: LogFormat = "auto", *, verbose: bool = False,
              lightweight: bool = False) -> Literal["console", "json"]:
    """Configure logging for the process. JSON lines go to stdout (a container's log); console to stderr.

    `lightweight`: JSON lines are written without structlog (see the module's docstring), for a command
    whose library logs only through `get_logger`. Not when structlog is loaded already: a caller (a test
    capturing logs) may have configured it, and then every event goes through it, as before.
    """
    global _configured, _lines, _settings
    fmt = resolve_format(requested, sys.stderr)
    _configured = fmt
    if fmt == "json" and lightweight and "structlog" not in sys.modules:
        _lines = _JsonLines(_LEVELS["debug" if verbose else "info"])
        _settings = (fmt, verbose)
        return fmt
    _lines = None
    _settings = None
    _configure_structlog(fmt, verbose)
    return fmt


def _configure_structlog(fmt: Literal["console", "json"], verbose: bool) -> None:
    import logging

    import structlog

    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        stream: Any = sys.stdout
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        stream = _CurrentStderr()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG if verbose else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
