"""Undoing a mitigation from its report: every file back under its original name with its original bytes.

Works backwards through each resource's actions, checks every file by sha256 before and after,
never overwrites, and refuses (per file, with a reason) where the archive changed since. Safe to
rerun: what is already restored is recognised and left alone.
"""

from __future__ import annotations

import os
from typing import Any

import structlog

from container_app.core.errors import FileProblem
from container_app.core.paths import safe_relative
from container_app.core.records import FileRestore
from container_app.core.vocabulary import RestoreOutcome
from container_app.support.fsutil import sha256_of, verified_copy, write_atomically
from container_app.support.time import iso, now_utc

log = structlog.get_logger("xnat_resource_survey.restore")


def _abs(root: str, rel: str) -> str:
    return os.path.join(root, *safe_relative(rel).split("/"))


def restore_action(root: str, action: dict[str, Any]) -> FileRestore:
    """Put one file back as it was before the mitigation."""
    path = action["path"]
    if action["outcome"] != "DONE" or action["action"] == "RETAIN":
        return FileRestore(path, RestoreOutcome.NOT_CHANGED)
    original, sha = _abs(root, path), action["sha256"]
    backup = action["backupPath"]
    if os.path.lexists(original):
        if os.path.isfile(original) and sha256_of(original) == sha:
            if action["action"] == "RENAME" and action["newPath"]:
                _drop_renamed_copy(root, action)
            return FileRestore(path, RestoreOutcome.ALREADY_RESTORED)
        return FileRestore(path, RestoreOutcome.REFUSED, "a different file now has this name; never overwritten")
    if action["action"] == "RENAME":
        renamed = _abs(root, action["newPath"])
        if os.path.isfile(renamed) and sha256_of(renamed) == sha:
            try:
                os.link(renamed, original, follow_symlinks=False)
                os.unlink(renamed)
            except OSError as exc:
                return FileRestore(path, RestoreOutcome.REFUSED, f"move back failed: {exc.strerror or exc}")
            return FileRestore(path, RestoreOutcome.RESTORED)
        # The renamed file is gone or changed: the backup still holds the original bytes.
    if backup is None or not os.path.isfile(backup):
        return FileRestore(path, RestoreOutcome.REFUSED, "no backup found at the recorded path")
    try:
        verified_copy(backup, original, sha)
    except FileProblem as exc:
        return FileRestore(path, RestoreOutcome.REFUSED, str(exc))
    return FileRestore(path, RestoreOutcome.RESTORED)


def _drop_renamed_copy(root: str, action: dict[str, Any]) -> None:
    """After a crash between link and unlink of a move back, the new name may still point at the file."""
    renamed = _abs(root, action["newPath"])
    original = _abs(root, action["path"])
    if os.path.lexists(renamed) and os.path.samefile(renamed, original):
        os.unlink(renamed)


def restore_catalog(root: str, catalog: dict[str, Any]) -> FileRestore:
    path = catalog["path"]
    current = _abs(root, path)
    backup = catalog["backupPath"]
    if backup is None or catalog["originalSha256"] is None:
        return FileRestore(path, RestoreOutcome.NOT_CHANGED)
    try:
        now = sha256_of(current)
    except OSError as exc:
        return FileRestore(path, RestoreOutcome.REFUSED, f"cannot read the catalog: {exc.strerror}")
    if now == catalog["originalSha256"]:
        return FileRestore(path, RestoreOutcome.ALREADY_RESTORED)
    if now != catalog["newSha256"]:
        return FileRestore(path, RestoreOutcome.REFUSED, "the catalog changed since the mitigation; left as it is")
    with open(backup, "rb") as handle:
        data = handle.read()
    if sha256_of(backup) != catalog["originalSha256"]:
        return FileRestore(path, RestoreOutcome.REFUSED, "the catalog backup does not match its recorded sha256")
    write_atomically(current, data)
    return FileRestore(path, RestoreOutcome.RESTORED)


def restore_report(report: dict[str, Any]) -> dict[str, Any]:
    """Restore every resource of a mitigation report; returns the restore report."""
    root = report["root"]
    resources = []
    for resource in report["resources"]:
        results = [restore_action(root, a) for a in reversed(resource["actions"])]
        if resource["catalog"] is not None:
            results.append(restore_catalog(root, resource["catalog"]))
        refused = [r for r in results if r.outcome is RestoreOutcome.REFUSED]
        log.info("resource restored", resource=resource["path"], files=len(results), refused=len(refused))
        resources.append({
            "path": resource["path"],
            "files": [{"path": r.path, "outcome": r.outcome.value, **({"reason": r.reason} if r.reason else {})}
                      for r in results],
        })
    counts = {o.value: 0 for o in RestoreOutcome}
    for resource in resources:
        for file in resource["files"]:
            counts[file["outcome"]] += 1
    return {"reportType": "restore", "mitigationRunId": report["runId"], "root": root, "finishedAt": iso(now_utc()),
            "resources": resources, "totals": counts}
