"""structlog, configured once at start-up: readable on a terminal, JSON lines anywhere else.

The package logs through `get_logger`, whose loggers hand every event to structlog, imported at the first
event (see `Logger`)."""

from __future__ import annotations

import sys
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


class Logger:
    """A named logger whose structlog bound logger is made at its first event: a module can name its logger
    at import without importing structlog then (with rich, which it loads for tracebacks, ~0.1 s), so a
    command line that is refused, or `--help`, never pays for it. Every event goes through structlog."""

    __slots__ = ("_bound", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._bound: Any = None

    def _logger(self) -> Any:
        if self._bound is None:
            import structlog

            self._bound = structlog.get_logger(self.name)
        return self._bound

    def debug(self, event: str, *args: Any, **fields: Any) -> None:
        self._logger().debug(event, *args, **fields)

    def info(self, event: str, *args: Any, **fields: Any) -> None:
        self._logger().info(event, *args, **fields)

    def warning(self, event: str, *args: Any, **fields: Any) -> None:
        self._logger().warning(event, *args, **fields)

    def error(self, event: str, *args: Any, **fields: Any) -> None:
        self._logger().error(event, *args, **fields)


def get_logger(name: str) -> Logger:
    return Logger(name)


def configure(requested: LogFormat = "auto", *, verbose: bool = False) -> Literal["console", "json"]:
    """Configure structlog for the process. JSON lines go to stdout (a container's log); console to stderr."""
    global _configured
    fmt = resolve_format(requested, sys.stderr)
    _configured = fmt
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
