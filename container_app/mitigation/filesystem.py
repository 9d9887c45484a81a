"""Carrying out a mitigation plan on a writable archive, without ever losing a byte.

The operations of `mitigation.protocol` on files: refuse if anything changed since the survey; copy
every file that will change into BACKUP and verify the copy (sha256, read back); rename and remove,
never overwriting; rewrite the catalog in place. The protocol decides their order and the journal;
these only act, each checking the files before it does, so a rerun after a crash at any moment
finishes the job. A batch's copies and changes are made durable by one sync of the file system each.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from container_app.core.catalog_text import rewrite_entries
from container_app.core.errors import FileProblem, LockedError
from container_app.core.outcomes import ActionResult, CatalogResult, ResourceResult
from container_app.core.paths import safe_component, safe_relative
from container_app.core.plan import Action, FileState, ResourcePlan
from container_app.core.vocabulary import ActionKind, Outcome, ResourceStatus
from container_app.mitigation import protocol
from container_app.mitigation.journal import Journal, exclusive_lock
from container_app.mitigation.protocol import CatalogChange, Refusal
from container_app.support import faults
from container_app.support.fsutil import sha256_of, sync_filesystem, verified_copy, write_atomically
from container_app.survey.catalog import is_catalog_name


def _same_file_state(path: str, state: FileState) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size == state.size and st.st_mtime_ns == state.mtime_ns


def backup_folder_for(backup_root: str, run_id: str, plan: ResourcePlan) -> str:
    """`BACKUP/<project>/<session>/<run id>/<resource path>`: XNAT's cache layout, mirroring the archive."""
    identity = plan.identity
    parts = [safe_component(identity.get("project")), safe_component(identity.get("session")), safe_component(run_id)]
    if plan.resource_path != ".":
        parts.extend(safe_relative(plan.resource_path).split("/"))
    return os.path.join(backup_root, *parts)


@dataclass
class FilesystemExecutor:
    """Changes files under ROOT, keeping verified backups under BACKUP: `protocol.Operations` on files."""

    root: str
    backup_root: str
    run_id: str
    journal: Journal
    name: str = "filesystem"
    _fresh_backups: set[str] = field(default_factory=set)  # copied by this process: their bytes are known
    _durable_backups: int = 0  # how many of them the last sync of BACKUP covered

    def execute_batch(self, plans: Sequence[ResourcePlan]) -> list[ResourceResult]:
        return protocol.execute_batch(self, self.journal, plans)

    def backup_folder(self, plan: ResourcePlan) -> str:
        return backup_folder_for(self.backup_root, self.run_id, plan)

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, *safe_relative(rel).split("/"))

    def _folder(self, plan: ResourcePlan) -> str:
        return self.root if plan.resource_path == "." else self._abs(plan.resource_path)

    def admit(self, plan: ResourcePlan, locks: ExitStack) -> Refusal | None:
        folder = self._folder(plan)
        try:
            locks.enter_context(exclusive_lock(folder, f"resource {plan.resource_path}"))
        except LockedError as exc:
            return Refusal(ResourceStatus.LOCKED, str(exc))
        if not os.access(folder, os.W_OK):
            return Refusal(ResourceStatus.FAILED, "the resource folder is read-only: nothing was changed")
        return None

    def make_backups_durable(self) -> None:
        if len(self._fresh_backups) > self._durable_backups:
            sync_filesystem(self.backup_root)
            self._durable_backups = len(self._fresh_backups)

    def make_changes_durable(self) -> None:
        sync_filesystem(self.root)

    # --- the steps ------------------------------------------------------------------------------

    def is_stale(self, plan: ResourcePlan) -> str | None:
        """Why the resource no longer looks as the survey saw it, or None."""
        folder = self._folder(plan)
        try:
            present = {e.name for e in os.scandir(folder)
                       if not e.is_dir(follow_symlinks=False) and not is_catalog_name(e.name)}
        except OSError as exc:
            return f"cannot list the resource: {exc.strerror}"
        surveyed = {f.path.rsplit("/", 1)[-1] for f in plan.files_at_survey}
        added, gone = sorted(present - surveyed), sorted(surveyed - present)
        if added:
            return f"{len(added)} file(s) added since the survey, e.g. {added[0]!r}"
        if gone:
            return f"{len(gone)} file(s) gone since the survey, e.g. {gone[0]!r}"
        for action in plan.actions:
            path = self._abs(action.source.path)
            if not _same_file_state(path, action.source):
                return f"{action.source.path} changed since the survey (size or modification time)"
            if action.kind is not ActionKind.RETAIN and sha256_of(path) != action.source.sha256:
                return f"{action.source.path} changed since the survey (sha256)"
        return None

    def back_up(self, backup_folder: str, action: Action, *, journaled: bool) -> str:
        destination = os.path.join(backup_folder, action.source.path.rsplit("/", 1)[-1])
        source = self._abs(action.source.path)
        if os.path.lexists(destination):
            # Made by an earlier attempt of this run: keep it if it holds exactly the surveyed bytes.
            if sha256_of(destination) == action.source.sha256:
                return destination
            if journaled:
                raise FileProblem(f"the backup at {destination} no longer matches; never overwritten")
            # Never journaled as done: a copy cut short by a crash before its batch was synced. The
            # original is untouched (nothing is changed before its backup is journaled), so copy again.
            os.unlink(destination)
        if not os.path.lexists(source):
            raise FileProblem("the file is gone and no backup of it exists")
        if not _same_file_state(source, action.source):
            raise FileProblem("the file changed since the survey (size or modification time); not touched")
        verified_copy(source, destination, action.source.sha256, durable=False)
        self._fresh_backups.add(destination)
        return destination

    def remove(self, plan: ResourcePlan, action: Action, backup_path: str | None) -> None:
        source = self._abs(action.source.path)
        if not os.path.lexists(source):
            return  # removed by an earlier attempt, after its backup was verified
        keeper = next((a for a in plan.actions if a.group == action.group and a.kind is not ActionKind.REMOVE), None)
        if (keeper is not None and keeper.target == action.source.path
                and not os.path.lexists(self._abs(keeper.source.path))):
            return  # an earlier attempt removed this copy and moved the kept one into its name
        if keeper is not None and not any(
            os.path.lexists(self._abs(p)) for p in (keeper.source.path, keeper.target) if p is not None
        ):
            raise FileProblem("the copy to keep is gone; this copy stays")
        if not _same_file_state(source, action.source):
            raise FileProblem("the file changed since its backup; not removed")
        if backup_path not in self._fresh_backups and sha256_of(source) != action.source.sha256:
            raise FileProblem("the file changed since its backup; not removed")
        try:
            faults.before_unlink()
            os.unlink(source)
        except OSError as exc:
            raise FileProblem(f"delete failed: {exc.strerror or exc}") from exc

    def rename(self, plan: ResourcePlan, action: Action) -> None:
        assert action.target is not None
        source, target = self._abs(action.source.path), self._abs(action.target)
        source_there, target_there = os.path.lexists(source), os.path.lexists(target)
        if not source_there:
            if target_there and sha256_of(target) == action.source.sha256:
                return  # renamed by an earlier attempt
            raise FileProblem("the file is gone (its backup is kept)")
        if target_there:
            if os.path.samefile(source, target):  # an earlier attempt linked but did not unlink
                os.unlink(source)
                return
            raise FileProblem(f"{action.target} exists and is not this file; never overwritten")
        try:
            # link-then-unlink never replaces an existing name, unlike rename(2).
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            raise FileProblem(f"{action.target} appeared meanwhile; never overwritten") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                raise FileProblem(f"rename failed: {exc.strerror or exc}") from exc
            try:  # a file system without hard links: check, then rename (no atomic no-replace here)
                if os.path.lexists(target):
                    raise FileProblem(f"{action.target} exists; never overwritten")
                os.rename(source, target)
                return
            except OSError as exc2:
                raise FileProblem(f"rename failed: {exc2.strerror or exc2}") from exc2
        try:
            os.unlink(source)
        except OSError as exc:
            raise FileProblem(f"renamed, but the old name could not be removed: {exc.strerror or exc}") from exc

    def prepare_catalog(self, plan: ResourcePlan, backup_folder: str, results: Sequence[ActionResult],
                        earlier_sha256: set[object]) -> CatalogChange | CatalogResult | None:
        """The new text of a resource's catalog, rewritten from its backed-up original; None if no catalog,
        a CatalogResult saying why if it cannot be rewritten."""
        if plan.catalog_path is None:
            return None
        path = self._abs(plan.catalog_path)
        backup = os.path.join(backup_folder, plan.catalog_path.rsplit("/", 1)[-1])
        renames = {r.action.source.path.rsplit("/", 1)[-1]: (r.action.target or "").rsplit("/", 1)[-1]
                   for r in results if r.outcome is Outcome.DONE and r.action.kind is ActionKind.RENAME}
        removals = frozenset(r.action.source.path.rsplit("/", 1)[-1]
                             for r in results if r.outcome is Outcome.DONE and r.action.kind is ActionKind.REMOVE)
        original_sha = None
        try:
            # Always rewrite from the original: a rerun then yields the same catalog, whatever was done before.
            if os.path.lexists(backup):
                original_sha = sha256_of(backup)
            else:
                original_sha = verified_copy(path, backup, None, durable=False)
                self._fresh_backups.add(backup)
            with open(backup, encoding="utf-8") as handle:
                original = handle.read()
            new_text, renamed, removed = rewrite_entries(original, renames, removals)
            new_data = new_text.encode("utf-8")
            new_sha = hashlib.sha256(new_data).hexdigest()
            current_sha = sha256_of(path)
            ours = {original_sha, *earlier_sha256}
            if current_sha not in ours:
                raise FileProblem("the catalog changed since the survey; not rewritten")
            result = CatalogResult(plan.catalog_path, backup, original_sha, new_sha, renamed, removed)
            return CatalogChange(result, new_data, needs_write=current_sha != new_sha)
        except (OSError, FileProblem, UnicodeDecodeError) as exc:
            message = str(exc) if isinstance(exc, FileProblem) else f"catalog update failed: {exc}"
            return CatalogResult(plan.catalog_path, backup if os.path.lexists(backup) else None, original_sha,
                                 None, 0, 0, message)

    def write_catalog(self, catalog_path: str, data: bytes) -> None:
        try:
            write_atomically(self._abs(catalog_path), data, durable=False)
        except OSError as exc:
            raise FileProblem(f"catalog update failed: {exc}") from exc
