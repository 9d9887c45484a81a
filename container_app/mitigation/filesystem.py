"""Carrying out a mitigation plan on a writable archive, without ever losing a byte.

The operations of `mitigation.protocol` on files: refuse if anything changed since the survey; copy
every file that will change into BACKUP and verify the copy (sha256, read back); rename and remove,
never overwriting; rewrite the catalog in place. The protocol decides their order and the journal;
these only act, each checking the files before it does, so a rerun after a crash at any moment
finishes the job. A batch's copies and changes are made durable by one sync of the file system each.

Every file is reached through `support.anchored` (ROOT and BACKUP held open, paths walked without
following links), and every path comes from the plan as ROOT-relative text: a folder swapped for a
link after the survey, or a report naming `..`, is refused, never followed. A file's backup sits at
its path relative to its resource below the resource's backup folder, so two files with one base
name in different subfolders never share a backup.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

from container_app.core.catalog_text import rewrite_entries
from container_app.core.errors import FileProblem, LockedError
from container_app.core.outcomes import ActionResult, CatalogResult, ResourceResult
from container_app.core.paths import safe_component
from container_app.core.plan import Action, FileState, ResourcePlan
from container_app.core.vocabulary import ActionKind, JournalPhase, JournalStep, Outcome, ResourceStatus
from container_app.mitigation import protocol
from container_app.mitigation.journal import Journal, lock_descriptor
from container_app.mitigation.protocol import CatalogChange, Refusal
from container_app.support.anchored import Anchor, components, copy_verified
from container_app.support.fsutil import temporary_name
from container_app.survey.catalog import is_catalog_name


def backup_folder_rel(run_id: str, plan: ResourcePlan) -> str:
    """`<project>/<session>/<run id>/<resource path>` below BACKUP: XNAT's cache layout, mirroring the archive."""
    identity = plan.identity
    parts = [safe_component(identity.get("project")), safe_component(identity.get("session")), safe_component(run_id)]
    return "/".join([*parts, *components(plan.resource_path)])


def backup_folder_for(backup_root: str, run_id: str, plan: ResourcePlan) -> str:
    return os.path.join(backup_root, *backup_folder_rel(run_id, plan).split("/"))


def within_resource(plan: ResourcePlan, path: str) -> str:
    """A file's path relative to its resource folder (`secondary/x.dcm`), refused if it lies outside."""
    if plan.resource_path == ".":
        return "/".join(components(path))
    prefix = plan.resource_path + "/"
    if not path.startswith(prefix):
        raise FileProblem(f"{path} is not inside its resource {plan.resource_path}; refused")
    return "/".join(components(path[len(prefix):]))


def _matches(st: os.stat_result | None, state: FileState) -> bool:
    if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != state.size or st.st_mtime_ns != state.mtime_ns:
        return False
    # Not hashed by the survey: its identity tells it is the file surveyed. Once backed up, its action carries
    # the copy's sha256.
    return state.sha256 is not None or state.same_identity(st)


def stale_reason(root: Anchor, plan: ResourcePlan) -> str | None:
    """Why the resource no longer looks as the survey saw it, or None.

    Only reads: a dry run asks it too, so that it shows every resource the real run would leave alone.
    """
    try:
        return _stale_reason(root, plan)
    except FileProblem as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read the resource: {exc.strerror or exc}"


def _stale_reason(root: Anchor, plan: ResourcePlan) -> str | None:
    surveyed = {within_resource(plan, f.path) for f in plan.files_at_survey}
    folders = sorted({p.rsplit("/", 1)[0] for p in surveyed if "/" in p} | {"."})
    present: set[str] = set()
    with root.descend(plan.resource_path) as resource:
        for rel in folders:
            prefix = "" if rel == "." else rel + "/"
            present |= {prefix + name for name, st in resource.list(rel)
                        if not stat.S_ISDIR(st.st_mode) and not is_catalog_name(name)}
    added, gone = sorted(present - surveyed), sorted(surveyed - present)
    if added:
        return f"{len(added)} file(s) added since the survey, e.g. {added[0]!r}"
    if gone:
        return f"{len(gone)} file(s) gone since the survey, e.g. {gone[0]!r}"
    for action in plan.actions:
        path, source = action.source.path, action.source
        if not _matches(root.lstat(path), source):
            what = "size or modification time" if source.sha256 is not None else "size, times or inode"
            return f"{path} changed since the survey ({what})"
        # A file the survey did not hash is hashed as it is backed up, not here: one read fewer.
        if action.kind is not ActionKind.RETAIN and source.sha256 is not None and root.sha256(path) != source.sha256:
            return f"{path} changed since the survey (sha256)"
    return None


@dataclass
class FilesystemExecutor:
    """Changes files under ROOT, keeping verified backups under BACKUP: `protocol.Operations` on files."""

    root_path: str
    backup_root: str
    run_id: str
    journal: Journal
    name: str = "filesystem"
    _fresh_backups: set[str] = field(default_factory=set)  # copied by this process: their bytes are known
    _durable_backups: int = 0  # how many of them the last sync of BACKUP covered
    root: Anchor = field(init=False)
    backup: Anchor = field(init=False)
    token: str = field(default_factory=lambda: secrets.token_hex(8))  # this attempt's temporaries carry it

    def __post_init__(self) -> None:
        self.root = Anchor.open(self.root_path)
        try:
            self.backup = Anchor.open(self.backup_root, create=True)
        except BaseException:
            self.root.close()
            raise

    def close(self) -> None:
        self.root.close()
        self.backup.close()

    def execute_batch(self, plans: Sequence[ResourcePlan]) -> list[ResourceResult]:
        return protocol.execute_batch(self, self.journal, plans)

    def backup_folder(self, plan: ResourcePlan) -> str:
        return backup_folder_for(self.backup.path, self.run_id, plan)

    def _backup_rel(self, plan: ResourcePlan, path: str) -> str:
        return f"{backup_folder_rel(self.run_id, plan)}/{within_resource(plan, path)}"

    def admit(self, plan: ResourcePlan, locks: ExitStack) -> Refusal | None:
        try:
            # Held (and locked) for the batch: every file of the resource is reached from this descriptor.
            folder_fd = self.root.hold(plan.resource_path)
            locks.callback(self.root.release, plan.resource_path)
            locks.callback(self.backup.release, backup_folder_rel(self.run_id, plan))
            lock_descriptor(folder_fd, f"resource {plan.resource_path}", self.root.display(plan.resource_path))
        except LockedError as exc:
            return Refusal(ResourceStatus.LOCKED, str(exc))
        except (OSError, FileProblem) as exc:
            reason = str(exc) if isinstance(exc, FileProblem) else f"cannot open the resource: {exc.strerror}"
            return Refusal(ResourceStatus.STALE, reason + ": nothing was changed")
        if not os.access(".", os.W_OK, dir_fd=folder_fd):
            return Refusal(ResourceStatus.FAILED, "the resource folder is read-only: nothing was changed")
        earlier = self._earlier_tokens(plan)
        if earlier:
            self._remove_temporaries(plan, earlier)
        # Committed with the batch's first commit, before any temporary of this attempt is made.
        self.journal.append(JournalStep.TEMPORARY, JournalPhase.START, resource=plan.resource_path, token=self.token)
        return None

    def _earlier_tokens(self, plan: ResourcePlan) -> set[str]:
        """The temporary tokens of earlier attempts of this run on this resource."""
        tokens = self.journal.field_values(JournalStep.TEMPORARY, plan.resource_path, "token")
        return {t for t in tokens if isinstance(t, str) and t != self.token}

    def _remove_temporaries(self, plan: ResourcePlan, tokens: set[str]) -> None:
        """The temporaries earlier attempts made (and a kill left behind): exactly those go, nothing else."""
        paths = [a.source.path for a in plan.actions] + ([plan.catalog_path] if plan.catalog_path else [])
        for path in paths:
            parts = self._backup_rel(plan, path).split("/")
            for token in tokens:
                with contextlib.suppress(OSError, FileProblem):  # a leftover in BACKUP harms nothing
                    self.backup.remove_temporary("/".join([*parts[:-1], temporary_name(parts[-1], token)]))
        if plan.catalog_path:  # the new catalog's temporary sits beside it, in the archive
            parts = components(plan.catalog_path)
            for token in tokens:
                with contextlib.suppress(OSError, FileProblem):
                    self.root.remove_temporary("/".join([*parts[:-1], temporary_name(parts[-1], token)]))

    def make_backups_durable(self) -> None:
        if len(self._fresh_backups) > self._durable_backups:
            self.backup.sync()
            self._durable_backups = len(self._fresh_backups)

    def make_changes_durable(self) -> None:
        self.root.sync()

    # --- the steps ------------------------------------------------------------------------------

    def is_stale(self, plan: ResourcePlan) -> str | None:
        """Why the resource no longer looks as the survey saw it, or None."""
        return stale_reason(self.root, plan)

    def back_up(self, backup_folder: str, plan: ResourcePlan, action: Action, *,
                journaled: bool) -> tuple[str, str]:
        destination = self._backup_rel(plan, action.source.path)
        shown = self.backup.display(destination)
        self.backup.hold(backup_folder_rel(self.run_id, plan), create=True)  # released with the resource's lock
        expected = action.source.sha256
        if self.backup.exists(destination):
            # Made by an earlier attempt of this run: keep it if it holds exactly the surveyed bytes (those its
            # journaled backup proved, for a file the survey did not hash).
            if expected is not None and self.backup.is_regular(destination) and self.backup.sha256(
                    destination) == expected:
                return shown, expected
            if journaled or not self._earlier_tokens(plan):
                raise FileProblem(f"the backup at {shown} does not hold this file's bytes; never overwritten")
            # In this run's own folder, made by an earlier attempt of this run (its token is journaled) and
            # never journaled as done: a copy whose batch was not synced before a power cut. The original
            # is untouched (nothing changes before its backup is journaled), so copy again.
            self.backup.unlink(destination)
        source = self.root.lstat(action.source.path)
        if source is None:
            raise FileProblem("the file is gone and no backup of it exists")
        if not _matches(source, action.source):
            raise FileProblem("the file changed since the survey (size or modification time); not touched")
        if not action.source.provable:  # the plan blocks such a file; never copied on trust
            raise FileProblem("the survey recorded neither a checksum nor the file's identity; not touched")
        # Not hashed by the survey: hashed as it is copied, and still its surveyed self once copied.
        unchanged = None if expected is not None else action.source.same_identity
        sha256 = copy_verified(self.root, action.source.path, self.backup, destination, expected, durable=False,
                               token=self.token, source_unchanged=unchanged)
        self._fresh_backups.add(shown)
        return shown, sha256

    def back_up_catalog(self, plan: ResourcePlan) -> str | None:
        """The catalog's original, copied before the first file of its resource changes."""
        if plan.catalog_path is None:
            return None
        destination = self._backup_rel(plan, plan.catalog_path)
        shown = self.backup.display(destination)
        if not self.backup.exists(destination):
            copy_verified(self.root, plan.catalog_path, self.backup, destination, None, durable=False,
                          token=self.token)
            self._fresh_backups.add(shown)
        return shown

    def remove(self, plan: ResourcePlan, action: Action, backup_path: str | None) -> None:
        root, source = self.root, action.source.path
        if not root.exists(source):
            return  # removed by an earlier attempt, after its backup was verified
        keeper = next((a for a in plan.actions if a.group == action.group and a.kind is not ActionKind.REMOVE), None)
        if keeper is not None and keeper.target == source and not root.exists(keeper.source.path):
            return  # an earlier attempt removed this copy and moved the kept one into its name
        if keeper is not None and not any(root.exists(p) for p in (keeper.source.path, keeper.target) if p is not None):
            raise FileProblem("the copy to keep is gone; this copy stays")
        if not _matches(root.lstat(source), action.source):
            raise FileProblem("the file changed since its backup; not removed")
        if backup_path not in self._fresh_backups and root.sha256(source) != action.source.sha256:
            raise FileProblem("the file changed since its backup; not removed")
        try:
            root.unlink(source)
        except OSError as exc:
            raise FileProblem(f"delete failed: {exc.strerror or exc}") from exc

    def rename(self, plan: ResourcePlan, action: Action) -> None:
        assert action.target is not None
        root, source, target = self.root, action.source.path, action.target
        within_resource(plan, target)  # a target outside the resource is refused before anything is looked at
        source_there, target_there = root.exists(source), root.exists(target)
        if not source_there:
            if target_there and root.is_regular(target) and root.sha256(target) == action.source.sha256:
                return  # renamed by an earlier attempt
            raise FileProblem("the file is gone (its backup is kept)")
        if target_there:
            if root.same_file(source, target):  # an earlier attempt linked but did not unlink
                root.unlink(source)
                return
            raise FileProblem(f"{target} exists and is not this file; never overwritten")
        try:
            root.move(source, target)
        except FileExistsError:
            raise FileProblem(f"{target} appeared meanwhile; never overwritten") from None
        except OSError as exc:
            raise FileProblem(f"rename failed: {exc.strerror or exc}") from exc

    def prepare_catalog(self, plan: ResourcePlan, backup_folder: str, results: Sequence[ActionResult],
                        earlier_sha256: set[object]) -> CatalogChange | CatalogResult | None:
        """The new text of a resource's catalog, rewritten from its backed-up original; None if no catalog,
        a CatalogResult saying why if it cannot be rewritten."""
        if plan.catalog_path is None:
            return None
        backup_rel = self._backup_rel(plan, plan.catalog_path)
        backup = self.backup.display(backup_rel)
        catalog_folder = plan.catalog_path.rsplit("/", 1)[0] if "/" in plan.catalog_path else "."

        def uri(path: str) -> str:  # catalog URIs are relative to the catalog's folder
            return path if catalog_folder == "." else path[len(catalog_folder) + 1:]

        renames = {uri(r.action.source.path): uri(r.action.target or "")
                   for r in results if r.outcome is Outcome.DONE and r.action.kind is ActionKind.RENAME}
        removals = frozenset(uri(r.action.source.path)
                             for r in results if r.outcome is Outcome.DONE and r.action.kind is ActionKind.REMOVE)
        original_sha = None
        try:
            if not self.backup.exists(backup_rel):
                self.back_up_catalog(plan)
            # Always rewrite from the original: a rerun then yields the same catalog, whatever was done before.
            original_data = self.backup.read_bytes(backup_rel)
            original_sha = hashlib.sha256(original_data).hexdigest()
            new_text, renamed, removed = rewrite_entries(original_data.decode("utf-8"), renames, removals)
            new_data = new_text.encode("utf-8")
            new_sha = hashlib.sha256(new_data).hexdigest()
            current_sha = self.root.sha256(plan.catalog_path)
            if current_sha not in {original_sha, *earlier_sha256}:
                raise FileProblem("the catalog changed since the survey; not rewritten")
            result = CatalogResult(plan.catalog_path, backup, original_sha, new_sha, renamed, removed)
            return CatalogChange(result, new_data, needs_write=current_sha != new_sha)
        except (OSError, FileProblem, UnicodeDecodeError) as exc:
            message = str(exc) if isinstance(exc, FileProblem) else f"catalog update failed: {exc}"
            return CatalogResult(plan.catalog_path, backup if self.backup.exists(backup_rel) else None, original_sha,
                                 None, 0, 0, message)

    def write_catalog(self, catalog_path: str, data: bytes) -> None:
        try:
            # Named with this attempt's journaled token: a kill mid-write leaves a temporary the rerun removes.
            self.root.write_atomically(catalog_path, data, durable=False, token=self.token)
        except OSError as exc:
            raise FileProblem(f"catalog update failed: {exc}") from exc
