"""Running the CLI as a person at a terminal sees it: stdout and stderr on a pseudo-terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TerminalRun:
    returncode: int
    output: str  # stdout and stderr as the terminal showed them, control sequences included


def run_on_terminal(*args: str | Path, columns: int = 120, timeout: float = 300,
                    env: dict[str, str] | None = None) -> TerminalRun:
    """`xnat-resource-survey ARGS` with a pseudo-terminal as stdout and stderr (stdin stays a pipe)."""
    controller, terminal = os.openpty()
    environment = {**os.environ, "COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color", **(env or {})}
    environment.pop("CI", None)  # some libraries treat CI as "not a terminal"
    try:
        process = subprocess.Popen([sys.executable, "-m", "container_app", *map(str, args)], stdin=subprocess.DEVNULL,
                                   stdout=terminal, stderr=terminal, env=environment, close_fds=True)
    finally:
        os.close(terminal)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        returncode = process.wait(timeout=timeout)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return TerminalRun(returncode, b"".join(chunks).decode("utf-8", "replace"))
