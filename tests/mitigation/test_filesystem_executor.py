"""The file-system executor called directly: a small synthesized session, surveyed with the library."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from container_app.core.outcomes import ResourceResult
from container_app.core.plan import MitigationPlan, ResourcePlan, plan_mitigation
from container_app.core.vocabulary import ActionKind, JournalPhase, JournalStep, KeepPolicy, Outcome, ResourceStatus
from container_app.mitigation.filesystem import FilesystemExecutor
from container_app.mitigation.journal import Journal
from tests.conftest import SurveyLib
from tests.helpers.mitigation import legacy_session, snapshot


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def planned(tmp_path: Path, survey_lib: SurveyLib) -> tuple[Path, MitigationPlan]:
    root = legacy_session(tmp_path / "archive", scans=1, per_scan=6, duplicates=2, differing=1)
    report: dict[str, Any] = survey_lib(root)
    return root, plan_mitigation(report, KeepPolicy.NEWEST)


def execute(root: Path, backup: Path, plan: MitigationPlan) -> tuple[list[ResourceResult], Journal]:
    """The results, and the journal as read back from its file (finished resources are forgotten in memory)."""
    path = str(backup / "state" / "journal.jsonl")
    journal = Journal.open(path)
    try:
        executor = FilesystemExecutor(str(root), str(backup), plan.run_id, journal)
        results = executor.execute_batch(plan.resources)
    finally:
        journal.close()
    reread = Journal.open(path)
    reread.close()
    return results, reread


def test_backs_up_renames_and_rewrites_the_catalog(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, plan = planned(tmp_path, survey_lib)
    before = snapshot(root)
    [result], _ = execute(root, tmp_path / "backup", plan)
    assert result.status is ResourceStatus.MITIGATED
    changed = [r for r in result.actions if r.action.kind is not ActionKind.RETAIN]
    assert changed and all(r.outcome is Outcome.DONE for r in changed)
    for r in changed:  # every changed file's backup holds exactly its surveyed bytes
        assert r.backup_path is not None and sha256(Path(r.backup_path)) == r.action.source.sha256
    for r in (r for r in changed if r.action.kind is ActionKind.RENAME):
        assert r.action.target is not None
        assert not (root / r.action.source.path).exists()
        assert sha256(root / r.action.target) == r.action.source.sha256
    for r in (r for r in changed if r.action.kind is ActionKind.REMOVE):
        assert not (root / r.action.source.path).exists()
    assert result.catalog is not None and result.catalog.error is None
    assert sha256(root / result.catalog.path) == result.catalog.new_sha256 != result.catalog.original_sha256
    catalog_text = (root / result.catalog.path).read_text("utf-8")
    assert all(Path(r.action.target).name in catalog_text for r in changed if r.action.target)
    assert len(snapshot(root)) < len(before)  # the surplus copies are gone


def test_a_rerun_with_the_same_journal_changes_nothing_more(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, plan = planned(tmp_path, survey_lib)
    backup = tmp_path / "backup"
    [first], _ = execute(root, backup, plan)
    after_first, backups_first = snapshot(root), snapshot(backup / "P1")
    [second], journal = execute(root, backup, plan)
    assert snapshot(root) == after_first and snapshot(backup / "P1") == backups_first
    assert second.status is ResourceStatus.MITIGATED
    assert [r.outcome for r in second.actions] == [r.outcome for r in first.actions]
    assert second.catalog is not None and second.catalog.new_sha256 == first.catalog.new_sha256  # type: ignore[union-attr]
    # The second run journals no new backup, move or delete: it found them done.
    resource = plan.resources[0].resource_path
    moves = [r for r in journal.for_resource(resource) if r.step is JournalStep.MOVE and r.phase is JournalPhase.START]
    assert len(moves) == sum(1 for r in first.actions if r.action.kind is ActionKind.RENAME)


def test_a_rename_never_overwrites_a_file_at_the_target(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, plan = planned(tmp_path, survey_lib)
    rename = next(a for a in plan.resources[0].actions if a.kind is ActionKind.RENAME)
    assert rename.target is not None
    # Another file takes the expected name after the survey (the folder's listing is then changed too,
    # so the stale check would refuse: take it after the stale check, as a racing writer would).
    executor_journal = Journal.open(str(tmp_path / "backup" / "journal.jsonl"))
    executor = FilesystemExecutor(str(root), str(tmp_path / "backup"), plan.run_id, executor_journal)
    original_stale = executor.is_stale

    def stale_then_race(resource_plan: ResourcePlan) -> str | None:
        reason = original_stale(resource_plan)
        (root / rename.target).write_bytes(b"someone else's file")  # type: ignore[operator]
        return reason

    executor.is_stale = stale_then_race  # type: ignore[method-assign,assignment]
    [result] = executor.execute_batch(plan.resources)
    executor_journal.close()
    assert (root / rename.target).read_bytes() == b"someone else's file"
    failed = next(r for r in result.actions if r.action.source.path == rename.source.path)
    # The survey hashed no single file (schema 1.1): the result carries the sha256 its backup proved.
    assert rename.source.sha256 is None and sha256(root / rename.source.path) == failed.action.source.sha256
    assert failed.outcome is Outcome.FAILED and "never overwritten" in (failed.error or "")
    assert result.status is ResourceStatus.PARTIAL


def test_a_file_changed_after_the_survey_makes_the_resource_stale(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, plan = planned(tmp_path, survey_lib)
    action = next(a for a in plan.resources[0].actions if a.kind is not ActionKind.RETAIN)
    changed = root / action.source.path
    stat = changed.stat()
    data = bytearray(changed.read_bytes())
    data[-1] ^= 0xFF  # same size, same modification time: only the sha256 tells
    changed.write_bytes(bytes(data))
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    before = snapshot(root)
    [result], journal = execute(root, tmp_path / "backup", plan)
    assert result.status is ResourceStatus.STALE and "sha256" in (result.reason or "")
    assert all(r.outcome is Outcome.SKIPPED for r in result.actions)
    assert snapshot(root) == before
    # Beside the attempt's temporary token, only the finding: no backup, move or delete was begun.
    records = [r for r in journal.for_resource(plan.resources[0].resource_path) if r.step is not JournalStep.TEMPORARY]
    [record] = records
    assert (record.step, record.phase) == (JournalStep.RESOURCE, JournalPhase.STALE)


def _rewrite_in_place(path: Path) -> None:
    """Change one byte, keeping the size and the modification time: only the inode's change time tells."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_file_the_survey_did_not_hash_is_proven_by_its_identity(tmp_path: Path, survey_lib: SurveyLib) -> None:
    root, plan = planned(tmp_path, survey_lib)
    rename = next(a for a in plan.resources[0].actions if a.kind is ActionKind.RENAME and a.group is None)
    assert rename.source.sha256 is None and rename.source.inode and rename.source.ctime_ns  # schema 1.1
    _rewrite_in_place(root / rename.source.path)
    before = snapshot(root)
    [result], _ = execute(root, tmp_path / "backup", plan)
    assert result.status is ResourceStatus.STALE and "inode" in (result.reason or "")
    assert all(r.outcome is Outcome.SKIPPED for r in result.actions)
    assert snapshot(root) == before


def test_a_write_while_the_backup_is_made_is_refused(tmp_path: Path, survey_lib: SurveyLib,
                                                     monkeypatch: Any) -> None:
    """The stale check passed; the file is rewritten (same size and modification time) as it is copied."""
    from container_app.support import faults

    root, plan = planned(tmp_path, survey_lib)
    renames = [a for a in plan.resources[0].actions if a.kind is ActionKind.RENAME and a.group is None]
    victim = renames[0]
    copies = iter(range(1000))

    def rewrite_first_copy() -> None:
        if next(copies) == _index_of_first_unhashed(plan.resources[0], victim):
            _rewrite_in_place(root / victim.source.path)

    monkeypatch.setattr(faults, "before_backup_write", rewrite_first_copy)
    [result], _ = execute(root, tmp_path / "backup", plan)
    failed = next(r for r in result.actions if r.action.source.path == victim.source.path)
    assert failed.outcome is Outcome.FAILED and "changed since the survey" in (failed.error or "")
    assert (root / victim.source.path).exists() and not (root / (victim.target or "")).exists()
    done = [r for r in result.actions if r.action.kind is ActionKind.RENAME and r.outcome is Outcome.DONE]
    assert len(done) == len([a for a in plan.resources[0].actions if a.kind is ActionKind.RENAME]) - 1
    for r in done:  # every other file moved, proven by the sha256 of its backup
        assert r.action.source.sha256 == sha256(root / (r.action.target or "")) == sha256(Path(r.backup_path or ""))


def _index_of_first_unhashed(resource: ResourcePlan, victim: Any) -> int:
    """Which backup copy (the catalog's is the first) is the victim's."""
    copied = [a for a in resource.actions if a.kind is not ActionKind.RETAIN]
    return 1 + copied.index(victim)


def test_a_rerun_removes_exactly_the_temporaries_of_earlier_attempts(tmp_path: Path, survey_lib: SurveyLib) -> None:
    """A kill while the new catalog was written leaves its temporary beside the catalog, in the archive: the
    rerun removes it (its token is journaled), and a look-alike that no attempt journaled stays."""
    from contextlib import ExitStack

    from container_app.support.fsutil import temporary_name

    root, plan = planned(tmp_path, survey_lib)
    [resource] = plan.resources
    assert resource.catalog_path is not None
    backup = tmp_path / "backup"
    journal = Journal.open(str(backup / "state" / "journal.jsonl"))
    try:
        first = FilesystemExecutor(str(root), str(backup), plan.run_id, journal)
        with ExitStack() as locks:
            assert first.admit(resource, locks) is None
        journal.commit()
        catalog = root / resource.catalog_path
        left = catalog.parent / temporary_name(catalog.name, first.token)
        look_alike = catalog.parent / temporary_name(catalog.name, "f" * 16)
        left.write_bytes(b"half a catalog")
        look_alike.write_bytes(b"not ours")
        first.close()
        second = FilesystemExecutor(str(root), str(backup), plan.run_id, journal)
        [result] = second.execute_batch(plan.resources)
        second.close()
    finally:
        journal.close()
    # Ours is gone before the stale check; the look-alike is someone else's file: kept, and the resource
    # left alone for it (a file added since the survey).
    assert not left.exists() and look_alike.read_bytes() == b"not ours"
    assert result.status is ResourceStatus.STALE and look_alike.name in (result.reason or "")
