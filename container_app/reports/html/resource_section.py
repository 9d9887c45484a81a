"""One resource's detail section of the page: what would change (or did), its duplicate groups, bad
files and catalog entries without a file, and what the mitigation did to it.

Every table takes its rows from a `RowBudget` shared by the whole page, so the page stays small
whatever the archive; a table counts all its rows and shows how many more the JSON report holds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from container_app.core.deidentification import MORE_DEIDENTIFIED, Hold, hold_for
from container_app.core.vocabulary import KeepPolicy, KeepReason
from container_app.reports.html.view import (
    count,
    label,
    mapping,
    message,
    mitigation_counts,
    moment,
    relative,
    sequence,
    status_class,
    text,
)

MIN_ERROR_ROWS = 50  # errors are shown even when the budget is spent

#: Why the preview keeps a copy, in the words of the duplicates table.
_PREVIEW_WHY: dict[str, str] = {
    KeepReason.IDENTICAL_AT_EXPECTED_NAME: "preview: identical, already at its name",
    KeepReason.NEWEST: "preview: newest",
    KeepReason.ONLY_INTACT_COPY: "preview: the only intact copy",
    MORE_DEIDENTIFIED: "preview: the more de-identified copy (newest among those)",
}
#: Why nothing of a group moves (issue 15).
_HELD_WHY = {
    Hold.DEIDENTIFICATION_UNDECIDED: "nothing moves: which copy discloses more is undecided",
    Hold.ONLY_INTACT_COPY_LESS_DEIDENTIFIED: "nothing moves: the only intact copy is the less de-identified one",
}


@dataclass(frozen=True, slots=True)
class Table:
    """At most some rows of a longer list, and how many there were."""

    rows: list[Any]
    total: int
    kind: str = ""  # what a table of duplicate groups also says
    title: str = ""
    keep_note: str = ""

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


class RowBudget:
    """The detail rows the page has left: each table takes up to `max_rows`, fewer once the budget is spent."""

    def __init__(self, max_rows: int, rows: int) -> None:
        self.max_rows = max_rows
        self.rows_left = rows
        self.exhausted = False  # some table showed fewer rows than it would have

    def spend_all(self) -> None:
        self.rows_left = 0
        self.exhausted = True

    def take(self, rows: Iterable[Any], *, minimum: int = 0) -> Table:
        """Up to max_rows rows (fewer once the page's budget is spent), counting them all."""
        allowed = max(min(self.max_rows, self.rows_left), min(minimum, self.max_rows))
        kept: list[Any] = []
        total = 0
        for row in rows:
            total += 1
            if len(kept) < allowed:
                kept.append(row)
        self.rows_left = max(0, self.rows_left - len(kept))
        if total > len(kept) and len(kept) < self.max_rows:
            self.exhausted = True
        return Table(kept, total)


def _keeper(group: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]], decided: Mapping[str, str]
            ) -> tuple[str, str]:
    """Which copy of an actionable duplicate group is kept, and why.

    From the mitigation's actions when it has decided; otherwise a preview: the plan's own choice under
    XNAT's rule (newest), so the page names the copy a mitigation would keep (never a damaged one when
    an intact copy exists).
    """
    names = list(mapping(group.get("members")))
    if not names:
        return "", ""
    chosen = [m for m in names if decided.get(m) in ("KEEP", "RETAIN", "RENAME")]
    if chosen:
        return chosen[0], "mitigation"
    if any(name not in files for name in names):  # a report that does not list its copies: nothing to weigh
        return "", ""
    # Here, not at the top: the plan's module is only for a page with duplicates to preview, and a survey
    # (of an empty folder, at least) starts sooner without it.
    from container_app.core.plan import choose_keeper, duplicate_group_members

    members = duplicate_group_members(group, files)
    hold = hold_for(members, [m for m in members if m.get("intact", True)])
    if hold is not None:
        return "", _HELD_WHY[hold]
    identical = group.get("identical")
    keeper, why = choose_keeper(members, KeepPolicy.NEWEST, identical if isinstance(identical, bool) else None)
    return text(keeper["path"]), _PREVIEW_WHY.get(why, f"preview: {str(why).lower()}")


def resource_view(resource: Mapping[str, Any], path: str, identity: Mapping[str, Any], status: str,
                  counts: Mapping[str, int], anchor: str, mitigation: Mapping[str, Any] | None,
                  mitigation_view: Mapping[str, Any] | None, budget: RowBudget, *, open_section: bool
                  ) -> dict[str, Any]:
    """What `report_resource.html.j2` shows of one surveyed resource."""
    files = [f for f in sequence(resource.get("files")) if isinstance(f, Mapping)]
    groups = [g for g in sequence(resource.get("duplicateGroups")) if isinstance(g, Mapping)]
    files_by_path = {text(f.get("path")): f for f in files}
    duplicate_files = {p: f for p, f in files_by_path.items() if f.get("status") == "DUPLICATE"}
    decided: dict[str, str] = {}
    if mitigation is not None:
        for action in sequence(mitigation.get("actions")):
            if isinstance(action, Mapping) and text(action.get("path")) in duplicate_files:
                decided[text(action["path"])] = text(action.get("action")).upper()
    plan: dict[str, tuple[str, str | None]] = {}  # path: (action, new name), for actionable duplicates
    keepers: dict[int, tuple[str, str]] = {}  # group index: (kept path, why)
    for index, group in enumerate(groups):
        if group.get("actionable") is True:
            kept, why = _keeper(group, files_by_path, decided)
            keepers[index] = (kept, why)
            if not kept:  # held (issue 15), or not weighable: nothing of it is shown as changing
                continue
            for member, expected in mapping(group.get("members")).items():
                if member == kept:
                    at_name = relative(member, path).rsplit("/", 1)[-1] == expected
                    plan[member] = ("KEEP", None) if at_name else ("RENAME", text(expected))
                else:
                    plan[member] = ("REMOVE", None)
    preview = not decided

    def changes() -> Iterator[dict[str, Any]]:
        for f in files:
            file_status = f.get("status")
            if file_status == "MISMATCHED":
                action, new = "RENAME", text(f.get("expectedName"))
            elif file_status == "DUPLICATE" and text(f.get("path")) in plan:
                action, new_or_none = plan[text(f.get("path"))]
                if action == "KEEP":
                    continue
                new = text(new_or_none)
            else:
                continue
            yield {"name": relative(text(f.get("path")), path), "new": new, "action": action,
                   "cls": action.lower(), "preview": preview and file_status == "DUPLICATE",
                   "reasons": [text(r) for r in sequence(f.get("reasons"))],
                   "tags": [text(t) for t in sequence(f.get("identifyingTags"))]}

    def group_rows(actionable: bool) -> Iterator[dict[str, Any]]:
        for index, group in enumerate(groups):
            if (group.get("actionable") is True) is not actionable:
                continue
            kept, why = keepers.get(index, ("", ""))
            members = []
            for member, expected in mapping(group.get("members")).items():
                info = duplicate_files.get(member) or {}
                reasons = [text(r) for r in sequence((files_by_path.get(member) or {}).get("reasons"))]
                members.append({"name": relative(member, path), "expected": text(expected),
                                "mtime": moment(info.get("mtimeNs")), "keep": member == kept,
                                "tags": [text(t) for t in sequence(info.get("identifyingTags"))],
                                "less": "LESS_DEIDENTIFIED" in reasons,
                                "because": [text(k) for k in sequence(mapping(mapping(
                                    group.get("deidentification")).get("because")).get(member))]})
            identical = group.get("identical")
            yield {"uid": text(group.get("sopInstanceUID")), "class_uid": text(group.get("sopClassUID")),
                   "size": len(members), "members": members, "why": why, "held": not kept and bool(why),
                   "identical": "identical" if identical is True else "contents differ" if identical is False
                   else "not compared", "deid": _deidentification_note(group, path)}

    def bad_rows() -> Iterator[dict[str, Any]]:
        for f in files:
            if f.get("status") == "BAD":
                yield {"name": relative(text(f.get("path")), path), "detail": text(f.get("detail")),
                       "reasons": [text(r) for r in sequence(f.get("reasons"))],
                       "tags": [text(t) for t in sequence(f.get("identifyingTags"))]}

    catalog = mapping(resource.get("catalog"))
    missing = ({"uri": text(e.get("uri")), "reason": text(e.get("reason"))}
               for e in sequence(catalog.get("missingFiles")) if isinstance(e, Mapping))
    duplicate_table = dataclasses.replace(
        budget.take(group_rows(True)), kind="duplicates", title="Duplicate groups",
        keep_note="Kept: as the mitigation decided." if not preview else
        "Kept: preview; mitigation decides. The copy already at its expected name is kept when all copies "
        "are identical, otherwise the newest by modification time (XNAT keeps the newest).")
    nonactionable_table = dataclasses.replace(
        budget.take(group_rows(False)), kind="nonactionable",
        title="Non-actionable duplicates (same UIDs, different expected names; left alone)")
    unreadable = [{"path": relative(text(u.get("path")), path), "error": text(u.get("error"))}
                  for u in sequence(mapping(resource.get("folder")).get("unreadable")) if isinstance(u, Mapping)]
    notes = [(k, count(v)) for k, v in mapping(resource.get("counts")).items()
             if count(v) and k not in ("identifyingName", "legacyName")]
    return {
        "anchor": anchor, "path": path, "label": label(identity, path), "status": status,
        "status_class": status_class(status), "counts": counts,
        "open": open_section and status != "CONFORMING",
        "catalog_path": text(identity.get("catalogPath")), "catalog_error": text(catalog.get("error")),
        "unreadable": unreadable,
        "notes": notes, "changes": budget.take(changes()), "groups": duplicate_table,
        "nonactionable": nonactionable_table, "bad": budget.take(bad_rows()), "missing": budget.take(missing),
        "mitigation": mitigation_view,
    }


def _deidentification_note(group: Mapping[str, Any], path: str) -> str:
    """One line on how the copies of a differing group compare (issue 15): keywords, never values."""
    verdict = mapping(group.get("deidentification"))
    if not verdict:
        return ""
    if verdict.get("undecided") is True:
        look = ", ".join(text(k) for k in sequence(verdict.get("lookAt")))
        return f"De-identification undecided: each copy discloses something the other does not; look at {look}."
    less = [relative(text(p), path) for p in sequence(verdict.get("lessDeidentified"))]
    differing = ", ".join(text(k) for k in sequence(group.get("differingAttributes")))
    differs = group.get("pixelDataDiffers")
    pixels = "; pixel data differs" if differs is True else "; pixel data alike" if differs is False else ""
    if less:
        return f"Less de-identified (never kept): {', '.join(less)}. Differing attributes: {differing}{pixels}."
    return f"Alike in de-identification. Differing attributes: {differing}{pixels}."


def mitigation_view(mitigation: Mapping[str, Any], path: str, status: str, after: str, budget: RowBudget
                    ) -> dict[str, Any]:
    """What `report_resource.html.j2` shows of what the mitigation did (or would do) to one resource."""
    xnat = mapping(mitigation.get("xnat"))
    m_counts = mitigation_counts(xnat)

    def errors() -> Iterator[dict[str, str]]:
        backup_errors = xnat.get("backupErrors")
        if isinstance(backup_errors, Mapping):
            for name, error in backup_errors.items():
                yield {"name": relative(text(name), path), "step": "backup", "message": message(error)}
        else:
            for entry in sequence(backup_errors):
                if isinstance(entry, Mapping):
                    yield {"name": relative(text(entry.get("file")), path), "step": "backup",
                           "message": message(entry)}
                else:
                    yield {"name": "", "step": "backup", "message": text(entry)}
        for name, error in mapping(xnat.get("moveErrors")).items():
            yield {"name": relative(text(name), path), "step": "move", "message": message(error)}
        for name, error in mapping(xnat.get("deleteErrors")).items():
            yield {"name": relative(text(name), path), "step": "delete", "message": message(error)}

    backup_folder = text(mitigation.get("backupFolder") or xnat.get("cachePath") or mitigation.get("backupRoot"))

    def actions() -> Iterator[dict[str, str]]:
        for action in sequence(mitigation.get("actions")):
            if not isinstance(action, Mapping):
                continue
            kind = text(action.get("action")).upper()
            yield {"action": kind, "cls": {"RENAME": "rename", "REMOVE": "remove"}.get(kind, "keep"),
                   "name": relative(text(action.get("path")), path),
                   "new": relative(text(action.get("newPath")), path),
                   "backup": relative(text(action.get("backupPath")), backup_folder.rstrip("/")),
                   "outcome": text(action.get("outcome")), "error": message(action.get("error")),
                   "reason": message(action.get("reason"))}

    def conflicts() -> Iterator[dict[str, str]]:
        for conflict in sequence(mitigation.get("conflicts")):
            if isinstance(conflict, Mapping):
                yield {"name": relative(text(conflict.get("path")), path),
                       "target": relative(text(conflict.get("target")), path),
                       "reason": text(conflict.get("reason"))}

    resource_errors = [f"{what}: {message(xnat.get(key))}" for key, what in
                       (("catalogWriteError", "Catalog not written"), ("resourceSaveError", "Resource not saved"))
                       if xnat.get(key)]
    catalog = mapping(mitigation.get("catalog"))
    downgraded = sum(1 for a in sequence(mitigation.get("actions"))
                     if isinstance(a, Mapping) and a.get("catalogEntryDowngraded") is True)
    return {
        "way": text(mitigation.get("way")), "way_reason": text(mitigation.get("wayReason")),
        "downgraded": downgraded,
        "status": status, "status_class": status_class(status),
        "status_reason": text(mitigation.get("statusReason")),
        "after": after, "after_class": status_class(after),
        "moved": m_counts["totalMovedFiles"], "removed": m_counts["totalRemovedFiles"],
        "file_errors": m_counts["totalFileErrors"], "retained": count(xnat.get("retainedFiles")),
        "backup_root": backup_folder,
        "catalog": {"path": relative(text(catalog.get("path")), path), "backup": text(catalog.get("backupPath")),
                    "renamed": count(catalog.get("entriesRenamed")),
                    "removed": count(catalog.get("entriesRemoved"))} if catalog else None,
        "resource_errors": resource_errors,
        "conflicts": budget.take(conflicts(), minimum=MIN_ERROR_ROWS),
        "errors": budget.take(errors(), minimum=MIN_ERROR_ROWS),
        "actions": budget.take(actions()),
        "moved_rows": budget.take((relative(text(k), path), relative(text(v), path))
                                  for k, v in mapping(xnat.get("movedFiles")).items()),
        "removed_rows": budget.take((relative(text(k), path), relative(text(v), backup_folder.rstrip("/")))
                                    for k, v in mapping(xnat.get("removedFiles")).items()),
    }
