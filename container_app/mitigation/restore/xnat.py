"""Undoing a mitigation made through XNAT's REST API, from its mitigation report.

File operations (`way: file-operations`): every original comes back under its original name from its
verified backup in the session resource `RESOURCE_SURVEY_BACKUP` (named by sha256), checked by sha256
before and after; a renamed copy is removed only once the original is back and only if it still holds
the original's bytes. Never overwrites; safe to rerun. Restored files get plain `cat:entry` catalog
entries (the files API makes no other), which the restore report says.

XNAT's own mitigation (`way: api`) keeps its backups in XNAT's cache folder on the server, which no REST
call restores: those files are reported REFUSED with the cache path, for an administrator.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import structlog

from container_app.core.errors import FileProblem, SurveyError
from container_app.core.paths import safe_relative
from container_app.core.records import FileRestore
from container_app.core.vocabulary import RestoreOutcome
from container_app.mitigation.xnat.archive import BACKUP_RESOURCE, XnatArchive
from container_app.mitigation.xnat.client import XnatClient, quote_segment
from container_app.mitigation.xnat.errors import item_failure
from container_app.mitigation.xnat.file_operations_way import put_verified
from container_app.mitigation.xnat.mount import sha256_hex
from container_app.mitigation.xnat.rest_names import delete_refusal, within
from container_app.support.time import iso, now_utc

log = structlog.get_logger("xnat_resource_survey.restore_xnat")


class _Resource:
    def __init__(self, archive: XnatArchive, root: str, resource: Mapping[str, Any]) -> None:
        target = resource.get("xnatTarget") or {}
        experiment = quote_segment(str(target["experimentId"]))
        self.archive = archive
        self.url = (f"/data/experiments/{experiment}/scans/{quote_segment(str(target['scanId']))}"
                    f"/resources/{quote_segment(str(target['resourceLabel']))}")
        self.backup_url = f"/data/experiments/{experiment}/resources/{BACKUP_RESOURCE}"
        self.archive_path = (f"/archive/projects/{target.get('project')}/subjects/{target.get('subjectId')}"
                             f"/experiments/{target['experimentId']}/scans/{target['scanId']}"
                             f"/resources/{target['resourceLabel']}")
        self.root = root
        self.resource_path = str(resource["path"])
        self.listing = archive.files(self.url)

    def holds(self, name: str, sha: str) -> bool:
        return name in self.listing and sha256_hex(self.archive.download(self.url, name)) == sha

    def mount_path(self, rel: str) -> str | None:
        try:
            return os.path.join(self.root, *safe_relative(rel).split("/"))
        except FileProblem:
            return None

    def restore(self, action: Mapping[str, Any]) -> FileRestore:
        path = action["path"]
        if action["outcome"] != "DONE" or action["action"] == "RETAIN":
            return FileRestore(path, RestoreOutcome.NOT_CHANGED)
        # Names inside the resource (a file in a subfolder is `secondary/x.dcm`), as XNAT's files API names them.
        sha, original = action["sha256"], within(self.resource_path, path)
        renamed = (within(self.resource_path, action["newPath"]) if action["action"] == "RENAME"
                   and action.get("newPath") else None)
        if original in self.listing:
            if not self.holds(original, sha):
                return FileRestore(path, RestoreOutcome.REFUSED, "a different file now has this name; never "
                                   "overwritten")
            self._drop_renamed_copy(renamed, sha)  # a restore interrupted after the upload
            return FileRestore(path, RestoreOutcome.ALREADY_RESTORED)
        backup = action.get("backupName") or sha
        with item_failure() as failure:
            data = self.archive.download(self.backup_url, backup)
        if failure.error is not None:
            return FileRestore(path, RestoreOutcome.REFUSED, f"the backup cannot be read from XNAT: {failure.error}")
        if sha256_hex(data) != sha:
            return FileRestore(path, RestoreOutcome.REFUSED, "the backup in XNAT does not match the recorded sha256")
        try:
            put_verified(self.archive, self.url, original, data, sha=sha, file_format="DICOM", content=None,
                         replace_any=False, stray_path=self.mount_path(path))
        except FileProblem as exc:
            return FileRestore(path, RestoreOutcome.REFUSED, str(exc))
        self.listing = self.archive.files(self.url)  # as it stands after the upload: the delete below is checked on it
        note = self._drop_renamed_copy(renamed, sha)
        return FileRestore(path, RestoreOutcome.RESTORED, note)

    def _drop_renamed_copy(self, renamed: str | None, sha: str) -> str | None:
        if renamed is None or renamed not in self.listing:
            return None
        if not self.holds(renamed, sha):
            return "the renamed copy no longer holds this file's bytes and was left in place"
        refusal = delete_refusal(renamed, self.listing)
        if refusal is not None:  # XNAT would delete other files with it (rest_names): the copy stays, they stay
            return f"the renamed copy was left in place: {refusal}"
        self.archive.delete_file(self.url, renamed)
        self.listing.pop(renamed, None)
        return None


def restore_resource(archive: XnatArchive, root: str, resource: Mapping[str, Any]) -> list[FileRestore]:
    way = resource.get("way")
    done = [a for a in resource["actions"] if a["outcome"] == "DONE" and a["action"] != "RETAIN"]
    if way is None or not done:
        return [FileRestore(a["path"], RestoreOutcome.NOT_CHANGED) for a in resource["actions"]]
    if way == "api":
        cache = resource.get("xnat", {}).get("cachePath") or "XNAT's cache folder"
        why = (f"mitigated by XNAT's own mitigation API, which keeps the originals in {cache} on the XNAT server; "
               "no REST call restores them: an XNAT administrator can copy them back from there")
        return [FileRestore(a["path"], RestoreOutcome.REFUSED if a in done else RestoreOutcome.NOT_CHANGED,
                            why if a in done else None) for a in resource["actions"]]
    target = _Resource(archive, root, resource)
    results = []
    for action in reversed(resource["actions"]):
        with item_failure() as failure:
            results.append(target.restore(action))
        if failure.error is not None:
            results.append(FileRestore(action["path"], RestoreOutcome.REFUSED, f"XNAT error: {failure.error}"))
    with item_failure() as failure:
        archive.refresh_catalog(target.archive_path)
    if failure.error is not None:
        log.warning("catalog refresh after restore failed", resource=resource["path"], error=str(failure.error))
    return results


def _refused_resource(resource: Mapping[str, Any], reason: str) -> list[FileRestore]:
    """A resource left as it is: each file the mitigation changed refused, for `reason`."""
    results = []
    for action in resource["actions"]:
        changed = action["outcome"] == "DONE" and action["action"] != "RETAIN"
        results.append(FileRestore(action["path"], RestoreOutcome.REFUSED if changed else RestoreOutcome.NOT_CHANGED,
                                   reason if changed else None))
    return results


def restore_xnat_report(report: Mapping[str, Any]) -> dict[str, Any]:
    """Restore every resource of a mitigation made with executor xnat; returns the restore report
    (the same document as `restore.restore_report`, with a `note` on resources restored through the files API)."""
    server = report.get("xnatServer") or {}
    client = XnatClient.connect(host=os.environ.get("XNAT_HOST") or server.get("host"))
    try:
        archive = XnatArchive(client)
        archive.justify(str(report["runId"]), "restore")
        resources = []
        for resource in report["resources"]:
            error = None
            try:
                files = restore_resource(archive, report["root"], resource)
            except (SurveyError, OSError, KeyError, TypeError) as exc:
                # One resource XNAT cannot answer for (or the report cannot place) must not stop the others.
                why = str(exc) if isinstance(exc, SurveyError | OSError) else "the report does not place it in XNAT"
                error = f"the resource could not be restored: {why}"
                log.warning("resource not restored", resource=resource.get("path"), reason=error)
                files = _refused_resource(resource, error)
            document: dict[str, Any] = {
                "path": resource["path"],
                "files": [{"path": f.path, "outcome": f.outcome.value, **({"reason": f.reason} if f.reason else {})}
                          for f in files],
            }
            if error is not None:
                document["error"] = error
            if resource.get("way") == "file-operations" and any(f.outcome is RestoreOutcome.RESTORED for f in files):
                document["note"] = ("restored through XNAT's files API: the restored files' catalog entries are "
                                    "plain cat:entry (no UID or instanceNumber)")
            log.info("resource restored", resource=resource["path"], files=len(files), way=resource.get("way"),
                     refused=sum(1 for f in files if f.outcome is RestoreOutcome.REFUSED))
            resources.append(document)
    finally:
        client.close()
    counts = {o.value: 0 for o in RestoreOutcome}
    for resource_document in resources:
        for file in resource_document["files"]:
            counts[file["outcome"]] += 1
    return {"reportType": "restore", "mitigationRunId": report["runId"], "root": report["root"],
            "executor": "xnat", "finishedAt": iso(now_utc()), "resources": resources, "totals": counts}
