"""Fault injection for the crash and fault tests, off unless XNAT_RESOURCE_SURVEY_FAULTS is set.

`XNAT_RESOURCE_SURVEY_FAULTS="crash_after_journal=12,enospc_on_backup=3"`:
- `crash_after_journal=N`: the process kills itself with SIGKILL right after the Nth journal line
  is written (as a power cut or `kill -9` would), so tests can stop a mitigation at every step.
- `enospc_on_backup=N`: the Nth backup copy fails with "No space left on device".
- `eio_on_unlink=N`: the Nth removal of an original fails with an I/O error.
- `eacces_on_backup=N`: reading the Nth original to back it up fails with "Permission denied" (a test
  run as root cannot make a file unreadable for real).
"""

from __future__ import annotations

import errno
import os
import signal
from functools import cache
from typing import Any

ENVIRONMENT = "XNAT_RESOURCE_SURVEY_FAULTS"
_counters: dict[str, int] = {}


@cache
def _settings() -> dict[str, int]:
    text = os.environ.get(ENVIRONMENT, "")
    settings: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        settings[name] = int(value or "1")
    return settings


def _hit(name: str) -> bool:
    limit = _settings().get(name)
    if limit is None:
        return False
    _counters[name] = _counters.get(name, 0) + 1
    return _counters[name] == limit


def journal_written(journal: Any) -> None:
    if _hit("crash_after_journal"):
        journal._handle.flush()  # what reached the OS survives a SIGKILL, as it would a crash
        os.kill(os.getpid(), signal.SIGKILL)


def before_backup_write() -> None:
    if _hit("eacces_on_backup"):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    if _hit("enospc_on_backup"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def before_unlink() -> None:
    if _hit("eio_on_unlink"):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
