"""Finding resources under ROOT: every folder that directly holds files, with its XNAT identity.

An XNAT resource folder (`SCANS/<id>/<LABEL>` or `RESOURCES/<LABEL>` holding its catalog) is one
resource with its subfolders: their files are its entries (`secondary/x.dcm`), as its catalog lists them.
A folder that cannot be listed is a resource too, with the reason, so that no report leaves it out.

Never follows a link: symbolic links are listed as entries (and reported), never walked into.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from container_app.core.errors import CatalogError, FileProblem
from container_app.core.records import Resource, ResourceIdentity, UnreadableFolder
from container_app.support.anchored import Anchor
from container_app.survey import anchored_reads
from container_app.survey.catalog import is_catalog_name, read_catalog

_ARCHIVE_FOLDER = re.compile(r"arc\d{3}")
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


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
    layout = _layout(parts)
    if layout is not None:
        i, scan_id, label, _end = layout
        is_xnat = True
        if i - 1 >= below_root:  # the session folder is below ROOT (a mount's own name is not a label)
            session = parts[i - 1]
    for i, part in enumerate(parts[:-1]):
        if _ARCHIVE_FOLDER.fullmatch(part) and i > 0:
            project, session = parts[i - 1], parts[i + 1]
    identity = ResourceIdentity(project=catalog_project or project, session=session, scan_id=scan_id,
                                resource_label=label, catalog_path=catalog_rel)
    return identity, is_xnat


def _layout(parts: tuple[str, ...]) -> tuple[int, str | None, str, int] | None:
    """The innermost `SCANS/<id>/<LABEL>` or `RESOURCES/<LABEL>` in `parts`: where it starts, its scan id
    and label, and the index of its resource folder (the label's part)."""
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "SCANS" and i + 2 < len(parts):
            return i, parts[i + 1], parts[i + 2], i + 2
        if parts[i] == "RESOURCES" and i + 1 < len(parts):
            return i, None, parts[i + 1], i + 1
    return None


def _is_resource_folder(parts: tuple[str, ...]) -> bool:
    """Whether the folder at `parts` is itself an XNAT resource folder, not one below it."""
    layout = _layout(parts)
    return layout is not None and layout[3] == len(parts) - 1


def discover(root: str, selection: Selection, on_skip: Callable[[str, str], None] | None = None) -> Iterator[Resource]:
    """Resources under `root` in a stable order (sorted walk), filtered by `selection`.

    The walk goes by directory descriptors from ROOT's (held for the survey's reads too, so workers
    forked after it inherit it: `anchored_reads`): each folder opened relative to its parent with
    `O_NOFOLLOW`, so a folder swapped for a link while the walk goes on is never entered.
    A folder that cannot be listed is yielded as a resource with no files and the reason (`unreadable`);
    `on_skip` hears of the folders with files that the selection leaves out.
    """
    root_parts = tuple(p for p in os.path.abspath(root).split(os.sep) if p)
    try:
        anchor = anchored_reads.anchor_root(root)
    except OSError as exc:  # ROOT itself cannot be opened (chmod 000): reported as any such folder
        yield from _unlisted(root_parts, (), selection, exc, on_skip)
        return
    fd = os.dup(anchor.fd)  # the walk's own: the held ROOT may be replaced while this generator is paused
    try:
        yield from _visit(fd, (), root_parts, selection, on_skip)
    finally:
        os.close(fd)


def _visit(fd: int, rel_parts: tuple[str, ...], root_parts: tuple[str, ...], selection: Selection,
           on_skip: Callable[[str, str], None] | None) -> Iterator[Resource]:
    """The resources in the folder `fd` (at `rel_parts` below ROOT) and below it, depth first in name order."""
    rel = "/".join(rel_parts) or "."
    try:
        entries = _listing(fd, os.path.join(os.sep, *root_parts, *rel_parts))
    except OSError as exc:
        yield from _unlisted(root_parts, rel_parts, selection, exc, on_skip)
        return
    subdirectories = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    files = [e.name for e in entries if not e.is_dir(follow_symlinks=False)]
    links = frozenset(e.name for e in entries if e.is_symlink())
    owned = bool(files) and _holds_catalog(files, links) and _is_resource_folder((*root_parts, *rel_parts))
    if files:
        resource = _resource(fd, root_parts, rel_parts, files, selection, links, subdirectories if owned else [])
        if resource is not None:
            yield resource
        elif on_skip:
            on_skip(rel, "not selected")
    if owned:  # an XNAT resource's subfolders are its own: walked with it, never resources themselves
        return
    for name in subdirectories:
        try:
            child = os.open(name, _FOLDER_FLAGS, dir_fd=fd)
        except OSError as exc:
            yield from _unlisted(root_parts, (*rel_parts, name), selection, exc, on_skip)
            continue
        try:
            yield from _visit(child, (*rel_parts, name), root_parts, selection, on_skip)
        finally:
            os.close(child)


def _unlisted(root_parts: tuple[str, ...], rel_parts: tuple[str, ...], selection: Selection, exc: OSError,
              on_skip: Callable[[str, str], None] | None) -> Iterator[Resource]:
    unreadable = _unreadable(root_parts, rel_parts, selection, _reason(exc))
    if unreadable is not None:
        yield unreadable
    elif on_skip:
        on_skip("/".join(rel_parts) or ".", "not selected")


def _listing(fd: int, path: str) -> list[os.DirEntry[str]]:
    """The entries of the folder `fd`, whose path is `path`, sorted by name.

    Listed by its path (what `os.scandir` fakes in tests key on), and trusted only if that path is the
    folder held open, before and after: a folder swapped for a link meanwhile is refused, never listed.
    A listing is names only; every read goes through the descriptors (`anchored_reads`).
    """
    held = os.fstat(fd)
    _same_folder(path, held)
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    _same_folder(path, held)
    return entries


def _same_folder(path: str, held: os.stat_result) -> None:
    now = os.stat(path)
    if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
        raise OSError(errno.ELOOP, "replaced during the survey", path)


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # listed as a folder, a link or a file when opened
        return "replaced by a symbolic link or a file during the survey; never followed"
    # The system's words ("Permission denied"), never a traceback.
    return exc.strerror or type(exc).__name__


def _holds_catalog(names: list[str], links: frozenset[str]) -> bool:
    return any(is_catalog_name(n) and n not in links for n in names)


def _unreadable(root_parts: tuple[str, ...], rel_parts: tuple[str, ...], selection: Selection,
                error: str) -> Resource | None:
    """A folder that could not be listed, as a resource with no files and the reason; None if not selected.

    Its catalog, if any, is unknown, so the layout alone says whether it is XNAT's. `--since` cannot
    tell whether it changed: it is always reported.
    """
    rel = str(PurePosixPath(*rel_parts)) if rel_parts else "."
    identity, is_xnat = identity_for(root_parts, rel_parts, None, None)
    if not selection.wants(identity, is_root=not rel_parts, is_xnat=is_xnat):
        return None
    return Resource(rel_path=rel, identity=identity, files=(), catalog_entries=None,
                    unreadable=(UnreadableFolder(rel, error),))


def _resource(fd: int, root_parts: tuple[str, ...], rel_parts: tuple[str, ...], names: list[str],
              selection: Selection, links: frozenset[str] = frozenset(),
              below: list[str] | None = None) -> Resource | None:
    # A linked catalog is never read (it may point anywhere): it stays a file, reported as a link.
    catalogs = [n for n in names if is_catalog_name(n) and n not in links]
    rel = str(PurePosixPath(*rel_parts)) if rel_parts else "."
    catalog_name = catalogs[0] if catalogs else None
    catalog_rel = None if catalog_name is None else (catalog_name if rel == "." else f"{rel}/{catalog_name}")
    identity, is_xnat = identity_for(root_parts, rel_parts, catalog_rel, None)
    if not selection.wants(identity, is_root=not rel_parts, is_xnat=is_xnat):
        return None
    files = [n for n in names if n not in catalogs]
    folders: list[str] = []
    unreadable: list[UnreadableFolder] = []
    if below:  # listed only once the resource is selected: an unselected resource's subfolders are never read
        _walk_below(fd, os.path.join(os.sep, *root_parts, *rel_parts), below, rel, files, folders, unreadable)
    # A resource with a folder that cannot be listed may have changed inside it: it is always reported.
    if selection.since_ns is not None and not unreadable and not _changed_since(
            fd, [*catalogs, *files, *folders], selection.since_ns):
        return None
    # The catalog is read later, by the worker that surveys the resource (`load_catalog`): parsing
    # thousands of catalogs here would make the walk, which is serial, the slowest part of a survey.
    return Resource(rel_path=rel, identity=identity, files=tuple(sorted(files)), catalog_entries=None,
                    unreadable=tuple(unreadable))


def _walk_below(parent: int, base: str, below: list[str], rel: str, files: list[str], folders: list[str],
                unreadable: list[UnreadableFolder]) -> None:
    """Add the files of a resource's subfolders to `files`, by their path inside the resource (`sub/x.dcm`).

    `below` holds the paths inside the resource (whose folder is `base`) of the subfolders of the folder
    `parent`, each opened
    relative to it without following a link. The subfolders go to `folders`, those that cannot be
    listed to `unreadable`.
    """
    for inside in below:
        folders.append(inside)
        shown = inside if rel == "." else f"{rel}/{inside}"
        try:
            fd = os.open(inside.rsplit("/", 1)[-1], _FOLDER_FLAGS, dir_fd=parent)
        except OSError as exc:
            unreadable.append(UnreadableFolder(shown, _reason(exc)))
            continue
        try:
            try:
                entries = _listing(fd, os.path.join(base, *inside.split("/")))
            except OSError as exc:
                unreadable.append(UnreadableFolder(shown, _reason(exc)))
                continue
            files.extend(f"{inside}/{e.name}" for e in entries if not e.is_dir(follow_symlinks=False))
            _walk_below(fd, base, [f"{inside}/{e.name}" for e in entries if e.is_dir(follow_symlinks=False)],
                        rel, files, folders, unreadable)
        finally:
            os.close(fd)


def load_catalog(root: str, resource: Resource) -> Resource:
    """The resource with its catalog's entries, and the project XNAT wrote into the catalog.

    Read below ROOT without following any link (`anchored_reads`; ROOT held here if this process has not
    held it yet, as a worker started without fork)."""
    rel = resource.identity.catalog_path
    if rel is None or resource.catalog_entries is not None or resource.catalog_error is not None:
        return resource
    anchored_reads.hold_root(root)
    path = os.path.join(os.path.abspath(root), *rel.split("/"))
    try:
        project, entries = read_catalog(path)
    except (CatalogError, OSError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        return replace(resource, catalog_error=f"{rel.rsplit('/', 1)[-1]}: {detail}")
    identity = replace(resource.identity, project=project or resource.identity.project)
    return replace(resource, identity=identity, catalog_entries=entries)


def _changed_since(fd: int, names: list[str], since_ns: int) -> bool:
    """Whether the folder `fd`, or an entry below it (`sub/x.dcm` walked without following links), changed."""
    try:
        if os.fstat(fd).st_mtime_ns >= since_ns:
            return True
        folder = Anchor(fd, ".")  # borrowed: never closed here
        for name in names:
            st = folder.lstat(name)
            if st is None or st.st_mtime_ns >= since_ns:
                return True
        return False
    except (OSError, FileProblem):
        return True
