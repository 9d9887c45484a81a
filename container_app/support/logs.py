"""structlog, configured once at start-up: readable on a terminal, JSON lines anywhere else."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog

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


def configure(requested: LogFormat = "auto", *, verbose: bool = False) -> Literal["console", "json"]:
    """Configure structlog for the process. JSON lines go to stdout (a container's log); console to stderr."""
    global _configured
    fmt = resolve_format(requested, sys.stderr)
    _configured = fmt
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        stream = sys.stdout
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
    return fmt
