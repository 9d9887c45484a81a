"""Undoing a mitigation made on files: every file back under its original name with its original bytes.

The restore's order of steps, stated once (the mitigation's is in `mitigation.protocol`):

1. Verify, for the whole report and before anything is touched (`restore.trust`): the report is the
   document the run kept in its state folder, for the ROOT `run.json` recorded; every path is a plain
   ROOT-relative path inside its resource, every backup inside its resource's backup folder for this
   run. One violation refuses the whole restore. The run's state folder is locked for the restore, so
   neither a mitigation nor another restore of the run can interleave.
2. Per resource, in the report's order, each on its own (a resource that fails is reported and the
   next one goes on), with its folder opened without following any link and locked:
   a. Check the catalog first: it must be the mitigation's (or the original, or gone) and, where it is
      to come back, its backup must match `originalSha256`; otherwise the resource is left exactly as
      it is, so its files and catalog still agree.
   b. Remove the temporaries earlier attempts of this restore made (their tokens are journaled): those
      and nothing else.
   c. Before the first change: `restore-resource start` and this attempt's temporary token journaled
      and committed, so a kill from here on leaves only temporaries a rerun can name.
   d. Files, in the reverse of the mitigation's order (a name it took is freed before the file it freed
      that name from comes back): each checked first (already back: left alone; another file in the way:
      refused, never overwritten); moved back from its new name (never replacing), or copied back from
      its backup, which must match the recorded sha256 before and after the copy. Each journaled
      `restore-file` start and done.
   e. The catalog: copied from its backup to a temporary beside it (verified), then put in place of the
      mitigation's catalog in one atomic rename, so XNAT never sees the resource without a catalog.
      Journaled `restore-catalog` start and done.
   f. One sync of ROOT's file system, then `restore-resource done` journaled and committed.

`restore.run.restore_files` makes step 1, `Restorer` step 2. Every step looks at the files before it
acts, so a rerun after a kill at any moment finishes the job, and a rerun of a finished restore finds
everything already restored. Every file is reached through `support.anchored`, below ROOT and BACKUP
held open: a folder swapped for a link is never followed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog

from container_app.core.errors import FileProblem, LockedError, MitigationError
from container_app.core.records import FileRestore
from container_app.core.vocabulary import ActionKind, JournalPhase, JournalStep, RestoreOutcome
from container_app.mitigation.journal import Journal, lock_descriptor
from container_app.mitigation.restore.trust import (
    CatalogToRestore,
    FileToRestore,
    ResourceToRestore,
)
from container_app.support.anchored import Anchor, copy_verified
from container_app.support.fsutil import temporary_name

log = structlog.get_logger("xnat_resource_survey.restore")

RESTORE_JOURNAL = "restore-journal.jsonl"


@dataclass(frozen=True, slots=True)
class ResourceRestore:
    """What became of one resource: each file's outcome, and why the resource was left alone, if it was."""

    path: str
    files: tuple[FileRestore, ...]
    error: str | None = None

    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"path": self.path, "files": [
            {"path": f.path, "outcome": f.outcome.value, **({"reason": f.reason} if f.reason else {})}
            for f in self.files]}
        if self.error is not None:
            document["error"] = self.error
        return document


class _Refused(Exception):
    """The whole resource is left as it is, for this reason."""


def _split(path: str) -> tuple[str, str]:
    folder, _, name = path.rpartition("/")
    return folder, name


def _beside(path: str, name: str) -> str:
    folder, _ = _split(path)
    return f"{folder}/{name}" if folder else name


class Restorer:
    """Restores resources one by one on ROOT from BACKUP, journaling as the module's docstring says."""

    def __init__(self, root: Anchor, backup: Anchor, journal: Journal) -> None:
        self.root, self.backup, self.journal = root, backup, journal
        self.token = secrets.token_hex(8)  # this attempt's temporaries carry it (journaled before any is made)
        self.changed = False  # whether this attempt changed anything at all
        self._begun: set[str] = set()

    # --- the journal ------------------------------------------------------------------------------

    def _begin(self, resource: ResourceToRestore) -> None:
        """Before a resource's first change: committed, so every temporary after it has a journaled name."""
        self.changed = True
        if resource.path in self._begun:
            return
        self._begun.add(resource.path)
        self.journal.append(JournalStep.RESTORE_RESOURCE, JournalPhase.START, resource=resource.path)
        self.journal.append(JournalStep.TEMPORARY, JournalPhase.START, resource=resource.path, token=self.token)
        self.journal.commit()

    def _finish(self, resource: ResourceToRestore, refused: bool) -> None:
        earlier = self.journal.done(JournalStep.RESTORE_RESOURCE, resource=resource.path)
        if resource.path not in self._begun and earlier and not refused:
            return  # finished by an earlier attempt, and nothing left to do
        self.root.sync()  # what this attempt (or a killed one) changed is durable before "done" says so
        phase = JournalPhase.FAILED if refused else JournalPhase.DONE
        self.journal.append(JournalStep.RESTORE_RESOURCE, phase, resource=resource.path)
        self.journal.commit()

    def _clear_temporaries(self, resource: ResourceToRestore) -> None:
        """The temporaries of earlier attempts of this restore, which a kill left behind: exactly those."""
        tokens: set[str] = set()
        for record in self.journal.for_resource(resource.path):
            if record.step is JournalStep.TEMPORARY and isinstance(record.get("token"), str):
                tokens.add(record.get("token"))
            elif record.step is JournalStep.RESTORE_RESOURCE and record.phase is not JournalPhase.START:
                tokens.clear()  # the attempt that ended the resource had cleared every earlier one's already
        tokens.discard(self.token)
        if not tokens:
            return
        names = [f.path for f in resource.files if f.changed]
        catalog = resource.catalog
        for token in sorted(tokens):
            for path in names:
                self.root.remove_temporary(_beside(path, temporary_name(_split(path)[1], token)))
            if catalog is not None:
                staged = temporary_name(_split(catalog.path)[1], token)
                self.root.remove_temporary(_beside(catalog.path, staged))
                self.root.remove_temporary(_beside(catalog.path, temporary_name(staged, token)))

    # --- looking ------------------------------------------------------------------------------------

    def _sha_or_none(self, path: str) -> str | None:
        """The archive file's sha256; None when it is not there (FileProblem: a link, FIFO or folder)."""
        if self.root.lstat(path) is None:
            return None
        return self.root.sha256(path)

    def _backup_problem(self, rel: str | None, shown: str | None, sha256: str | None, what: str) -> str | None:
        """Why the backup cannot be used, blaming the backup; None when it holds exactly the original's bytes."""
        if rel is None or sha256 is None:
            return f"the report records no backup of {what}: nothing to restore it from"
        try:
            st = self.backup.lstat(rel)
        except FileProblem as exc:
            return f"the backup of {what} cannot be reached ({exc})"
        if st is None:
            return f"the backup of {what} is missing ({shown}): nothing to restore it from"
        if not stat.S_ISREG(st.st_mode):
            return f"the backup of {what} ({shown}) is not a regular file; never read"
        try:
            matches = self.backup.sha256(rel) == sha256
        except (OSError, FileProblem) as exc:
            why = str(exc) if isinstance(exc, FileProblem) else exc.strerror or str(exc)
            return f"the backup of {what} ({shown}) cannot be read ({why}): nothing to restore it from"
        if not matches:
            return (f"the backup of {what} ({shown}) does not match the sha256 recorded for it: the backup is "
                    "damaged, not the archive; nothing was written")
        return None

    # --- one resource ------------------------------------------------------------------------------

    def resource(self, resource: ResourceToRestore) -> ResourceRestore:
        try:
            return self._resource(resource)
        finally:  # done with: its journal lines are on disk, not needed in memory (each resource comes once)
            self.journal.forget(resource.path)

    def _resource(self, resource: ResourceToRestore) -> ResourceRestore:
        if not resource.changed:  # never touched by the mitigation: not even looked at
            return _left_alone(resource, None)
        try:
            with self._locked(resource):
                return self._restore(resource)
        except _Refused as refusal:
            return _left_alone(resource, str(refusal))
        except LockedError as exc:
            return _left_alone(resource, f"{exc}; nothing of this resource was restored")
        except (FileProblem, OSError) as exc:
            why = str(exc) if isinstance(exc, FileProblem) else (exc.strerror or str(exc))
            return _left_alone(resource, f"the resource could not be restored: {why}")

    @contextlib.contextmanager
    def _locked(self, resource: ResourceToRestore) -> Iterator[None]:
        try:
            # Held (and locked) while the resource is restored: its files are reached from this descriptor.
            folder_fd = self.root.hold(resource.path)
        except FileNotFoundError:
            raise _Refused(f"the resource folder {resource.path} is gone: nothing of it was restored") from None
        except FileProblem as exc:
            raise _Refused(f"{exc}: nothing of this resource was restored") from None
        with contextlib.ExitStack() as held:
            held.callback(self.root.release, resource.path)
            try:
                lock_descriptor(folder_fd, f"resource {resource.path}", self.root.display(resource.path))
            except LockedError:
                raise
            except MitigationError as exc:  # a lock this file system cannot take: this resource only
                raise _Refused(f"{exc}: nothing of this resource was restored") from None
            for folder in sorted({f.backup.rpartition("/")[0] or "." for f in resource.files if f.backup}):
                # A backup folder that cannot be held is left to each file's own checks, which say why.
                with contextlib.suppress(OSError, FileProblem):
                    self.backup.hold(folder)
                    held.callback(self.backup.release, folder)
            yield

    def _restore(self, resource: ResourceToRestore) -> ResourceRestore:
        catalog_outcome = self._check_catalog(resource.catalog)  # before any file: a resource stays whole
        self._clear_temporaries(resource)
        results = []
        for file in resource.files:
            if not file.changed:
                results.append(FileRestore(file.path, RestoreOutcome.NOT_CHANGED))
                continue
            try:
                results.append(self._file(resource, file))
            except (FileProblem, OSError) as exc:
                why = str(exc) if isinstance(exc, FileProblem) else f"{file.path}: {exc.strerror or exc}"
                results.append(FileRestore(file.path, RestoreOutcome.REFUSED, why))
        if resource.catalog is not None:
            if catalog_outcome is None:
                try:
                    catalog_outcome = self._catalog(resource, resource.catalog)
                except (FileProblem, OSError) as exc:
                    why = str(exc) if isinstance(exc, FileProblem) else exc.strerror or str(exc)
                    catalog_outcome = FileRestore(resource.catalog.path, RestoreOutcome.REFUSED,
                                                  f"the catalog could not be restored: {why}")
            results.append(catalog_outcome)
        refused = any(r.outcome is RestoreOutcome.REFUSED for r in results)
        self._finish(resource, refused)
        return ResourceRestore(resource.path, tuple(results))

    def _check_catalog(self, catalog: CatalogToRestore | None) -> FileRestore | None:
        """The catalog's outcome when it needs nothing; None when it is to come back (its backup verified).
        Raises _Refused when it must not come back, so that no file of its resource moves either."""
        if catalog is None:
            return None
        if not catalog.changed:
            return FileRestore(catalog.path, RestoreOutcome.NOT_CHANGED)
        try:
            current = self._sha_or_none(catalog.path)
        except FileProblem as exc:
            raise _Refused(f"the catalog in the archive cannot be read ({exc}): nothing of this resource was "
                           "restored") from None
        if current == catalog.original_sha256:
            return FileRestore(catalog.path, RestoreOutcome.ALREADY_RESTORED)
        if current is not None and current != catalog.new_sha256:
            raise _Refused(f"the catalog {catalog.path} in the archive changed since the mitigation (it holds neither "
                           "its original nor the mitigation's bytes): nothing of this resource was restored")
        problem = self._backup_problem(catalog.backup, catalog.backup_shown, catalog.original_sha256, "the catalog")
        if problem is not None:
            raise _Refused(f"{problem}; nothing of this resource was restored, so its files still match its "
                           "catalog")
        return None

    def _file(self, resource: ResourceToRestore, file: FileToRestore) -> FileRestore:
        root = self.root
        st = root.lstat(file.path)
        if st is not None:
            if stat.S_ISREG(st.st_mode) and root.sha256(file.path) == file.sha256:
                if file.new_path is not None and file.new_path != file.path and root.same_file(file.path,
                                                                                             file.new_path):
                    # A move back cut off between its link and its unlink: the new name goes, as the move meant.
                    self._begin(resource)
                    root.unlink(file.new_path)
                return FileRestore(file.path, RestoreOutcome.ALREADY_RESTORED)
            return FileRestore(file.path, RestoreOutcome.REFUSED,
                               f"{file.path} in the archive now holds a different file: never overwritten (the "
                               f"original stays in BACKUP at {file.backup_shown})")
        note = None
        if file.kind is ActionKind.RENAME and file.new_path is not None:
            there = root.lstat(file.new_path)
            if there is not None and stat.S_ISREG(there.st_mode) and root.sha256(file.new_path) == file.sha256:
                self._begin(resource)
                self.journal.append(JournalStep.RESTORE_FILE, JournalPhase.START, resource=resource.path,
                                    path=file.path, source=file.new_path)
                try:
                    root.move(file.new_path, file.path)
                except FileExistsError:
                    return FileRestore(file.path, RestoreOutcome.REFUSED,
                                       f"a file appeared under {file.path} meanwhile: never overwritten")
                self.journal.append(JournalStep.RESTORE_FILE, JournalPhase.DONE, resource=resource.path,
                                    path=file.path)
                return FileRestore(file.path, RestoreOutcome.RESTORED)
            note = (f"{file.new_path} no longer holds this file's bytes and was left in place" if there is not None
                    else f"{file.new_path} is gone; restored from its backup")
        problem = self._backup_problem(file.backup, file.backup_shown, file.sha256, "this file")
        if problem is not None:
            return FileRestore(file.path, RestoreOutcome.REFUSED, f"{problem}; {note}" if note else problem)
        assert file.backup is not None
        self._begin(resource)
        self.journal.append(JournalStep.RESTORE_FILE, JournalPhase.START, resource=resource.path, path=file.path,
                            source="backup")
        try:
            copy_verified(self.backup, file.backup, root, file.path, file.sha256, durable=False, token=self.token)
        except FileProblem as exc:
            # The copy checks the backup's bytes as it reads them: one that changed meanwhile is the backup's fault.
            again = self._backup_problem(file.backup, file.backup_shown, file.sha256, "this file")
            return FileRestore(file.path, RestoreOutcome.REFUSED, again or f"the copy back failed: {exc}")
        self.journal.append(JournalStep.RESTORE_FILE, JournalPhase.DONE, resource=resource.path, path=file.path)
        return FileRestore(file.path, RestoreOutcome.RESTORED, note)

    def _catalog(self, resource: ResourceToRestore, catalog: CatalogToRestore) -> FileRestore:
        """The original catalog, verified, in place of the mitigation's in one rename (never a moment without)."""
        assert catalog.backup is not None
        self._begin(resource)
        self.journal.append(JournalStep.RESTORE_CATALOG, JournalPhase.START, resource=resource.path,
                            path=catalog.path)
        root = self.root
        staged_name = temporary_name(_split(catalog.path)[1], self.token)  # a temporary by name: a rerun removes it
        staged = _beside(catalog.path, staged_name)
        try:
            copy_verified(self.backup, catalog.backup, root, staged, catalog.original_sha256, durable=False,
                          token=self.token)
        except FileProblem as exc:
            again = self._backup_problem(catalog.backup, catalog.backup_shown, catalog.original_sha256, "the catalog")
            return FileRestore(catalog.path, RestoreOutcome.REFUSED, again or f"the catalog copy failed: {exc}")
        try:
            current = root.lstat(catalog.path)
            if current is not None:  # XNAT reads the catalog as it read the mitigation's: same permissions
                fd = root.open_regular(staged)
                try:
                    os.fchmod(fd, stat.S_IMODE(current.st_mode))
                finally:
                    os.close(fd)
            if self._sha_or_none(catalog.path) not in (None, catalog.new_sha256):
                return FileRestore(catalog.path, RestoreOutcome.REFUSED,
                                   "the catalog in the archive changed meanwhile: left as it is")
            with root.parent_of(catalog.path) as (folder_fd, name):
                os.replace(staged_name, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        finally:
            root.remove_temporary(staged)  # gone after the rename; still there if the rename did not happen
        self.journal.append(JournalStep.RESTORE_CATALOG, JournalPhase.DONE, resource=resource.path,
                            path=catalog.path)
        return FileRestore(catalog.path, RestoreOutcome.RESTORED)


def _left_alone(resource: ResourceToRestore, reason: str | None) -> ResourceRestore:
    """A resource not touched: what the mitigation changed is REFUSED for `reason` (None: it changed nothing)."""
    items = [(f.path, f.changed) for f in resource.files]
    if resource.catalog is not None:
        items.append((resource.catalog.path, resource.catalog.changed))
    files = tuple(FileRestore(path, RestoreOutcome.REFUSED, reason) if changed and reason is not None
                  else FileRestore(path, RestoreOutcome.NOT_CHANGED) for path, changed in items)
    if reason is not None:
        log.warning("resource not restored", resource=resource.path, reason=reason)
    return ResourceRestore(resource.path, files, reason)
