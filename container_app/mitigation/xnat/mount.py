"""What the archive mount shows: a read-only view of the archive inside XNAT.

The executors never write through it; they read it to see whether a resource changed since the survey,
to take the surveyed bytes of a file, and to see what XNAT made of the catalog entries. Every read goes
through support.anchored (ROOT held open, no link in any component followed, FIFOs refused without
blocking), and files are named by their path inside the resource (`secondary/x.dcm`), as the catalog's
URIs name them.

A session mount is a live view; a project mount of a project with shared sessions is the Container
Service's snapshot instead (support.shared_data): there, what XNAT did is confirmed from XNAT's listing
(`listing_verdict`), not from the mount.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Collection, Sequence

from container_app.core.catalog_text import parse_catalog
from container_app.core.errors import CatalogError, FileProblem
from container_app.core.paths import safe_relative
from container_app.core.plan import FileState, ResourcePlan
from container_app.core.records import CatalogEntry
from container_app.core.vocabulary import ActionKind, Outcome
from container_app.mitigation.filesystem import within_resource
from container_app.mitigation.xnat.results import XnatActionResult, XnatResourceResult
from container_app.support.anchored import Anchor, components
from container_app.support.fsutil import sha256_of_fd
from container_app.support.shared_data import is_shared_data_tree
from container_app.survey.catalog import is_catalog_name

__all__ = ["catalog_flags", "catalog_sha256", "file_name", "in_resource", "is_shared_data_tree", "listing_verdict",
           "mount_catalog", "mount_sha256", "mount_staleness", "read_mount_file", "read_or_none", "resource_folder",
           "sha256_hex"]

#: A catalog larger than this is not read back from the mount (the survey reads them in pieces; here one
#: is only looked at for its entries' types after XNAT rewrote it).
CATALOG_READ_LIMIT = 256 << 20


def resource_folder(root: str, plan: ResourcePlan) -> str:
    """The resource's folder as a path, for messages and existence checks only (reads go through Anchor)."""
    return root if plan.resource_path == "." else os.path.join(root, *safe_relative(plan.resource_path).split("/"))


def file_name(path: str) -> str:
    """The last component of a path (server_reports matches XNAT's absolute server paths with it)."""
    return path.rsplit("/", 1)[-1]


#: A ROOT-relative path as a path inside its resource (`secondary/x.dcm`); FileProblem if outside: the
#: filesystem executor's rule, so both executors name a resource's files alike.
in_resource = within_resource


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _present(resource: Anchor, folders: Collection[str]) -> set[str]:
    """Every non-folder entry of the given folders of a resource, catalogs left out, as resource paths."""
    present: set[str] = set()
    for rel in folders:
        prefix = "" if rel == "." else rel + "/"
        present |= {prefix + name for name, st in resource.list(rel)
                    if not stat.S_ISDIR(st.st_mode) and not is_catalog_name(name)}
    return present


def mount_staleness(root: str, plan: ResourcePlan) -> str | None:
    """Why the mounted resource no longer looks as the survey saw it, or None."""
    try:
        with Anchor.open(root) as anchor, anchor.descend(plan.resource_path) as resource:
            surveyed = {in_resource(plan, f.path) for f in plan.files_at_survey}
            folders = sorted({p.rsplit("/", 1)[0] for p in surveyed if "/" in p} | {"."})
            present = _present(resource, folders)
            if added := sorted(present - surveyed):
                return f"{len(added)} file(s) added since the survey"
            if gone := sorted(surveyed - present):
                return f"{len(gone)} file(s) gone since the survey"
            for action in plan.actions:
                st = resource.lstat(in_resource(plan, action.source.path))
                if st is None:
                    return "a file to change is gone since the survey"
                if (not stat.S_ISREG(st.st_mode) or st.st_size != action.source.size
                        or st.st_mtime_ns != action.source.mtime_ns):
                    return "a file to change changed since the survey (size or modification time)"
                if action.source.sha256 is None and not action.source.same_identity(st):
                    return "a file to change changed since the survey (its inode or change time)"
    except FileProblem as exc:
        return f"cannot read the resource: {exc}"
    except OSError as exc:
        return f"cannot read the resource: {exc.strerror or exc}"
    return None


def mount_sha256(root: str, plan: ResourcePlan, state: FileState) -> str:
    """The sha256 of a file the survey did not hash, read from the mount while its identity shows it unchanged.

    Its stat is asked once its bytes are read: a write before or while they were read has set its change time.
    """
    try:
        with Anchor.open(root) as anchor, anchor.descend(plan.resource_path) as resource:
            fd = resource.open_regular(in_resource(plan, state.path))
            try:
                digest = sha256_of_fd(fd)
                unchanged = state.same_identity(os.fstat(fd))
            finally:
                os.close(fd)
    except FileProblem as exc:
        raise FileProblem(f"cannot read the file from the archive mount: {exc}") from exc
    except OSError as exc:
        raise FileProblem(f"cannot read the file from the archive mount: {exc.strerror or exc}") from exc
    if not unchanged:
        raise FileProblem("the file changed since the survey (size, times or inode); not touched")
    return digest


def read_mount_file(root: str, plan: ResourcePlan, state: FileState) -> bytes:
    """The surveyed bytes of a file, read from the mount and proven by the survey's sha256."""
    try:
        with Anchor.open(root) as anchor, anchor.descend(plan.resource_path) as resource:
            data = resource.read_bytes(in_resource(plan, state.path))
    except FileProblem as exc:
        raise FileProblem(f"cannot read the file from the archive mount: {exc}") from exc
    except OSError as exc:
        raise FileProblem(f"cannot read the file from the archive mount: {exc.strerror or exc}") from exc
    if state.sha256 is not None and sha256_hex(data) != state.sha256:
        raise FileProblem("the file changed since the survey (sha256 differs); not touched")
    return data


def _catalog_bytes(root: str, plan: ResourcePlan) -> bytes | None:
    if plan.catalog_path is None:
        return None
    try:
        with Anchor.open(root) as anchor:
            return anchor.read_bytes("/".join(components(plan.catalog_path)), limit=CATALOG_READ_LIMIT)
    except (OSError, FileProblem):
        return None


def mount_catalog(root: str, plan: ResourcePlan) -> tuple[CatalogEntry, ...] | None:
    data = _catalog_bytes(root, plan)
    if data is None:
        return None
    try:
        return parse_catalog(data).entries
    except CatalogError:
        return None


def catalog_flags(root: str, plan: ResourcePlan,
                  results: Sequence[XnatActionResult]) -> tuple[list[XnatActionResult], dict[str, int]]:
    """Which renamed files' catalog entries are now plain cat:entry, read from the mounted (live) catalog.

    Entries are matched by their URI, the file's path inside the resource. A renamed file whose entry
    cannot be found there counts as downgraded when it was renamed by an upload (the files API makes
    nothing else) and as unknown (None) otherwise.
    """
    entries = mount_catalog(root, plan)
    by_uri = {e.uri: e for e in entries} if entries is not None else None
    updated: list[XnatActionResult] = []
    downgraded = 0
    for result in results:
        flag: bool | None = result.catalog_entry_downgraded
        if result.outcome is Outcome.DONE and result.action.kind is ActionKind.RENAME and result.action.target:
            entry = None
            if by_uri is not None:
                try:
                    entry = by_uri.get(in_resource(plan, result.action.target))
                except FileProblem:
                    entry = None
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
    data = _catalog_bytes(root, plan)
    return None if data is None else sha256_hex(data)


def expected_after(result: XnatResourceResult) -> set[str]:
    """The files the resource should hold after what the result says was done, as resource paths."""
    plan = result.plan
    names = {in_resource(plan, f.path) for f in plan.files_at_survey}
    for action_result in result.actions:
        action = action_result.action
        if action_result.outcome is not Outcome.DONE or action.kind is ActionKind.RETAIN:
            continue
        names.discard(in_resource(plan, action.source.path))
        if action.kind is ActionKind.RENAME and action.target:
            names.add(in_resource(plan, action.target))
    return names


def listing_verdict(result: XnatResourceResult, listed: Collection[str]) -> str | None:
    """How XNAT's file listing of the resource (names inside it) differs from what the result says was
    done: None when it holds exactly the files expected, else a phrase naming counts (never names)."""
    try:
        expected = expected_after(result)
    except FileProblem as exc:
        return f"cannot be compared: {exc}"
    missing, extra = expected - set(listed), set(listed) - expected
    if not missing and not extra:
        return None
    parts = []
    if missing:
        parts.append(f"lacks {len(missing)} file(s) the mitigation should have left")
    if extra:
        parts.append(f"still lists {len(extra)} file(s) the mitigation renamed or removed")
    return " and ".join(parts)


def read_or_none(path: str | None) -> bytes | None:
    """A file the run wrote itself (outside ROOT), or None."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None
