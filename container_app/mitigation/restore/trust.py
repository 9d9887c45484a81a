"""The first pass of a restore: a mitigation report read as untrusted input, checked whole before any change.

`restore --report` takes no ROOT, and the report is a file that (inside XNAT) project members can edit,
so the report alone cannot be believed: the trust anchor is the run's own state folder in BACKUP
(`BACKUP/.xnat-resource-survey/<run id>/`), where mitigate wrote its copy of the report and its
`run.json`. The report given must be the same document as that copy (parsed JSON, equal), `root` the
one `run.json` recorded, every path from it a plain ROOT-relative path inside its resource, and every
backup inside its resource's backup folder for this run. Any violation refuses the whole restore with
every problem found (up to a few), before anything is touched.

`locked_state_folder` finds that folder below BACKUP (never through a link) and holds the run's lock on
it for the restore. The result is a `RestorePlan`: typed records holding only checked paths, ROOT- or
BACKUP-relative, so the executor never sees a path from the report it would have to check again.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from container_app.core.errors import FileProblem, LockedError, ReportError
from container_app.core.report_checks import MAX_PROBLEMS_SHOWN, path_problem
from container_app.core.vocabulary import ActionKind, Outcome
from container_app.mitigation.journal import STATE_FOLDER, lock_descriptor
from container_app.mitigation.run_state import RUN_RECORD
from container_app.reports.mitigation import MITIGATION_REPORT
from container_app.support.anchored import Anchor
from container_app.support.fsutil import is_inside

#: The run's copy of its report is read whole; a bound keeps a planted giant file from exhausting memory.
MAX_REPORT_BYTES = 4 << 30


@dataclass(frozen=True, slots=True)
class FileToRestore:
    """One action of the mitigation, as restore sees it: checked paths only."""

    path: str  # ROOT-relative: the original name, where the file goes back
    kind: ActionKind
    changed: bool  # False: the mitigation never changed this file (retained, skipped or failed)
    new_path: str | None = None  # ROOT-relative: where a rename put it
    sha256: str | None = None  # the original's bytes
    backup: str | None = None  # BACKUP-relative
    backup_shown: str | None = None  # the backup's path as the report gives it, for messages


@dataclass(frozen=True, slots=True)
class CatalogToRestore:
    path: str  # ROOT-relative
    backup: str | None  # BACKUP-relative
    backup_shown: str | None
    original_sha256: str | None
    new_sha256: str | None

    @property
    def changed(self) -> bool:
        """Whether the mitigation rewrote it (a catalog it could not rewrite is as it was)."""
        return (self.original_sha256 is not None and self.new_sha256 is not None
                and self.new_sha256 != self.original_sha256)


@dataclass(frozen=True, slots=True)
class ResourceToRestore:
    path: str  # ROOT-relative
    files: tuple[FileToRestore, ...]  # in restore order: the reverse of the mitigation's
    catalog: CatalogToRestore | None

    @property
    def changed(self) -> bool:
        return any(f.changed for f in self.files) or (self.catalog is not None and self.catalog.changed)


@dataclass(frozen=True, slots=True)
class RestorePlan:
    run_id: str
    root: str  # absolute, from the verified report
    backup_root: str  # absolute, from the verified report
    resources: tuple[ResourceToRestore, ...]


def state_folder_rel(run_id: str) -> str:
    return f"{STATE_FOLDER}/{run_id}"


@contextlib.contextmanager
def locked_state_folder(report_path: str, backup: Anchor, run_id: str) -> Iterator[Anchor]:
    """The run's state folder, locked for the restore (a mitigation or another restore of the run holds it too)."""
    try:
        state = backup.descend(state_folder_rel(run_id))
    except FileNotFoundError:
        raise ReportError(f"the run's state folder {backup.display(state_folder_rel(run_id))} is missing: without "
                          f"the run's own copy of its mitigation report, {report_path} cannot be trusted (it may "
                          "have been edited), so nothing was restored") from None
    except FileProblem as exc:
        raise ReportError(f"the run's state folder cannot be opened ({exc}); nothing was restored") from None
    with state:
        try:
            lock_descriptor(state.fd, f"run {run_id}", state.path)
        except LockedError:
            raise LockedError(f"run {run_id} is in use by another process (its mitigation, or a restore of it); "
                              "nothing was restored. Try again once it has finished") from None
        yield state


def _refused(report_path: str, problems: list[str]) -> ReportError:
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + ("; ..." if len(problems) > MAX_PROBLEMS_SHOWN else "")
    return ReportError(f"{report_path} cannot be used for a restore, nothing was changed: {shown}")


def _plain_absolute(path: object) -> bool:
    return isinstance(path, str) and os.path.isabs(path) and os.path.normpath(path) == path and "\0" not in path


def check_locations(report_path: str, report: Mapping[str, Any]) -> None:
    """The report's run id, ROOT and BACKUP, before BACKUP is opened to find the run's state folder."""
    problems = []
    run_id = report.get("runId")
    if path_problem(run_id) or not isinstance(run_id, str) or "/" in run_id or run_id == ".":
        problems.append(f"its run id {run_id!r} is not a plain folder name")
    root, backup_root = report.get("root"), report.get("backupRoot")
    for name, value in (("root", root), ("backupRoot", backup_root)):
        if not _plain_absolute(value):
            problems.append(f"its {name} {value!r} is not a plain absolute path")
    if not problems:
        assert isinstance(root, str) and isinstance(backup_root, str)
        if is_inside(root, backup_root) or is_inside(backup_root, root):
            problems.append("its root and backupRoot hold one another (mitigate never allows that)")
    if problems:
        raise _refused(report_path, problems)


def check_against_state(report_path: str, report: Mapping[str, Any], state: Anchor,
                        report_sha256: str | None = None) -> None:
    """The report must be the document mitigate kept in the run's state folder, for the ROOT it recorded.

    `report_sha256`: that of the bytes `report` was parsed from. When the kept copy has the same bytes it
    is the same document, and is not parsed a second time (a second copy of a big report in memory)."""
    copy_path = state.display(MITIGATION_REPORT)
    try:
        same_bytes = report_sha256 is not None and state.sha256(MITIGATION_REPORT) == report_sha256
        kept = report if same_bytes else json.loads(state.read_bytes(MITIGATION_REPORT, limit=MAX_REPORT_BYTES))
    except FileNotFoundError:
        raise ReportError(f"the run's own copy of its mitigation report is missing ({copy_path}): without it "
                          f"{report_path} cannot be trusted (it may have been edited), so nothing was "
                          "restored") from None
    except (OSError, FileProblem, ValueError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReportError(f"the run's own copy of its mitigation report ({copy_path}) cannot be read ({why}): "
                          f"without it {report_path} cannot be trusted, so nothing was restored") from None
    if kept != report:
        raise ReportError(f"{report_path} differs from the copy run {report['runId']} kept in its state folder "
                          f"({copy_path}): it may have been edited, so nothing was restored. Restore from that copy "
                          f"(restore --report {copy_path}) if it is the run meant")
    try:
        record = json.loads(state.read_bytes(RUN_RECORD, limit=1 << 20))
    except FileNotFoundError:
        return  # a run started before run.json existed: its copy of the report is the whole anchor
    except (OSError, FileProblem, ValueError) as exc:
        raise ReportError(f"the run's record {state.display(RUN_RECORD)} cannot be read ({exc}); nothing was "
                          "restored") from None
    recorded = record.get("root") if isinstance(record, dict) else None
    if not isinstance(recorded, str) or os.path.realpath(recorded) != os.path.realpath(report["root"]):
        raise ReportError(f"{report_path} names the root {report['root']!r}, but run {report['runId']} was made on "
                          f"{recorded!r} ({state.display(RUN_RECORD)}); nothing was restored")


def _inside(resource: str, path: str) -> bool:
    return resource == "." or path.startswith(resource + "/")


def _backup_rel(backup_root: str, folder_rel: str, shown: object) -> tuple[str | None, str | None]:
    """(BACKUP-relative path of a backup, problem): inside its resource's backup folder, or a problem."""
    if not isinstance(shown, str):
        return None, "is not text"
    prefix = backup_root.rstrip("/") + "/"
    if not shown.startswith(prefix):
        return None, "is not inside BACKUP"
    rel = shown[len(prefix):]
    problem = path_problem(rel)
    if problem or rel == ".":
        return None, f"{problem or 'is BACKUP itself'} below BACKUP"
    if not rel.startswith(folder_rel + "/"):
        return None, "is not inside its resource's backup folder"
    return rel, None


class _ResourceCheck:
    """The problems of one resource, and its records once it has none."""

    def __init__(self, backup_root: str, run_id: str, resource: Mapping[str, Any]) -> None:
        self.backup_root, self.run_id, self.resource = backup_root, run_id, resource
        self.where = resource.get("path")
        self.problems: list[str] = []

    def _problem(self, text: str) -> None:
        self.problems.append(f"resource {self.where!r}: {text}")

    def _archive_path(self, what: str, path: object) -> str | None:
        problem = path_problem(path)
        if problem is None and isinstance(path, str) and path == ".":
            problem = "is the resource's root"
        if problem is None and isinstance(path, str) and isinstance(self.where, str) and not _inside(self.where, path):
            problem = "is not inside its resource"
        if problem:
            self._problem(f"{what} {path!r} {problem}")
            return None
        assert isinstance(path, str)
        return path

    def _backup_folder(self) -> str | None:
        folder = self.resource.get("backupFolder")
        prefix = self.backup_root.rstrip("/") + "/"
        rel = folder[len(prefix):] if isinstance(folder, str) and folder.startswith(prefix) else None
        parts = rel.split("/") if rel is not None and path_problem(rel) is None and rel != "." else []
        # This run's folder, never the state folders (the journals and reports of every run live there).
        if not parts or self.run_id not in parts or parts[0] == STATE_FOLDER:
            self._problem(f"its backup folder {folder!r} is not a folder of run {self.run_id} inside BACKUP")
            return None
        assert rel is not None
        return rel

    def _backup(self, what: str, folder_rel: str | None, shown: object) -> str | None:
        if shown is None or folder_rel is None:
            return None
        rel, problem = _backup_rel(self.backup_root, folder_rel, shown)
        if problem:
            self._problem(f"the backup of {what} {shown!r} {problem}")
        return rel

    def records(self) -> ResourceToRestore | None:
        if path_problem(self.where):
            self._problem(f"its path {path_problem(self.where)}")
            return None
        assert isinstance(self.where, str)
        folder_rel = self._backup_folder()
        files = []
        for action in reversed(self.resource.get("actions", [])):
            path = self._archive_path("file", action.get("path"))
            kind = ActionKind(action["action"])
            changed = action.get("outcome") == Outcome.DONE.value and kind is not ActionKind.RETAIN
            new_path = action.get("newPath")
            if new_path is not None:
                new_path = self._archive_path("the new name", new_path)
            if changed and action.get("sha256") is None:
                self._problem(f"file {action.get('path')!r} was changed but has no recorded sha256")
            if changed and kind is ActionKind.RENAME and action.get("newPath") is None:
                self._problem(f"file {action.get('path')!r} was renamed but has no new name")
            backup = self._backup(f"file {action.get('path')!r}", folder_rel, action.get("backupPath"))
            if path is not None:
                files.append(FileToRestore(path, kind, changed, new_path, action.get("sha256"), backup,
                                           action.get("backupPath")))
        catalog = None
        document = self.resource.get("catalog")
        if document is not None:
            path = self._archive_path("catalog", document.get("path"))
            backup = self._backup("the catalog", folder_rel, document.get("backupPath"))
            if path is not None:
                catalog = CatalogToRestore(path, backup, document.get("backupPath"), document.get("originalSha256"),
                                           document.get("newSha256"))
        if self.problems:
            return None
        return ResourceToRestore(self.where, tuple(files), catalog)


def _every_problem(plan_problems: list[str], resources: list[ResourceToRestore]) -> Iterator[str]:
    """What spans resources: a resource or a file's original name listed twice."""
    yield from plan_problems
    seen_resources: set[str] = set()
    seen_files: set[str] = set()
    for resource in resources:
        if resource.path in seen_resources:
            yield f"resource {resource.path!r} is listed twice"
        seen_resources.add(resource.path)
        for file in resource.files:
            if file.changed and file.path in seen_files:
                yield f"file {file.path!r} is restored twice"
            seen_files.add(file.path)


def restore_plan(report_path: str, report: Mapping[str, Any]) -> RestorePlan:
    """Every resource's records, or ReportError naming what makes the report unusable (nothing touched).
    `check_locations` and `check_against_state` come first: this reads paths from a report already trusted."""
    run_id, backup_root = report["runId"], report["backupRoot"]
    problems: list[str] = []
    resources = []
    for resource in report["resources"]:
        check = _ResourceCheck(backup_root, run_id, resource)
        records = check.records()
        problems += check.problems
        if records is not None:
            resources.append(records)
        if len(problems) > MAX_PROBLEMS_SHOWN:
            break
    problems = list(_every_problem(problems, resources))
    if problems:
        raise _refused(report_path, problems)
    return RestorePlan(run_id, report["root"], backup_root, tuple(resources))
