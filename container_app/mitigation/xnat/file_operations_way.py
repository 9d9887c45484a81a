"""The `file-operations` way: XNAT's files API, where XNAT has no mitigation API of its own.

Only with `--rest-file-operations=allow`. Every file that will change is first uploaded to the session
resource `RESOURCE_SURVEY_BACKUP` under its sha256 (no identifying name) and read back to prove the
copy, with a manifest JSON mapping each original to its backup; only then is a file renamed (upload
under the new name, verify, delete the old) or removed. Entries made by an upload are plain
`cat:entry`: each is reported per file. Every step checks XNAT's state first, so a relaunch finishes
from what XNAT holds: a backup already there is verified and reused, an upload already made is
recognised by its bytes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog

from container_app.core.errors import FileProblem
from container_app.core.outcomes import CatalogResult
from container_app.core.plan import Action, FileState, ResourcePlan, with_sha256
from container_app.core.vocabulary import ActionKind, JournalPhase, JournalStep, Outcome, ResourceStatus, Step, XnatWay
from container_app.mitigation.xnat.archive import BACKUP_FORMAT, BACKUP_RESOURCE, Upload, XnatArchive
from container_app.mitigation.xnat.context import WayContext
from container_app.mitigation.xnat.errors import XnatConflictError, XnatNotFoundError, item_failure
from container_app.mitigation.xnat.mount import (
    catalog_flags,
    catalog_sha256,
    mount_catalog,
    mount_sha256,
    mount_staleness,
    read_mount_file,
    read_or_none,
    resource_folder,
    sha256_hex,
)
from container_app.mitigation.xnat.rest_names import delete_refusal, in_plan
from container_app.mitigation.xnat.results import (
    XnatActionResult,
    XnatResourceResult,
    status_after,
    untouched_result,
)
from container_app.mitigation.xnat.target import XnatTarget
from container_app.support.time import iso, now_utc

log = structlog.get_logger("xnat_resource_survey.xnat_executor")

MANIFEST_TYPE = "xnat-resource-survey-backup-manifest"


@dataclass
class _Backup:
    name: str  # the sha256, the backup's file name in RESOURCE_SURVEY_BACKUP
    size: int


class XnatFileOpsExecutor:
    """Renames and removals by upload, verify and delete, with verified backups in XNAT first."""

    def __init__(self, context: WayContext) -> None:
        self.c = context
        context.archive.justify(context.run_id)  # every upload, delete and refresh names this run
        self._verified: set[tuple[str, str]] = set()  # (session, backup name) read back this run

    def execute(self, plan: ResourcePlan, target: XnatTarget, why: str) -> XnatResourceResult:
        c = self.c
        common: dict[str, Any] = {"way": XnatWay.FILE_OPERATIONS, "way_reason": why, "target": target,
                                  "backup_folder": f"xnat:{target.backup_url}"}
        resource = plan.resource_path
        if not plan.actions:
            status = ResourceStatus.PARTIAL if plan.conflicts else ResourceStatus.NOTHING_TO_DO
            return untouched_result(plan, status, "nothing can be done safely" if plan.conflicts else "", **common)
        stale = mount_staleness(c.root, plan)
        if stale is not None:
            return untouched_result(plan, ResourceStatus.STALE, stale, **common)
        listing = c.archive.files(target.url)
        entries = mount_catalog(c.root, plan)
        if entries is not None and {e.uri for e in entries} != set(listing):
            differ = len({e.uri for e in entries} ^ set(listing))
            return untouched_result(plan, ResourceStatus.FAILED, f"the mounted catalog and XNAT's file listing "
                                    f"differ in {differ} name(s): is the mount XNAT session {target.experiment}? "
                                    "Nothing was changed", **common)
        plan = self._with_sha256(plan)
        catalog_before = catalog_sha256(c.root, plan)
        c.journal.append(JournalStep.RESOURCE_START, JournalPhase.DONE, resource=resource,
                         way=XnatWay.FILE_OPERATIONS.value, experiment=target.experiment)
        c.journal.commit()

        # 1. A verified copy of every file that will change, in XNAT, before anything is touched.
        c.archive.ensure_resource(target.backup_url, BACKUP_FORMAT, BACKUP_RESOURCE)
        backups = c.archive.files(target.backup_url)
        results: dict[int, XnatActionResult] = {}
        verified: dict[int, _Backup] = {}
        for index, action in enumerate(plan.actions):
            if action.kind is ActionKind.RETAIN:
                results[index] = XnatActionResult(action, Outcome.DONE)
                continue
            with item_failure(FileProblem) as failure:
                verified[index] = self._backup(plan, target, action, backups)
            if failure.error is not None:
                results[index] = XnatActionResult(action, Outcome.FAILED, None, str(failure.error), Step.BACKUP)
                c.journal.append(JournalStep.BACKUP, JournalPhase.FAILED, resource=resource, path=action.source.path,
                                 error=str(failure.error))
                continue
            c.journal.append(JournalStep.BACKUP, JournalPhase.DONE, resource=resource, path=action.source.path,
                             backup=verified[index].name, sha256=verified[index].name)
        c.journal.commit()

        # 2. The manifest: which original each backup is. Written and read back before any change.
        manifest_name: str | None = None
        if verified:
            with item_failure(FileProblem) as failure:
                manifest_name = self._write_manifest(plan, target, [(plan.actions[i], b) for i, b in
                                                                     sorted(verified.items())])
            if failure.error is not None:
                for index in verified:
                    results[index] = XnatActionResult(plan.actions[index], Outcome.FAILED, None,
                                                      f"the backup manifest could not be written: {failure.error}",
                                                      Step.BACKUP)
                verified.clear()
            else:
                c.journal.append(JournalStep.MANIFEST, JournalPhase.DONE, resource=resource, manifest=manifest_name)
                c.journal.commit()

        # 3. Renames and removals, in the plan's order (a name is freed before it is taken). XNAT deletes by name
        # prefix (rest_names): an action whose delete would take another listed file waits until no such file is
        # listed (it may be one this run removes), and is refused, per file, when none of the others can change that.
        replaceable = frozenset(in_plan(plan, plan.actions[i].source.path) for i in verified
                                if plan.actions[i].kind is ActionKind.REMOVE)
        pending = [index for index in range(len(plan.actions)) if index in verified]
        while pending:
            waiting: list[int] = []
            for index in pending:
                action = plan.actions[index]
                held = {in_plan(plan, plan.actions[i].source.path) for i in waiting}
                takes_held = action.target is not None and in_plan(plan, action.target) in held
                if takes_held or self._delete_blocked(plan, action, listing) is not None:
                    waiting.append(index)  # a rename waits for the file under its new name to go first
                    continue
                results[index] = self._apply(plan, target, plan.actions[index], verified[index], listing, replaceable)
            if len(waiting) == len(pending):
                for index in waiting:
                    action = plan.actions[index]
                    refusal = self._delete_blocked(plan, action, listing) or (
                        "its new name is held by a file that could not be deleted (XNAT deletes by name prefix): "
                        "left as it is")
                    results[index] = XnatActionResult(action, Outcome.FAILED, None, refusal,
                                                      Step.DELETE if action.kind is ActionKind.REMOVE else Step.MOVE,
                                                      backup_name=verified[index].name)
                    c.journal.append(JournalStep.DELETE if action.kind is ActionKind.REMOVE else JournalStep.MOVE,
                                     JournalPhase.FAILED, resource=resource, path=action.source.path, error=refusal)
                break
            pending = waiting
        c.journal.commit()

        # 4. XNAT recomputes the resource's statistics; then see what became of the catalog entries.
        with item_failure() as failure:
            c.archive.refresh_catalog(target.archive_path)
        refresh_error = None if failure.error is None else f"XNAT's catalog refresh failed: {failure.error}"
        ordered = [results[i] for i in range(len(plan.actions))]
        ordered, counts = catalog_flags(c.root, plan, ordered)
        done = [r for r in ordered if r.outcome is Outcome.DONE]
        catalog = None
        if plan.catalog_path is not None:
            catalog = CatalogResult(plan.catalog_path, None, catalog_before, catalog_sha256(c.root, plan),
                                    sum(1 for r in done if r.action.kind is ActionKind.RENAME),
                                    sum(1 for r in done if r.action.kind is ActionKind.REMOVE), refresh_error)
        c.journal.append(JournalStep.RESOURCE, JournalPhase.DONE, resource=resource)
        c.journal.commit()
        status = status_after(ordered, plan, refresh_error is not None)
        reason = None
        if counts.get("downgraded"):
            reason = (f"{counts['downgraded']} catalog entr{'y' if counts['downgraded'] == 1 else 'ies'} became plain "
                      "cat:entry (no UID or instanceNumber): XNAT's own survey and snapshots ignore them")
            log.warning("catalog entries downgraded by file operations", resource=resource, **counts)
        return XnatResourceResult(plan, status, common.pop("backup_folder"), tuple(ordered), catalog, reason,
                                  catalog_entries=counts, manifest=manifest_name, **common)

    # --- the steps ------------------------------------------------------------------------------

    def _with_sha256(self, plan: ResourcePlan) -> ResourcePlan:
        """The plan with a sha256 for every file that will change and that the survey did not hash (schema 1.1).

        The one an earlier attempt journaled with its backup (the file may have moved since), else the mount
        file's, read while its identity shows it unchanged. A file it cannot be told for keeps none, and its
        backup is refused.
        """
        known = self.c.journal.done_values(JournalStep.BACKUP, plan.resource_path, "sha256")
        actions = []
        for action in plan.actions:
            if action.kind is not ActionKind.RETAIN and action.source.sha256 is None:
                sha = known.get(action.source.path)
                if sha is None:
                    with contextlib.suppress(FileProblem):  # refused, with its reason, by the backup step
                        sha = mount_sha256(self.c.root, plan, action.source)
                action = with_sha256(action, sha)
            actions.append(action)
        return replace(plan, actions=tuple(actions))

    def _apply(self, plan: ResourcePlan, target: XnatTarget, action: Action, backup: _Backup,
               listing: dict[str, Any], replaceable: frozenset[str]) -> XnatActionResult:
        c = self.c
        resource = plan.resource_path
        backup_path = f"{target.backup_url}/files/{backup.name}"
        removal = action.kind is ActionKind.REMOVE
        step = Step.DELETE if removal else Step.MOVE
        journal_step = JournalStep.DELETE if removal else JournalStep.MOVE
        c.journal.append(journal_step, JournalPhase.START, resource=resource, path=action.source.path,
                         target=action.target)
        with item_failure(FileProblem) as failure:
            if removal:
                self._remove(plan, target, action, listing)
            else:
                self._rename(plan, target, action, listing, replaceable)
        if failure.error is not None:
            c.journal.append(journal_step, JournalPhase.FAILED, resource=resource, path=action.source.path,
                             error=str(failure.error))
            return XnatActionResult(action, Outcome.FAILED, backup_path, str(failure.error), step,
                                    backup_name=backup.name)
        c.journal.append(journal_step, JournalPhase.DONE, resource=resource, path=action.source.path,
                         target=action.target)
        return XnatActionResult(action, Outcome.DONE, backup_path, backup_name=backup.name,
                                catalog_entry_downgraded=action.kind is ActionKind.RENAME)

    def _delete_blocked(self, plan: ResourcePlan, action: Action, listing: Mapping[str, Any]) -> str | None:
        """Why the delete this action ends with would take another listed file, or None (see rest_names).

        A rename's own upload is counted as listed: its old name is deleted only once the new one exists.
        """
        old = in_plan(plan, action.source.path)
        if old not in listing:
            return None  # nothing of it left to delete (an earlier attempt did it)
        names = set(listing)
        if action.kind is ActionKind.RENAME and action.target:
            names.add(in_plan(plan, action.target))
        return delete_refusal(old, names)

    def _delete(self, target: XnatTarget, name: str, listing: dict[str, Any]) -> None:
        """The one way this executor deletes: never while another listed name begins with `name`."""
        refusal = delete_refusal(name, listing)
        if refusal is not None:
            raise FileProblem(refusal)
        self.c.archive.delete_file(target.url, name)
        listing.pop(name, None)

    def _relist(self, target: XnatTarget, listing: dict[str, Any]) -> None:
        """Take XNAT's listing as it stands now (after an upload), for the prefix check of the next delete."""
        fresh = self.c.archive.files(target.url)
        listing.clear()
        listing.update(fresh)

    def _backup(self, plan: ResourcePlan, target: XnatTarget, action: Action,
                backups: dict[str, dict[str, Any]]) -> _Backup:
        sha = action.source.sha256
        if sha is None:
            raise FileProblem("the file could not be proven the one surveyed (no checksum recorded, and it changed "
                              "since the survey or could not be read); not touched")
        for path in (action.source.path, action.target):
            problem = rest_name_problem(path)
            if problem is not None:
                raise FileProblem(problem)
        key = (target.experiment, sha)
        if key in self._verified:
            return _Backup(sha, action.source.size)
        overwrite = False
        if sha in backups:
            # Uploaded by an earlier run (or another resource with the same bytes): prove it, reuse it.
            if sha256_hex(self.c.archive.download(target.backup_url, sha)) == sha:
                self._verified.add(key)
                return _Backup(sha, action.source.size)
            overwrite = True  # a broken copy under the name its bytes should hash to: nothing to lose
        data = read_mount_file(self.c.root, plan, action.source)
        put_verified(self.c.archive, target.backup_url, sha, data, sha=sha, file_format=BACKUP_FORMAT, content=None,
                     replace_any=True, stray_path=None, overwrite=overwrite)
        backups[sha] = {"Name": sha, "Size": str(len(data))}
        self._verified.add(key)
        return _Backup(sha, len(data))

    def _write_manifest(self, plan: ResourcePlan, target: XnatTarget, items: Iterable[tuple[Action, _Backup]]) -> str:
        c = self.c
        files = [{
            "originalPath": action.source.path, "originalName": in_plan(plan, action.source.path),
            "backupName": backup.name, "sha256": action.source.sha256, "size": backup.size,
            "action": action.kind.value, "newName": in_plan(plan, action.target) if action.target else None,
            "reason": action.reason,
        } for action, backup in items]
        document = {
            "manifestType": MANIFEST_TYPE, "schemaVersion": "1.0", "runId": c.run_id, "createdAt": iso(now_utc()),
            "project": target.project, "subjectId": target.subject, "experimentId": target.experiment,
            "scanId": target.scan, "resourceLabel": target.label, "resourcePath": plan.resource_path,
            "backupResource": BACKUP_RESOURCE, "files": files,
        }
        data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode("utf-8")
        name = f"manifest-{_safe(c.run_id)}-scan{_safe(target.scan)}-{_safe(target.label)}-{sha256_hex(data)[:12]}.json"
        c.archive.upload(target.backup_url, name, data, file_format="JSON")
        if c.archive.download(target.backup_url, name) != data:
            raise FileProblem("the manifest in XNAT reads back different bytes")
        return name

    def _keeper_present(self, plan: ResourcePlan, action: Action, listing: Mapping[str, Any]) -> bool:
        keeper = next((a for a in plan.actions if a.group == action.group and a.kind is not ActionKind.REMOVE), None)
        if keeper is None:
            return True
        return any(in_plan(plan, p) in listing for p in (keeper.source.path, keeper.target) if p)

    def _remove(self, plan: ResourcePlan, target: XnatTarget, action: Action, listing: dict[str, Any]) -> None:
        name = in_plan(plan, action.source.path)
        if name not in listing:
            if not os.path.lexists(os.path.join(resource_folder(self.c.root, plan), *name.split("/"))):
                return  # removed by an earlier attempt, after its backup was verified
            if any(a.kind is ActionKind.RENAME and a.target and in_plan(plan, a.target) == name for a in plan.actions):
                return  # on disk but not in XNAT's catalog (a cut-off upload): the rename's upload replaces it
            raise FileProblem("the file is on disk but not in XNAT's catalog: XNAT's REST API cannot remove it; "
                              "left in place")
        if not self._keeper_present(plan, action, listing):
            raise FileProblem("the copy to keep is gone; this copy stays")
        _check_listed_size(listing[name], action.source)
        self._delete(target, name, listing)

    def _rename(self, plan: ResourcePlan, target: XnatTarget, action: Action, listing: dict[str, Any],
                replaceable: frozenset[str]) -> None:
        """`replaceable`: names whose files this run has backed up and removes (they may be overwritten)."""
        assert action.target is not None
        old, new = in_plan(plan, action.source.path), in_plan(plan, action.target)
        archive = self.c.archive
        if new in listing:
            if sha256_hex(archive.download(target.url, new)) != action.source.sha256:
                raise FileProblem("the new name exists in XNAT and is not this file; never overwritten")
            # Uploaded by an earlier attempt: only the old name is left to remove.
        else:
            if old not in listing:
                raise FileProblem("the file is gone from XNAT (its backup is kept)")
            _check_listed_size(listing[old], action.source)
            data = read_mount_file(self.c.root, plan, action.source)
            row = listing[old]
            fmt, content = row.get("file_format") or None, row.get("file_content") or None
            put_verified(archive, target.url, new, data, sha=action.source.sha256 or "", file_format=fmt,
                         content=content, replace_any=new in replaceable,
                         stray_path=os.path.join(resource_folder(self.c.root, plan), *new.split("/")))
            self.c.journal.append(JournalStep.UPLOAD, JournalPhase.DONE, resource=plan.resource_path,
                                  path=action.source.path, target=action.target)
            self._relist(target, listing)  # the delete below is checked against XNAT's listing after this upload
        if old in listing:
            self._delete(target, old, listing)


def put_verified(archive: XnatArchive, resource_url: str, name: str, data: bytes, *, sha: str,
                 file_format: str | None, content: str | None, replace_any: bool, stray_path: str | None,
                 overwrite: bool = False) -> None:
    """Upload `data` as `name` (a name XNAT's listing did not show) and read it back until XNAT serves it right.

    What may already sit under the name without being in the catalog, or answer a retried upload: our
    own upload, cut off or garbled (a prefix of `data`, or whatever an upload of ours just made), which is
    replaced; for backups (`replace_any`: named by the sha256 their bytes must have, so a wrong copy there
    holds nothing) anything. Any other file stays untouched and the step fails. `stray_path` is where the
    name lies on the archive mount, to look at a file XNAT has on disk but not in its catalog.
    """
    try:
        outcome = archive.upload(resource_url, name, data, overwrite=overwrite, file_format=file_format,
                                 content=content)
    except XnatConflictError:
        outcome = Upload.NAME_TAKEN  # not how XNAT says it (it answers 200 with the duplicates), but just as clear
    for attempt in range(2):
        try:
            existing: bytes | None = archive.download(resource_url, name)
            listed = True
        except XnatNotFoundError:  # not in the catalog; perhaps on disk (a cut-off upload): look through the mount
            existing, listed = read_or_none(stray_path), False
        if listed and existing is not None and sha256_hex(existing) == sha:
            return
        ours = outcome is Upload.WRITTEN or existing is None or data.startswith(existing)
        if not (replace_any or ours):
            raise FileProblem(f"{name} already exists and is not this file; never overwritten")
        if attempt == 1:
            raise FileProblem(f"the copy uploaded to XNAT as {name} reads back different bytes")
        outcome = archive.upload(resource_url, name, data, overwrite=True, file_format=file_format, content=content)


def rest_name_problem(path: str | None) -> str | None:
    """Why XNAT's REST API cannot name this file, or None. Names that are not UTF-8 reach us as surrogate
    escapes; a URL carries UTF-8 only, so such a file is refused here, per file, before anything changes."""
    if path is None:
        return None
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return ("the file name is not UTF-8, and XNAT's REST paths cannot carry it: not touched (rename it on "
                "the archive's file system, or mitigate with the filesystem executor)")
    return None


def _check_listed_size(row: Mapping[str, Any], state: FileState) -> None:
    size = row.get("Size")
    if size not in (None, "") and str(size).isdigit() and int(str(size)) != state.size:
        raise FileProblem("the file in XNAT differs from the surveyed one (size); not touched")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"
