"""Finding resources under ROOT: every folder that directly holds files, with its XNAT identity.

Never follows a link: symbolic links are listed as entries (and reported), never walked into.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from container_app.core.records import Resource, ResourceIdentity
from container_app.survey.catalog import is_catalog_name, read_catalog

_ARCHIVE_FOLDER = re.compile(r"arc\d{3}")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which resources a run surveys."""

    labels: frozenset[str] = frozenset({"DICOM"})
    all_resources: bool = False
    since_ns: int | None = None  # only resources with something modified at or after this time

    def wants(self, identity: ResourceIdentity, is_root: bool, is_xnat: bool) -> bool:
        # A folder the user pointed at, or one outside any XNAT layout, is always surveyed.
        if self.all_resources or is_root or not is_xnat:
            return True
        return identity.resource_label in self.labels


def identity_for(root_parts: tuple[str, ...], rel_parts: tuple[str, ...], catalog_rel: str | None,
                 catalog_project: str | None) -> tuple[ResourceIdentity, bool]:
    """What the layout says about the resource at `rel_parts` below ROOT; and whether it is XNAT's.

    `root_parts` are ROOT's own path components: an archive path such as
    `/data/archive/P1/arc001/S1` names its project and session above ROOT.
    """
    parts = (*root_parts, *rel_parts)
    below_root = len(root_parts)  # index in `parts` of the first folder below ROOT
    project = session = scan_id = None
    label = parts[-1] if parts else ""
    is_xnat = catalog_rel is not None
    # The innermost `SCANS/<id>/<LABEL>` or `RESOURCES/<LABEL>` holding this folder: a resource's subfolders
    # (FreeSurfer's mri/, a DICOM resource's secondary/) belong to it and are selected by its label.
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "SCANS" and i + 2 < len(parts):
            scan_id, label, is_xnat = parts[i + 1], parts[i + 2], True
        elif parts[i] == "RESOURCES" and i + 1 < len(parts):
            label, is_xnat = parts[i + 1], True
        else:
            continue
        if i - 1 >= below_root:  # the session folder is below ROOT (a mount's own name is not a label)
            session = parts[i - 1]
        break
    for i, part in enumerate(parts[:-1]):
        if _ARCHIVE_FOLDER.fullmatch(part) and i > 0:
            project, session = parts[i - 1], parts[i + 1]
    identity = ResourceIdentity(project=catalog_project or project, session=session, scan_id=scan_id,
                                resource_label=label, catalog_path=catalog_rel)
    return identity, is_xnat


def discover(root: str, selection: Selection, on_skip: Callable[[str, str], None] | None = None) -> Iterator[Resource]:
    """Resources under `root` in a stable order (sorted walk), filtered by `selection`."""
    root = os.path.abspath(root)
    root_parts = tuple(p for p in root.split(os.sep) if p)
    stack: list[tuple[str, tuple[str, ...]]] = [(root, ())]
    while stack:
        directory, rel_parts = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if on_skip:
                on_skip("/".join(rel_parts) or ".", exc.strerror or str(exc))
            continue
        subdirectories = [e for e in entries if e.is_dir(follow_symlinks=False)]
        files = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
        links = frozenset(e.name for e in entries if e.is_symlink())
        stack.extend((e.path, (*rel_parts, e.name)) for e in reversed(subdirectories))
        if not files:
            continue
        resource = _resource(directory, root_parts, rel_parts, files, selection, links)
        if resource is not None:
            yield resource
        elif on_skip:
            on_skip("/".join(rel_parts) or ".", "not selected")


def _resource(directory: str, root_parts: tuple[str, ...], rel_parts: tuple[str, ...], names: list[str],
              selection: Selection, links: frozenset[str] = frozenset()) -> Resource | None:
    # A linked catalog is never read (it may point anywhere): it stays a file, reported as a link.
    catalogs = [n for n in names if is_catalog_name(n) and n not in links]
    rel = str(PurePosixPath(*rel_parts)) if rel_parts else "."
    catalog_name = catalogs[0] if catalogs else None
    catalog_rel = None if catalog_name is None else (catalog_name if rel == "." else f"{rel}/{catalog_name}")
    identity, is_xnat = identity_for(root_parts, rel_parts, catalog_rel, None)
    if not selection.wants(identity, is_root=not rel_parts, is_xnat=is_xnat):
        return None
    files = tuple(n for n in names if n not in catalogs)
    if selection.since_ns is not None and not _changed_since(directory, names, selection.since_ns):
        return None
    # The catalog is read later, by the worker that surveys the resource (`load_catalog`): parsing
    # thousands of catalogs here would make the walk, which is serial, the slowest part of a survey.
    return Resource(rel_path=rel, identity=identity, files=files, catalog_entries=None)


def load_catalog(root: str, resource: Resource) -> Resource:
    """The resource with its catalog's entries, and the project XNAT wrote into the catalog."""
    rel = resource.identity.catalog_path
    if rel is None or resource.catalog_entries is not None or resource.catalog_error is not None:
        return resource
    path = os.path.join(root, *rel.split("/"))
    try:
        project, entries = read_catalog(path)
    except (ET.ParseError, OSError) as exc:
        return replace(resource, catalog_error=f"{rel.rsplit('/', 1)[-1]}: {exc}")
    identity = replace(resource.identity, project=project or resource.identity.project)
    return replace(resource, identity=identity, catalog_entries=entries)


def _changed_since(directory: str, names: list[str], since_ns: int) -> bool:
    try:
        if os.stat(directory).st_mtime_ns >= since_ns:
            return True
        return any(os.lstat(os.path.join(directory, n)).st_mtime_ns >= since_ns for n in names)
    except OSError:
        return True
