"""The mitigation protocol, stated once: the order of steps that never loses a byte, whatever the executor.

Per resource, and for a batch of resources step by step (every resource of the batch finishes a step
before any starts the next, so one commit serves them all):

1. Stale check. The resource must look exactly as the survey saw it (same names, sizes, modification
   times; for every file that will change, the surveyed sha256 or, where the survey hashed none, the
   same inode and change time): the plan was made from that picture, and acting on a different one
   could rename the wrong file or remove the only copy. Journaled as `resource-start` once passed, so
   a rerun does not mistake its own half-done work for a change by someone else.
2. Backup. The resource's catalog, then every file that will change, is copied into BACKUP and the
   copy verified (each copy's temporary journaled by name before it is made, so a rerun after a kill
   removes exactly those). A file the survey did not hash is hashed as it is copied, and its identity
   checked once the copy is made: that sha256, journaled with the backup, is the file's from then on.
   A catalog that cannot be copied leaves its whole resource untouched.
3. Commit. The copies are made durable (one sync for the batch) and only then journaled as done,
   and the journal committed: a crash before this point leaves every original untouched, after it
   every original has a durable, verified copy. Nothing is changed before this commit.
4. Change. Renames and removals, in each plan's order (a name is freed before it is taken); a rename
   never replaces an existing name. Each is journaled before ("start") and after ("done").
5. Commit. The changes are made durable and the journal committed, so the catalog step (which
   describes the new names) never runs ahead of the names themselves.
6. Catalog. The catalog's original, backed up in step 2, is durable before anything replaces it; the
   new text is always rewritten from that original (a rerun then yields the same catalog) and
   journaled (`catalog start`, committed) before it replaces the old one atomically, so a rerun
   recognises a catalog it wrote itself; then the new catalog is made durable.
7. Done. `catalog done` and `resource done` are journaled and committed.

Every operation also checks the files themselves before it acts, so a rerun after a crash at any
moment (with a journal line lost or torn) finishes the job instead of repeating or skipping a step.

The executor supplies only the operations (`Operations`); this module decides their order, what is
journaled and when the journal is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Protocol

from container_app.core.errors import FileProblem
from container_app.core.outcomes import ActionResult, CatalogResult, ResourceResult
from container_app.core.plan import Action, ResourcePlan, with_sha256
from container_app.core.vocabulary import ActionKind, JournalPhase, JournalStep, Outcome, ResourceStatus, Step
from container_app.mitigation.journal import Journal


class Executor(Protocol):
    """What a mitigation run drives: the file-system executor, and the XNAT executor."""

    name: str

    def execute_batch(self, plans: Sequence[ResourcePlan]) -> list[ResourceResult]: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a resource is not touched at all (locked by another run, read-only, ...)."""

    status: ResourceStatus
    reason: str


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """A resource's new catalog, ready to replace the old one."""

    result: CatalogResult
    data: bytes
    needs_write: bool  # False when the catalog already holds exactly this text (an earlier attempt wrote it)


class Operations(Protocol):
    """What an executor supplies to the protocol. Each raises FileProblem (with the reason a report shows)
    where it must not or cannot act; none journals anything or decides what comes next."""

    def backup_folder(self, plan: ResourcePlan) -> str:
        """Where the resource's backups go (reported even for a resource that is not touched)."""
        ...

    def admit(self, plan: ResourcePlan, locks: ExitStack) -> Refusal | None:
        """Take whatever the resource needs for the batch (its lock, entered into `locks`); a Refusal if it
        cannot be touched."""
        ...

    def is_stale(self, plan: ResourcePlan) -> str | None:
        """Why the resource no longer looks as the survey saw it, or None."""
        ...

    def back_up(self, backup_folder: str, plan: ResourcePlan, action: Action, *, journaled: bool) -> tuple[str, str]:
        """Copy the file the action will change into the backup and verify the copy; returns where it is and
        the sha256 of its bytes (the surveyed one, or, for a file the survey did not hash, the copy's).
        `journaled`: an earlier attempt journaled this backup as done, with the sha256 `action` now carries
        (so an existing copy that does not match is damage, never a leftover to replace)."""
        ...

    def back_up_catalog(self, plan: ResourcePlan) -> str | None:
        """Copy the resource's catalog into the backup (None when it has none); before any file changes."""
        ...

    def make_backups_durable(self) -> None:
        """Every backup made so far survives a crash (a no-op when none was made since the last call)."""
        ...

    def rename(self, plan: ResourcePlan, action: Action) -> None:
        """Give the file its expected name, never replacing an existing one; a no-op if already done."""
        ...

    def remove(self, plan: ResourcePlan, action: Action, backup_path: str | None) -> None:
        """Remove a surplus copy whose backup is durable; a no-op if already done."""
        ...

    def make_changes_durable(self) -> None:
        """Every rename, removal and catalog write so far survives a crash."""
        ...

    def prepare_catalog(self, plan: ResourcePlan, backup_folder: str, results: Sequence[ActionResult],
                        earlier_sha256: set[object]) -> CatalogChange | CatalogResult | None:
        """Back up the catalog's original and make its new text from it and the actions done; a
        CatalogResult with its `error` when it cannot be rewritten; None when the resource has no catalog.
        `earlier_sha256`: the catalogs this run journaled for the resource (an earlier attempt's)."""
        ...

    def write_catalog(self, catalog_path: str, data: bytes) -> None:
        """Replace the catalog atomically (made durable by the next `make_changes_durable`)."""
        ...


def execute_batch(operations: Operations, journal: Journal, plans: Sequence[ResourcePlan]) -> list[ResourceResult]:
    """Mitigate several resources, each step done for all of them before the next step starts.

    The order of steps per resource is the same as for one resource alone; batching only lets one
    sync (and one journal commit) serve every resource of the batch. A batch of one is a resource alone.
    """
    results: list[ResourceResult | None] = [None] * len(plans)
    with ExitStack() as locks:
        work: list[_Work] = []
        for index, plan in enumerate(plans):
            started = _begin(operations, journal, plan, locks)
            if isinstance(started, ResourceResult):
                results[index] = started
            else:
                started.index = index
                work.append(started)
        if work:
            journal.commit()
            _back_up(operations, journal, work)
            _change(operations, journal, work)
            _update_catalogs(operations, journal, work)
        for item in work:
            results[item.index] = item.finish()
    for plan in plans:  # each resource is done with: its journal lines are on disk, not needed in memory
        journal.forget(plan.resource_path)
    finished = [r for r in results if r is not None]
    assert len(finished) == len(plans)
    return finished


def _begin(operations: Operations, journal: Journal, plan: ResourcePlan, locks: ExitStack) -> _Work | ResourceResult:
    """1. Admit the resource and check it still looks as surveyed; a result when it is not to be touched."""
    backup_folder = operations.backup_folder(plan)
    if not plan.actions:
        return ResourceResult(plan, ResourceStatus.NOTHING_TO_DO if not plan.conflicts else ResourceStatus.PARTIAL,
                              backup_folder, (), reason="nothing can be done safely" if plan.conflicts else None)
    refusal = operations.admit(plan, locks)
    if refusal is not None:
        return untouched(plan, backup_folder, refusal.status, refusal.reason)
    resource = plan.resource_path
    if not journal.done(JournalStep.RESOURCE_START, resource=resource):
        stale = operations.is_stale(plan)
        if stale is not None:
            journal.append(JournalStep.RESOURCE, JournalPhase.STALE, resource=resource, reason=stale)
            return untouched(plan, backup_folder, ResourceStatus.STALE, stale)
        # Committed with the batch's first commit, before any backup is journaled as done.
        journal.append(JournalStep.RESOURCE_START, JournalPhase.DONE, resource=resource, backupFolder=backup_folder)
    return _Work(plan, backup_folder)


def untouched(plan: ResourcePlan, backup_folder: str, status: ResourceStatus, reason: str) -> ResourceResult:
    """The result of a resource left as it is: every action skipped, for `reason`."""
    results = tuple(ActionResult(a, Outcome.SKIPPED, error=reason) for a in plan.actions)
    return ResourceResult(plan, status, backup_folder, results, reason=reason)


def _back_up(operations: Operations, journal: Journal, work: Sequence[_Work]) -> None:
    """2-3. Copy every file that will change; all copies durable and journaled before any original is touched."""
    for item in work:
        plan, resource = item.plan, item.plan.resource_path
        journaled = journal.done_values(JournalStep.BACKUP, resource, "sha256")
        item.journaled = set(journaled)
        pending = [a.source.path for a in plan.actions
                   if a.kind is not ActionKind.RETAIN and a.source.path not in item.journaled]
        if pending:  # one line before the batch (a line per copy would outnumber the copies' own cost)
            journal.append(JournalStep.BACKUP, JournalPhase.START, resource=resource, files=len(pending),
                           folder=item.backup_folder)
        try:
            operations.back_up_catalog(plan)
        except FileProblem as exc:  # the catalog could not be kept as it was: no file of its resource changes
            reason = f"the catalog could not be backed up: {exc}"
            journal.append(JournalStep.BACKUP, JournalPhase.FAILED, resource=resource, path=plan.catalog_path,
                           error=reason)
            for index, action in enumerate(plan.actions):
                item.results[index] = ActionResult(action, Outcome.FAILED, None, reason, Step.BACKUP)
            continue
        for index, action in enumerate(plan.actions):
            if action.kind is ActionKind.RETAIN:
                item.results[index] = ActionResult(action, Outcome.DONE)
                continue
            # A file the survey did not hash has, once an earlier attempt backed it up, that backup's sha256.
            action = with_sha256(action, journaled.get(action.source.path))
            try:
                destination, sha256 = operations.back_up(item.backup_folder, plan, action,
                                                         journaled=action.source.path in item.journaled)
            except FileProblem as exc:
                item.results[index] = ActionResult(action, Outcome.FAILED, None, str(exc), Step.BACKUP)
                journal.append(JournalStep.BACKUP, JournalPhase.FAILED, resource=resource, path=action.source.path,
                               error=str(exc))
                continue
            # From here on the action carries the sha256 its backup proved: every later step checks against it.
            item.results[index] = ActionResult(with_sha256(action, sha256), Outcome.PLANNED, destination)
    # One sync for the whole batch, then the journal says the backups are done: never before.
    operations.make_backups_durable()
    for item in work:
        for result in item.results.values():
            action = result.action
            if result.outcome is Outcome.PLANNED and action.source.path not in item.journaled:
                journal.append(JournalStep.BACKUP, JournalPhase.DONE, resource=item.plan.resource_path,
                               path=action.source.path, backup=result.backup_path, sha256=action.source.sha256)
    journal.commit()


_JOURNAL_STEP = {Step.MOVE: JournalStep.MOVE, Step.DELETE: JournalStep.DELETE}


def _change(operations: Operations, journal: Journal, work: Sequence[_Work]) -> None:
    """4-5. Renames and removals, in each plan's order (a name is freed before it is taken)."""
    for item in work:
        plan, resource = item.plan, item.plan.resource_path
        finished = {step: journal.done_paths(step, resource) for step in _JOURNAL_STEP.values()}
        for index in range(len(plan.actions)):
            result = item.results[index]
            action = result.action  # with the sha256 its backup proved
            if result.outcome is not Outcome.PLANNED:
                continue
            step = Step.DELETE if action.kind is ActionKind.REMOVE else Step.MOVE
            journal_step = _JOURNAL_STEP[step]
            if action.source.path in finished[journal_step]:
                item.results[index] = ActionResult(action, Outcome.DONE, result.backup_path)
                continue
            journal.append(journal_step, JournalPhase.START, resource=resource, path=action.source.path,
                           target=action.target)
            try:
                if action.kind is ActionKind.REMOVE:
                    operations.remove(plan, action, result.backup_path)
                else:
                    operations.rename(plan, action)
            except FileProblem as exc:
                item.results[index] = ActionResult(action, Outcome.FAILED, result.backup_path, str(exc), step)
                journal.append(journal_step, JournalPhase.FAILED, resource=resource, path=action.source.path,
                               error=str(exc))
                continue
            item.results[index] = ActionResult(action, Outcome.DONE, result.backup_path)
            journal.append(journal_step, JournalPhase.DONE, resource=resource, path=action.source.path,
                           target=action.target)
    operations.make_changes_durable()  # the renames and removals of every resource of the batch
    journal.commit()


def _update_catalogs(operations: Operations, journal: Journal, work: Sequence[_Work]) -> None:
    """6-7. The catalogs follow the files: each new catalog is journaled before it replaces the old one."""
    writes: list[tuple[_Work, CatalogChange]] = []
    for item in work:
        resource = item.plan.resource_path
        change = operations.prepare_catalog(item.plan, item.backup_folder, list(item.results.values()),
                                            journal.field_values(JournalStep.CATALOG, resource, "sha256"))
        if isinstance(change, CatalogResult):
            _catalog_failed(journal, item, change)
        elif change is not None:
            writes.append((item, change))
    operations.make_backups_durable()  # the catalogs' backups, before any catalog is replaced
    for item, change in writes:
        if change.needs_write:
            journal.append(JournalStep.CATALOG, JournalPhase.START, resource=item.plan.resource_path,
                           sha256=change.result.new_sha256)
    journal.commit()
    written = False
    for item, change in writes:
        try:
            if change.needs_write:
                operations.write_catalog(change.result.path, change.data)
                written = True
            item.catalog = change.result
        except FileProblem as exc:
            _catalog_failed(journal, item, CatalogResult(change.result.path, change.result.backup_path,
                                                         change.result.original_sha256, None, 0, 0, str(exc)))
    if written:
        operations.make_changes_durable()
    for item in work:
        catalog = item.catalog
        if catalog is not None and catalog.error is None:
            journal.append(JournalStep.CATALOG, JournalPhase.DONE, resource=item.plan.resource_path,
                           sha256=catalog.new_sha256, renamed=catalog.renamed, removed=catalog.removed)
        journal.append(JournalStep.RESOURCE, JournalPhase.DONE, resource=item.plan.resource_path)
    journal.commit()


def _catalog_failed(journal: Journal, item: _Work, failure: CatalogResult) -> None:
    journal.append(JournalStep.CATALOG, JournalPhase.FAILED, resource=item.plan.resource_path, error=failure.error)
    item.catalog = failure


@dataclass(slots=True)
class _Work:
    """One resource on its way through a batch."""

    plan: ResourcePlan
    backup_folder: str
    index: int = 0
    results: dict[int, ActionResult] = field(default_factory=dict)  # by the action's index in the plan
    journaled: set[str | None] = field(default_factory=set)  # files whose backups an earlier attempt journaled
    catalog: CatalogResult | None = None

    def finish(self) -> ResourceResult:
        ordered = tuple(self.results[i] for i in range(len(self.plan.actions)))
        return ResourceResult(self.plan, _status(self.plan, ordered, self.catalog), self.backup_folder, ordered,
                              self.catalog)


def _status(plan: ResourcePlan, results: tuple[ActionResult, ...], catalog: CatalogResult | None) -> ResourceStatus:
    failed = sum(1 for r in results if r.outcome is Outcome.FAILED)
    if failed == len(results) and results:
        return ResourceStatus.FAILED
    if failed or plan.conflicts or (catalog is not None and catalog.error):
        return ResourceStatus.PARTIAL
    return ResourceStatus.MITIGATED
