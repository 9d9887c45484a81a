"""structlog, configured once at start-up: readable on a terminal, JSON lines anywhere else."""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO

import structlog

LogFormat = Literal["auto", "console", "json"]


def resolve_format(requested: LogFormat, stream: TextIO) -> Literal["console", "json"]:
    if requested != "auto":
        return requested
    return "console" if stream.isatty() else "json"


def configure(requested: LogFormat = "auto", *, verbose: bool = False) -> Literal["console", "json"]:
    """Configure structlog for the process. JSON lines go to stdout (a container's log); console to stderr."""
    fmt = resolve_format(requested, sys.stderr)
    renderer: structlog.types.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
        stream = sys.stdout
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
        stream = sys.stderr
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
