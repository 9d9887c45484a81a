"""The mitigation journal and locks: what lets a rerun after a crash finish the job.

The journal is an append-only file of JSON lines in the run's state folder inside BACKUP. Each
step is written before it happens ("start") and after ("done" or "failed"); `commit` makes the
lines durable. Recovery never trusts the journal alone: every step also checks the files
themselves before it acts, so a line lost in a crash costs a re-check, never a byte.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from container_app.core.errors import LockedError, MitigationError
from container_app.support import faults

STATE_FOLDER = ".xnat-resource-survey"


@dataclass
class Journal:
    path: str
    records: list[dict[str, Any]] = field(default_factory=list)
    _handle: Any = None
    # Records by their "resource" field: each resource's steps are looked up without scanning the
    # whole journal, which grows with the run (a scan per resource would make a long run quadratic).
    _by_resource: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)

    def _remember(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self._by_resource.setdefault(record.get("resource"), []).append(record)

    @classmethod
    def open(cls, path: str) -> Journal:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        journal = cls(path)
        text = ""
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            lines = text.splitlines()
            for number, line in enumerate(lines, 1):
                try:
                    journal._remember(json.loads(line))
                except json.JSONDecodeError:
                    # Only the last line can be torn by a crash; anything else is damage.
                    if number != len(lines):
                        raise MitigationError(f"journal {path} is damaged at line {number}") from None
        journal._handle = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        if os.path.exists(path) and os.path.getsize(path) and not text.endswith("\n"):
            journal._handle.write("\n")  # start after a line torn by a crash
        return journal

    def append(self, step: str, phase: str, **details: Any) -> None:
        record = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "step": step, "phase": phase,
                  **details}
        self._remember(record)
        try:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        except OSError as exc:
            raise self._failure(exc) from exc
        faults.journal_written(self)

    def commit(self) -> None:
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: OSError) -> MitigationError:
        return MitigationError(f"cannot write the journal {self.path}: {exc.strerror or exc}. Stopped before any "
                               "further change; every original is in place or verified in BACKUP. Rerun the same "
                               "command once the problem is fixed")

    def close(self) -> None:
        if self._handle is not None:
            try:
                self.commit()
            finally:
                with suppress(OSError):  # already reported by commit
                    self._handle.close()
                self._handle = None

    def for_resource(self, resource: str) -> list[dict[str, Any]]:
        """Every record of one resource, in journal order."""
        return self._by_resource.get(resource, [])

    def done(self, step: str, **match: Any) -> list[dict[str, Any]]:
        """Records of `step` finished ("done"), optionally only those whose fields equal `match`."""
        records = self.for_resource(match["resource"]) if "resource" in match else self.records
        return [r for r in records
                if r["step"] == step and r["phase"] == "done" and all(r.get(k) == v for k, v in match.items())]


@contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[None]:
    """Hold an advisory lock on `path` (a folder or a file) for the block, or raise LockedError at once."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise MitigationError(f"cannot open {path} to lock it: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise LockedError(f"{what} is being mitigated by another process") from None
            raise MitigationError(f"cannot lock {path}: {exc.strerror}") from exc
        yield
    finally:
        os.close(fd)
