"""The mitigation journal and locks: what lets a rerun after a crash finish the job.

The journal is an append-only file of JSON lines in the run's state folder inside BACKUP. Each
step is written before it happens ("start") and after ("done" or "failed"); `commit` makes the
lines durable. Recovery never trusts the journal alone: every step also checks the files
themselves before it acts, so a line lost in a crash costs a re-check, never a byte.

Lines are written and read only here, and only by the members of `JournalStep` and `JournalPhase`:
a misspelt step would silently make a rerun redo or skip it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import IO, Any

from container_app.core.errors import LockedError, MitigationError
from container_app.core.vocabulary import JournalPhase, JournalStep
from container_app.support import faults
from container_app.support.time import now_utc

STATE_FOLDER = ".xnat-resource-survey"
#: One encoder for every line: `json.dumps` with a non-default option builds a new one per call.
_ENCODER = json.JSONEncoder(ensure_ascii=False)
JOURNAL_NAME = "journal.jsonl"


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One journal line as read back: its step and phase typed, every field as it was written."""

    step: JournalStep
    phase: JournalPhase
    fields: Mapping[str, Any]

    @property
    def resource(self) -> str | None:
        value = self.fields.get("resource")
        return value if isinstance(value, str) else None

    @property
    def path(self) -> str | None:
        """The file the step was about (backup, move, delete), or None for a step of the whole resource."""
        value = self.fields.get("path")
        return value if isinstance(value, str) else None

    def get(self, name: str) -> Any:
        return self.fields.get(name)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> JournalRecord | None:
        """The record of a line; None for a line with a step or phase this version does not know (a lookup
        by the known members could never have matched it, so it is ignored as it always was)."""
        try:
            return cls(JournalStep(fields["step"]), JournalPhase(fields["phase"]), fields)
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class Journal:
    path: str
    _handle: IO[str] | None = None  # support.faults flushes it before a simulated crash
    # Records by their "resource" field: each resource's steps are looked up without scanning the
    # whole journal, which grows with the run (a scan per resource would make a long run quadratic).
    # Those of a resource this process has finished are forgotten (`forget`): the file keeps them,
    # memory does not (three lines per file would otherwise hold ~1.5 KB per file of the run).
    _by_resource: dict[str | None, list[JournalRecord]] = field(default_factory=dict)

    def _remember(self, fields: Mapping[str, Any]) -> None:
        record = JournalRecord.from_fields(fields)
        if record is None:
            return
        self._by_resource.setdefault(record.resource, []).append(record)

    @property
    def records(self) -> list[JournalRecord]:
        """The records held (those of resources not forgotten), each resource's in journal order."""
        return [record for records in self._by_resource.values() for record in records]

    def forget(self, resource: str) -> None:
        """Drop a finished resource's records from memory; its lines stay in the journal. Only for a resource
        this process will not look at again in this run (a rerun reads the file back)."""
        self._by_resource.pop(resource, None)

    @classmethod
    def open(cls, path: str) -> Journal:
        """The journal at `path`, its earlier lines read back, open for appending (created if need be)."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        journal = cls(path)
        if os.path.exists(path):
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                complete = _end_of_last_line(handle, size)
            if complete < size:
                # A crash in the middle of a line: the line was never committed, so the step it began is
                # re-checked against the files like any other. It is cut off here rather than kept, so that a
                # later crash cannot leave it in the middle of the journal (which reads as damage), and a
                # multi-byte character cut in two cannot make the journal unreadable.
                with open(path, "r+b") as handle:
                    handle.truncate(complete)
                    os.fsync(handle.fileno())
            # Line by line: a rerun of a big run reads a journal of tens of MB, which read whole and split
            # was held twice over beside the records (issue 17).
            with open(path, "rb") as handle:
                for number, line in enumerate(handle, 1):
                    try:
                        fields = json.loads(line.decode("utf-8"))
                    except (UnicodeDecodeError, json.JSONDecodeError):
                        raise MitigationError(f"journal {path} is damaged at line {number}") from None
                    if isinstance(fields, dict):
                        journal._remember(fields)
        # File names that are not UTF-8 are lone surrogates here (surrogateescape); backslashreplace writes
        # them as `\udcXX`, the JSON escape that reads back as the same name (as the reports do).
        journal._handle = open(path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 (closed by close())
        return journal

    def append(self, step: JournalStep, phase: JournalPhase, **details: Any) -> None:
        """Write one line (durable only at the next `commit`)."""
        fields = {"at": now_utc().isoformat(timespec="milliseconds"), "step": str(step), "phase": str(phase),
                  **details}
        self._remember(fields)
        assert self._handle is not None, "the journal is closed"
        try:
            self._handle.write(_ENCODER.encode(fields) + "\n")
        except OSError as exc:
            raise self._failure(exc) from exc
        faults.journal_written(self)

    def commit(self) -> None:
        """Make every line written so far durable: what a step may rely on before the next one starts."""
        assert self._handle is not None, "the journal is closed"
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: OSError) -> MitigationError:
        # Said as it is: files may already have moved in this run (their backups verified and journaled),
        # so "before any change" would be untrue; what holds is that nothing more changes now.
        return MitigationError(f"cannot write the journal {self.path}: {exc.strerror or exc}. Stopped: no further "
                               "change is made, and every file changed so far has a verified backup in BACKUP. "
                               "Rerun the same command once the problem is fixed: it finishes this run")

    def close(self) -> None:
        if self._handle is not None:
            try:
                self.commit()
            finally:
                with suppress(OSError):  # already reported by commit
                    self._handle.close()
                self._handle = None

    def for_resource(self, resource: str) -> Sequence[JournalRecord]:
        """Every record of one resource, in journal order."""
        return self._by_resource.get(resource, [])

    def done(self, step: JournalStep, **match: Any) -> list[JournalRecord]:
        """Records of `step` finished ("done"), optionally only those whose fields equal `match`."""
        records = self.for_resource(match["resource"]) if "resource" in match else self.records
        return [r for r in records
                if r.step is step and r.phase is JournalPhase.DONE and all(r.get(k) == v for k, v in match.items())]

    def done_paths(self, step: JournalStep, resource: str) -> set[str | None]:
        """The files of one resource for which `step` is journaled as done."""
        return {r.path for r in self.for_resource(resource) if r.step is step and r.phase is JournalPhase.DONE}

    def done_values(self, step: JournalStep, resource: str, name: str) -> dict[str, Any]:
        """Field `name` of each file of one resource for which `step` is journaled as done, by the file's path."""
        return {r.path: r.get(name) for r in self.for_resource(resource)
                if r.step is step and r.phase is JournalPhase.DONE and r.path is not None}

    def field_values(self, step: JournalStep, resource: str, name: str) -> set[Any]:
        """Every value field `name` took in the records of `step` for one resource, whatever their phase."""
        return {r.get(name) for r in self.for_resource(resource) if r.step is step}


def _end_of_last_line(handle: IO[bytes], size: int) -> int:
    """The offset just after the journal's last newline (0 if it has none): where its complete lines end."""
    end, step = size, 1 << 16
    while end > 0:
        start = max(0, end - step)
        handle.seek(start)
        block = handle.read(end - start)
        at = block.rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


@contextmanager
def exclusive_lock(path: str, what: str) -> Iterator[None]:
    """Hold an advisory lock on `path` (a folder or a file) for the block, or raise LockedError at once."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise MitigationError(f"cannot open {path} to lock it: {exc.strerror}") from exc
    try:
        lock_descriptor(fd, what, path)
        yield
    finally:
        os.close(fd)


def lock_descriptor(fd: int, what: str, shown: str) -> None:
    """An advisory lock on an open folder or file, held until the descriptor is closed; LockedError at once
    when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise LockedError(f"{what} is being mitigated by another process") from None
        raise MitigationError(f"cannot lock {shown}: {exc.strerror}") from exc
