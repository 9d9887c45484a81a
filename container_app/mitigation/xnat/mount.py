"""What the archive mount shows: a read-only, live view of the archive inside XNAT.

The executors never write through it; they read it to see whether a resource changed since the
survey, to take the surveyed bytes of a file, and to see what XNAT made of the catalog entries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Sequence

from container_app.core.errors import CatalogError, FileProblem
from container_app.core.paths import safe_relative
from container_app.core.plan import FileState, ResourcePlan
from container_app.core.records import CatalogEntry
from container_app.core.vocabulary import ActionKind, Outcome
from container_app.mitigation.xnat.results import XnatActionResult
from container_app.survey.catalog import is_catalog_name, read_entries


def resource_folder(root: str, plan: ResourcePlan) -> str:
    return root if plan.resource_path == "." else os.path.join(root, *safe_relative(plan.resource_path).split("/"))


def file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mount_staleness(root: str, plan: ResourcePlan) -> str | None:
    """Why the mounted resource no longer looks as the survey saw it, or None."""
    folder = resource_folder(root, plan)
    try:
        present = {e.name for e in os.scandir(folder) if not e.is_dir(follow_symlinks=False)
                   and not is_catalog_name(e.name)}
    except OSError as exc:
        return f"cannot list the resource: {exc.strerror}"
    surveyed = {file_name(f.path) for f in plan.files_at_survey}
    if added := sorted(present - surveyed):
        return f"{len(added)} file(s) added since the survey"
    if gone := sorted(surveyed - present):
        return f"{len(gone)} file(s) gone since the survey"
    for action in plan.actions:
        path = os.path.join(folder, file_name(action.source.path))
        try:
            st = os.lstat(path)
        except OSError:
            return "a file to change is gone since the survey"
        if not stat.S_ISREG(st.st_mode) or st.st_size != action.source.size or st.st_mtime_ns != action.source.mtime_ns:
            return "a file to change changed since the survey (size or modification time)"
    return None


def read_mount_file(root: str, plan: ResourcePlan, state: FileState) -> bytes:
    """The surveyed bytes of a file, read from the mount and proven by the survey's sha256."""
    path = os.path.join(resource_folder(root, plan), file_name(state.path))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise FileProblem(f"cannot read the file from the archive mount: {exc.strerror or exc}") from exc
    if state.sha256 is not None and sha256_hex(data) != state.sha256:
        raise FileProblem("the file changed since the survey (sha256 differs); not touched")
    return data


def mount_catalog(root: str, plan: ResourcePlan) -> tuple[CatalogEntry, ...] | None:
    if plan.catalog_path is None:
        return None
    try:
        return read_entries(os.path.join(root, *safe_relative(plan.catalog_path).split("/")))
    except (OSError, CatalogError):
        return None


def catalog_flags(root: str, plan: ResourcePlan,
                  results: Sequence[XnatActionResult]) -> tuple[list[XnatActionResult], dict[str, int]]:
    """Which renamed files' catalog entries are now plain cat:entry, read from the mounted (live) catalog.

    A renamed file whose entry cannot be found there counts as downgraded when it was renamed by an upload
    (the files API makes nothing else) and as unknown (None) otherwise.
    """
    entries = mount_catalog(root, plan)
    by_uri = {e.uri: e for e in entries} if entries is not None else None
    updated: list[XnatActionResult] = []
    downgraded = 0
    for result in results:
        flag: bool | None = result.catalog_entry_downgraded
        if result.outcome is Outcome.DONE and result.action.kind is ActionKind.RENAME and result.action.target:
            entry = by_uri.get(file_name(result.action.target)) if by_uri is not None else None
            if entry is not None:
                flag = not entry.is_dcm_entry
            downgraded += bool(flag)
        elif result.outcome is Outcome.DONE and result.action.kind is ActionKind.REMOVE:
            flag = False
        updated.append(dataclasses.replace(result, catalog_entry_downgraded=flag))
    counts = {"downgraded": downgraded}
    if entries is not None:
        counts["dcmEntries"] = sum(1 for e in entries if e.is_dcm_entry)
        counts["plainEntries"] = sum(1 for e in entries if not e.is_dcm_entry)
    return updated, counts


def catalog_sha256(root: str, plan: ResourcePlan) -> str | None:
    if plan.catalog_path is None:
        return None
    try:
        with open(os.path.join(root, *safe_relative(plan.catalog_path).split("/")), "rb") as handle:
            return sha256_hex(handle.read())
    except OSError:
        return None


def read_or_none(path: str | None) -> bytes | None:
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None
