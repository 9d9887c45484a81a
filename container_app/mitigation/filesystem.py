"""Carrying out a mitigation plan on a writable archive, without ever losing a byte.

Per resource: refuse if anything changed since the survey; copy every file that will change into
BACKUP and verify the copy (sha256, read back), and make the copies durable; only then rename and
remove, never overwriting; then update the catalog in place. Resources go through these steps in
batches, so one sync of the file system serves a whole batch. Every step checks the files before it
acts, so a rerun after a crash at any moment finishes the job.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Protocol

from container_app.core.catalog_text import rewrite_entries
from container_app.core.errors import FileProblem, LockedError
from container_app.core.outcomes import ActionResult, CatalogResult, ResourceResult
from container_app.core.paths import safe_component, safe_relative
from container_app.core.plan import Action, FileState, ResourcePlan
from container_app.core.vocabulary import ActionKind, Outcome, ResourceStatus, Step
from container_app.mitigation.journal import Journal, exclusive_lock
from container_app.support import faults
from container_app.support.fsutil import sha256_of, sync_filesystem, verified_copy, write_atomically
from container_app.survey.catalog import is_catalog_name


class Executor(Protocol):
    """What both executors (files on a writable archive; XNAT's REST API) offer."""

    name: str

    def execute_batch(self, plans: Sequence[ResourcePlan]) -> list[ResourceResult]: ...


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
    """Changes files under ROOT, keeping verified backups under BACKUP."""

    root: str
    backup_root: str
    run_id: str
    journal: Journal
    name: str = "filesystem"
    _fresh_backups: set[str] = field(default_factory=set)

    def backup_folder(self, plan: ResourcePlan) -> str:
        return backup_folder_for(self.backup_root, self.run_id, plan)

    def _abs(self, rel: str) -> str:
        return os.path.join(self.root, *safe_relative(rel).split("/"))

    def execute_batch(self, plans: Sequence[ResourcePlan]) -> list[ResourceResult]:
        """Mitigate several resources, each step done for all of them before the next step starts.

        The order of steps per resource is the same as for one resource alone; batching only lets one
        sync of the file system (and one journal commit) serve every resource of the batch, where a
        sync per resource made the syncs cost more than the copies.
        """
        results: list[ResourceResult | None] = [None] * len(plans)
        with ExitStack() as locks:
            work: list[_Work] = []
            for index, plan in enumerate(plans):
                started = self._begin(plan, locks)
                if isinstance(started, ResourceResult):
                    results[index] = started
                else:
                    started.index = index
                    work.append(started)
            if work:
                self.journal.commit()
                self._back_up(work)
                self._change(work)
                self._update_catalogs(work)
            for item in work:
                results[item.index] = item.finish()
        finished = [r for r in results if r is not None]
        assert len(finished) == len(plans)
        return finished

    def _begin(self, plan: ResourcePlan, locks: ExitStack) -> _Work | ResourceResult:
        """Lock the resource and check it still looks as surveyed; a result when it is not to be touched."""
        backup_folder = self.backup_folder(plan)
        folder = self.root if plan.resource_path == "." else self._abs(plan.resource_path)
        if not plan.actions:
            return ResourceResult(plan, ResourceStatus.NOTHING_TO_DO if not plan.conflicts else ResourceStatus.PARTIAL,
                                  backup_folder, (), reason="nothing can be done safely" if plan.conflicts else None)
        try:
            locks.enter_context(exclusive_lock(folder, f"resource {plan.resource_path}"))
        except LockedError as exc:
            return self._untouched(plan, backup_folder, ResourceStatus.LOCKED, str(exc))
        if not os.access(folder, os.W_OK):
            return self._untouched(plan, backup_folder, ResourceStatus.FAILED,
                                   "the resource folder is read-only: nothing was changed")
        resource = plan.resource_path
        if not self.journal.done("resource-start", resource=resource):
            stale = self._staleness(plan, folder)
            if stale is not None:
                self.journal.append("resource", "stale", resource=resource, reason=stale)
                return self._untouched(plan, backup_folder, ResourceStatus.STALE, stale)
            # Committed with the batch's first commit, before any backup is journaled as done.
            self.journal.append("resource-start", "done", resource=resource, backupFolder=backup_folder)
        return _Work(plan, folder, backup_folder)

    def _untouched(self, plan: ResourcePlan, backup_folder: str, status: ResourceStatus,
                   reason: str) -> ResourceResult:
        results = tuple(ActionResult(a, Outcome.SKIPPED, error=reason) for a in plan.actions)
        return ResourceResult(plan, status, backup_folder, results, reason=reason)

    def _back_up(self, work: Sequence[_Work]) -> None:
        """1. Copy every file that will change; all copies durable and journaled before any original is touched."""
        copied_before = len(self._fresh_backups)
        for item in work:
            plan, resource = item.plan, item.plan.resource_path
            item.journaled = {r.get("path") for r in self.journal.done("backup", resource=resource)}
            pending = [a.source.path for a in plan.actions
                       if a.kind is not ActionKind.RETAIN and a.source.path not in item.journaled]
            if pending:  # one line before the batch (a line per copy would outnumber the copies' own cost)
                self.journal.append("backup", "start", resource=resource, files=len(pending),
                                    folder=item.backup_folder)
            for index, action in enumerate(plan.actions):
                if action.kind is ActionKind.RETAIN:
                    item.results[index] = ActionResult(action, Outcome.DONE)
                    continue
                destination = os.path.join(item.backup_folder, action.source.path.rsplit("/", 1)[-1])
                try:
                    self._backup(action, destination, item.journaled)
                except FileProblem as exc:
                    item.results[index] = ActionResult(action, Outcome.FAILED, None, str(exc), Step.BACKUP)
                    self.journal.append("backup", "failed", resource=resource, path=action.source.path,
                                        error=str(exc))
                    continue
                item.results[index] = ActionResult(action, Outcome.PLANNED, destination)
        # One sync for the whole batch, then the journal says the backups are done: never before.
        if len(self._fresh_backups) > copied_before:
            sync_filesystem(self.backup_root)
        for item in work:
            for index, action in enumerate(item.plan.actions):
                result = item.results[index]
                if result.outcome is Outcome.PLANNED and action.source.path not in item.journaled:
                    self.journal.append("backup", "done", resource=item.plan.resource_path, path=action.source.path,
                                        backup=result.backup_path, sha256=action.source.sha256)
        self.journal.commit()

    def _change(self, work: Sequence[_Work]) -> None:
        """2. Renames and removals, in each plan's order (a name is freed before it is taken)."""
        for item in work:
            plan, resource = item.plan, item.plan.resource_path
            finished = {(r["step"], r.get("path")) for r in self.journal.for_resource(resource)
                        if r["phase"] == "done"}
            for index, action in enumerate(plan.actions):
                result = item.results[index]
                if result.outcome is not Outcome.PLANNED:
                    continue
                step = Step.DELETE if action.kind is ActionKind.REMOVE else Step.MOVE
                if (step.value, action.source.path) in finished:
                    item.results[index] = ActionResult(action, Outcome.DONE, result.backup_path)
                    continue
                self.journal.append(step.value, "start", resource=resource, path=action.source.path,
                                    target=action.target)
                try:
                    if action.kind is ActionKind.REMOVE:
                        self._remove(action, plan, result.backup_path)
                    else:
                        self._rename(action)
                except FileProblem as exc:
                    item.results[index] = ActionResult(action, Outcome.FAILED, result.backup_path, str(exc), step)
                    self.journal.append(step.value, "failed", resource=resource, path=action.source.path,
                                        error=str(exc))
                    continue
                item.results[index] = ActionResult(action, Outcome.DONE, result.backup_path)
                self.journal.append(step.value, "done", resource=resource, path=action.source.path,
                                    target=action.target)
        sync_filesystem(self.root)  # the renames and removals of every folder of the batch
        self.journal.commit()

    # --- the steps ------------------------------------------------------------------------------

    def _staleness(self, plan: ResourcePlan, folder: str) -> str | None:
        """Why the resource no longer looks as the survey saw it, or None."""
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

    def _backup(self, action: Action, destination: str, journaled: set[str | None]) -> None:
        source = self._abs(action.source.path)
        if os.path.lexists(destination):
            # Made by an earlier attempt of this run: keep it if it holds exactly the surveyed bytes.
            if sha256_of(destination) == action.source.sha256:
                return
            if action.source.path in journaled:
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

    def _remove(self, action: Action, plan: ResourcePlan, backup: str | None) -> None:
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
        if backup not in self._fresh_backups and sha256_of(source) != action.source.sha256:
            raise FileProblem("the file changed since its backup; not removed")
        try:
            faults.before_unlink()
            os.unlink(source)
        except OSError as exc:
            raise FileProblem(f"delete failed: {exc.strerror or exc}") from exc

    def _rename(self, action: Action) -> None:
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

    def _update_catalogs(self, work: Sequence[_Work]) -> None:
        """3. The catalogs follow the files: each new catalog is journaled before it replaces the old one."""
        writes: list[tuple[_Work, _CatalogChange]] = []
        copied_before = len(self._fresh_backups)
        for item in work:
            change = self._catalog_change(item)
            if isinstance(change, _CatalogChange):
                writes.append((item, change))
        if len(self._fresh_backups) > copied_before:
            sync_filesystem(self.backup_root)  # the catalogs' backups, before any catalog is replaced
        for item, change in writes:
            if change.needs_write:
                self.journal.append("catalog", "start", resource=item.plan.resource_path,
                                    sha256=change.result.new_sha256)
        self.journal.commit()
        written = False
        for item, change in writes:
            try:
                if change.needs_write:
                    write_atomically(self._abs(change.result.path), change.data, durable=False)
                    written = True
                item.catalog = change.result
            except OSError as exc:
                self._catalog_failed(item, change.result.backup_path, change.result.original_sha256,
                                     f"catalog update failed: {exc}")
        if written:
            sync_filesystem(self.root)
        for item in work:
            catalog = item.catalog
            if catalog is not None and catalog.error is None:
                self.journal.append("catalog", "done", resource=item.plan.resource_path, sha256=catalog.new_sha256,
                                    renamed=catalog.renamed, removed=catalog.removed)
            self.journal.append("resource", "done", resource=item.plan.resource_path)
        self.journal.commit()

    def _catalog_change(self, item: _Work) -> _CatalogChange | None:
        """The new text of a resource's catalog, rewritten from its backed-up original; None if no catalog
        or it cannot be rewritten (then `item.catalog` says why)."""
        plan = item.plan
        if plan.catalog_path is None:
            return None
        path = self._abs(plan.catalog_path)
        backup = os.path.join(item.backup_folder, plan.catalog_path.rsplit("/", 1)[-1])
        results = list(item.results.values())
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
            ours = {original_sha, *(r.get("sha256") for r in self.journal.for_resource(plan.resource_path)
                                    if r["step"] == "catalog")}
            if current_sha not in ours:
                raise FileProblem("the catalog changed since the survey; not rewritten")
            result = CatalogResult(plan.catalog_path, backup, original_sha, new_sha, renamed, removed)
            return _CatalogChange(result, new_data, needs_write=current_sha != new_sha)
        except (OSError, FileProblem, UnicodeDecodeError) as exc:
            message = str(exc) if isinstance(exc, FileProblem) else f"catalog update failed: {exc}"
            self._catalog_failed(item, backup if os.path.lexists(backup) else None, original_sha, message)
            return None

    def _catalog_failed(self, item: _Work, backup: str | None, original_sha: str | None, message: str) -> None:
        self.journal.append("catalog", "failed", resource=item.plan.resource_path, error=message)
        item.catalog = CatalogResult(item.plan.catalog_path or "", backup, original_sha, None, 0, 0, message)


@dataclass(slots=True)
class _Work:
    """One resource on its way through a batch."""

    plan: ResourcePlan
    folder: str
    backup_folder: str
    index: int = 0
    results: dict[int, ActionResult] = field(default_factory=dict)  # by the action's index in the plan
    journaled: set[str | None] = field(default_factory=set)  # files whose backups an earlier attempt journaled
    catalog: CatalogResult | None = None

    def finish(self) -> ResourceResult:
        ordered = tuple(self.results[i] for i in range(len(self.plan.actions)))
        return ResourceResult(self.plan, _status(self.plan, ordered, self.catalog), self.backup_folder, ordered,
                              self.catalog)


@dataclass(frozen=True, slots=True)
class _CatalogChange:
    result: CatalogResult
    data: bytes
    needs_write: bool


def _status(plan: ResourcePlan, results: tuple[ActionResult, ...], catalog: CatalogResult | None) -> ResourceStatus:
    failed = sum(1 for r in results if r.outcome is Outcome.FAILED)
    if failed == len(results) and results:
        return ResourceStatus.FAILED
    if failed or plan.conflicts or (catalog is not None and catalog.error):
        return ResourceStatus.PARTIAL
    return ResourceStatus.MITIGATED

