"""Names of files as XNAT's files API knows them, and what a DELETE of one would take with it.

A file's name in XNAT's files API is its path relative to the resource (the catalog's `URI`):
`IM0001`, or `secondary/x.dcm` for a file in a subfolder of the resource, which belongs to the
resource all the same (core/paths.py, tests/survey/test_subfolder_entries.py). Never the base name.

XNAT's DELETE of `.../files/{name}` removes every catalog entry, and its file on disk, that
`CatalogUtils.findCatEntriesWithinPath` matches: `key.equals(path) || key.startsWith(path)`, and a
name ending in `*` is taken as a pattern (xnat-web through 1.8.10.1, `FileList.handleDelete`; no
release is known to have changed it, so it is always assumed). Deleting `IM1` deletes `IM10` too.
"""

from __future__ import annotations

from collections.abc import Iterable

from container_app.core.plan import ResourcePlan


def within(resource_path: str, path: str) -> str:
    """`path` (relative to ROOT) as a name inside the resource at `resource_path` (relative to ROOT)."""
    if resource_path in ("", "."):
        return path
    prefix = resource_path.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path.rsplit("/", 1)[-1]


def in_plan(plan: ResourcePlan, path: str) -> str:
    return within(plan.resource_path, path)


def taken_along(name: str, names: Iterable[str]) -> list[str]:
    """The other names XNAT's DELETE of `name` would delete as well (prefix rule above)."""
    return sorted(other for other in names if other != name and other.startswith(name))


def delete_refusal(name: str, names: Iterable[str]) -> str | None:
    """Why `name` must not be deleted through XNAT's files API while `names` are listed, or None.

    The reason names no file (names may carry a patient's name): it counts them.
    """
    if name.endswith("*"):
        return ("XNAT's files API takes a name ending in '*' as a pattern and would delete every file it matches: "
                "not deleted through the files API")
    others = taken_along(name, names)
    if not others:
        return None
    return (f"XNAT deletes by name prefix (CatalogUtils.findCatEntriesWithinPath, through at least 1.8.10.1): deleting "
            f"this file would also delete {len(others)} other file(s) whose names begin with this one's, so it was "
            "not deleted")
