"""Whether ROOT is the Container Service's tree of a project's shared data rather than the live archive.

A project mount whose project has sessions shared into it from other projects is not the archive: the
Container Service builds a tree of its own (container-service 3.7, `CommandResolutionServiceImpl.
resolveMountPathForModelObject`: for a Project with shared paths it mounts
`FileUtils.createDirectoryForSharedData(allPaths, "container-service/<workflow id><project>")`, a folder
in XNAT's build path where every file of the project and of the sessions shared into it is a hard link to
the archive file, or a copy where a link cannot be made), with the sessions under their original labels
and projects. Such a tree is a snapshot taken at launch: a change XNAT makes afterwards does not show in it,
and every file in it is a hard link by construction, so a hard link there says nothing about the archive.

The survey and mitigation ask `is_shared_data_tree(root)`; a copy tree (no links) cannot be told from a
live mount by its files alone, and the XNAT executor recognises it by a session that XNAT files under
another project than the one launched on.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator

from container_app.core.errors import FileProblem
from container_app.support.anchored import Anchor

#: How many files are looked at: enough to tell a tree of links from an archive that has a few.
SAMPLE_FILES = 64
_ARCHIVE_FOLDER = "arc001"


def _files(anchor: Anchor, rel: str, depth: int) -> Iterator[tuple[str, int]]:
    """(path, link count) of regular files below `rel`, depth first, links never followed."""
    try:
        entries = anchor.list(rel)
    except (OSError, FileProblem):
        return
    for name, st in entries:
        path = name if rel == "." else f"{rel}/{name}"
        if stat.S_ISREG(st.st_mode):
            yield path, st.st_nlink
        elif stat.S_ISDIR(st.st_mode) and depth > 0:
            yield from _files(anchor, path, depth - 1)


def holds_projects(anchor: Anchor) -> bool:
    """ROOT holds `<project>/arc001/...` folders, as the shared-data tree does (the archive's own project
    folder, mounted for a project without shared data, holds `arc001` itself)."""
    try:
        for name, st in anchor.list("."):
            if stat.S_ISDIR(st.st_mode):
                below = anchor.lstat(f"{name}/{_ARCHIVE_FOLDER}")
                if below is not None and stat.S_ISDIR(below.st_mode):
                    return True
    except (OSError, FileProblem):
        return False
    return False


def is_shared_data_tree(root: str) -> bool:
    """True when ROOT is a tree of hard links to the archive: it holds `<project>/arc001/` folders and
    every regular file sampled (up to SAMPLE_FILES, catalogs included) has more than one link."""
    try:
        anchor = Anchor.open(root)
    except OSError:
        return False
    with anchor:
        if not holds_projects(anchor):
            return False
        seen = 0
        for _path, links in _files(anchor, ".", 12):
            if links < 2:
                return False
            seen += 1
            if seen >= SAMPLE_FILES:
                break
        return seen > 0
