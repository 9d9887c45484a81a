"""XNAT's own survey and mitigation reports, read against ours.

XNAT names files by absolute server paths; these functions match them to names within the resource
and never put a file name (which may carry a patient's name) into a count or a verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from container_app.core.plan import Action, FileState, ResourcePlan
from container_app.core.vocabulary import ActionKind, Outcome, Step
from container_app.mitigation.xnat.mount import file_name
from container_app.mitigation.xnat.rest_names import within
from container_app.mitigation.xnat.results import XnatActionResult


class _Names:
    """Matches XNAT's absolute server paths to names within the resource (by path suffix).

    A name within the resource is its path there (`secondary/x.dcm` for a file in a subfolder, which
    belongs to the resource: rest_names), never its base name.
    """

    def __init__(self, plan: ResourcePlan) -> None:
        self.resource_path = plan.resource_path
        self.prefix = "" if plan.resource_path == "." else plan.resource_path + "/"
        # Longest first: `secondary/x.dcm` is tried before `x.dcm`, so each server path finds its own file.
        self.known = sorted({within(plan.resource_path, f.path) for f in plan.files_at_survey}, key=len, reverse=True)

    def of_server_path(self, path: str) -> str:
        for name in self.known:
            if path == name or path.endswith("/" + name):
                return name
        return file_name(path)  # a file the survey never saw: its base name is all that can be told

    def of_report_path(self, path: str) -> str:
        return within(self.resource_path, path)

    def rel(self, name: str) -> str:
        return self.prefix + name


def _duplicate_sets(duplicates: Mapping[str, Any],
                    name_of: Callable[[str], str]) -> dict[tuple[str, str], dict[str, str]]:
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for class_uid, instances in (duplicates or {}).items():
        for instance_uid, members in (instances or {}).items():
            groups[(class_uid, instance_uid)] = {name_of(p): str(e) for p, e in (members or {}).items()}
    return groups


def compare_surveys(plan: ResourcePlan, ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """How XNAT's ResourceSurveyReport compares with our survey of the same resource.

    Returns counts (never file names, which may carry patient names) and a verdict: `agree`,
    `template` (XNAT expects other names for the same files: another dicomFileNameTemplate) or
    `disagree` (one survey sees mismatches or duplicates the other does not).
    """
    names = _Names(plan)
    our_xnat = ours.get("xnat", {})
    our_mismatch = {names.of_report_path(p): str(e) for p, e in our_xnat.get("mismatchedFiles", {}).items()}
    their_mismatch = {names.of_server_path(p): str(e) for p, e in (theirs.get("mismatchedFiles") or {}).items()}
    our_dups = _duplicate_sets(our_xnat.get("duplicates", {}), names.of_report_path)
    their_dups = _duplicate_sets(theirs.get("duplicates") or {}, names.of_server_path)

    our_expected = {**our_mismatch, **{n: e for g in our_dups.values() for n, e in g.items()}}
    their_expected = {**their_mismatch, **{n: e for g in their_dups.values() for n, e in g.items()}}
    template = sorted(n for n in set(our_expected) & set(their_expected) if our_expected[n] != their_expected[n])
    # A file we call mismatched that XNAT saw (its UIDs are in XNAT's report) but found well named: a template too.
    their_uids = {(c, i) for c, instances in (theirs.get("uids") or {}).items() for i in instances}
    files = {f["path"]: f for f in ours.get("files", [])}
    for name in set(our_mismatch) - set(their_expected):
        record = files.get(names.rel(name), {})
        if (record.get("sopClassUID"), record.get("sopInstanceUID")) in their_uids:
            template.append(name)
    only_ours = (set(our_mismatch) ^ set(their_mismatch)) | {n for g in set(our_dups) ^ set(their_dups)
                                                            for n in (our_dups.get(g) or their_dups.get(g) or {})}
    for group in set(our_dups) & set(their_dups):
        if set(our_dups[group]) != set(their_dups[group]):
            only_ours |= set(our_dups[group]) ^ set(their_dups[group])
    verdict = "template" if template else ("disagree" if only_ours else "agree")
    return {
        "verdict": verdict,
        "requestId": theirs.get("resourceSurveyRequestId"),
        "xnatMismatchedFiles": len(their_mismatch), "ourMismatchedFiles": len(our_mismatch),
        "xnatDuplicates": len(their_dups), "ourDuplicates": len(our_dups),
        "filesWithOtherExpectedNames": len(set(template)),
        "filesSeenByOneSurveyOnly": len(only_ours - set(template)),
    }


def actions_from_xnat(plan: ResourcePlan, ours: Mapping[str, Any],
                      report: Mapping[str, Any]) -> tuple[list[XnatActionResult], dict[str, Any]]:
    """What XNAT did, as our actions (for the report and restore), and XNAT's report with relative paths."""
    names = _Names(plan)
    states = {names.of_report_path(f.path): f for f in plan.files_at_survey}
    our_xnat = ours.get("xnat", {})
    mismatched = {names.of_report_path(p) for p in our_xnat.get("mismatchedFiles", {})}
    groups = {n: g for g, members in _duplicate_sets(our_xnat.get("duplicates", {}), names.of_report_path).items()
              for n in members}

    def state(name: str) -> FileState:
        return states.get(name) or FileState(names.rel(name), 0, 0, None)

    moved = {names.of_server_path(o): names.of_server_path(n) for o, n in (report.get("movedFiles") or {}).items()}
    removed = {names.of_server_path(o): str(b) for o, b in (report.get("removedFiles") or {}).items()}
    retained = [names.of_server_path(p) for p in report.get("retainedFiles") or []]
    backup_errors = {names.of_server_path(p): e for p, e in (report.get("backupErrors") or {}).items()}
    move_errors = {names.of_server_path(p): e for p, e in (report.get("moveErrors") or {}).items()}
    delete_errors = {names.of_server_path(p): str(e) for p, e in (report.get("deleteErrors") or {}).items()}
    planned = {names.of_report_path(a.source.path): a for a in plan.actions}

    def reason(name: str, kind: ActionKind) -> str:
        if kind is ActionKind.REMOVE:
            return "DUPLICATE_SURPLUS"
        return "NAME_MISMATCH" if name in mismatched and name not in groups else "DUPLICATE_KEPT:NEWEST"

    def message(error: Any) -> str:
        return str(error.get("message") if isinstance(error, dict) else error)

    results: list[XnatActionResult] = []
    seen: set[str] = set()
    for name in sorted(set(removed) - set(moved)) + sorted(set(delete_errors) - set(removed)):
        action = Action(ActionKind.REMOVE, state(name), None, reason(name, ActionKind.REMOVE), groups.get(name))
        if name in delete_errors:
            results.append(XnatActionResult(action, Outcome.FAILED, removed.get(name), delete_errors[name],
                                            Step.DELETE))
        else:
            results.append(XnatActionResult(action, Outcome.DONE, removed[name]))
        seen.add(name)
    for name in sorted(set(moved) | (set(move_errors) - seen)):
        new = moved.get(name)
        if new is None and name in planned and planned[name].target:
            new = names.of_report_path(planned[name].target or "")
        action = Action(ActionKind.RENAME, state(name), names.rel(new) if new else None,
                        reason(name, ActionKind.RENAME), groups.get(name))
        if name in move_errors:
            results.append(XnatActionResult(action, Outcome.FAILED, removed.get(name), message(move_errors[name]),
                                            Step.MOVE))
        else:
            results.append(XnatActionResult(action, Outcome.DONE, removed.get(name)))
        seen.add(name)
    for name in sorted(set(backup_errors) - seen):
        planned_action = planned.get(name)
        kind = planned_action.kind if planned_action is not None else ActionKind.RENAME
        action = Action(kind, state(name), planned_action.target if planned_action else None, reason(name, kind),
                        groups.get(name))
        results.append(XnatActionResult(action, Outcome.FAILED, None, message(backup_errors[name]), Step.BACKUP))
        seen.add(name)
    for name in retained:
        if name not in seen:
            results.append(XnatActionResult(Action(ActionKind.RETAIN, state(name), None, "DUPLICATE_KEPT:NEWEST",
                                                   groups.get(name)), Outcome.DONE))
            seen.add(name)
    for name, planned_action in planned.items():
        if name not in seen and planned_action.kind is not ActionKind.RETAIN:
            results.append(XnatActionResult(planned_action, Outcome.SKIPPED, error="XNAT's mitigation did not act "
                                            "on this file"))

    def rel_map(mapping: Mapping[str, Any]) -> dict[str, Any]:
        return {names.rel(k): v for k, v in mapping.items()}

    converted = {
        "resourceSurveyRequestId": int(report.get("resourceSurveyRequestId") or 0),
        "cachePath": str(report.get("cachePath") or ""),
        "movedFiles": {names.rel(o): names.rel(n) for o, n in moved.items()},
        "removedFiles": rel_map(removed),
        "retainedFiles": sorted({names.rel(p) for p in retained}),
        "backupErrors": {names.rel(k): {"file": names.rel(k), "message": message(v)} for k, v in backup_errors.items()},
        "moveErrors": {names.rel(k): {"file": names.rel(k), "message": message(v)} for k, v in move_errors.items()},
        "deleteErrors": rel_map(delete_errors),
        "catalogWriteError": report.get("catalogWriteError") or None,
        "resourceSaveError": report.get("resourceSaveError") or None,
        "totalMovedFiles": int(report.get("totalMovedFiles") or len(moved)),
        "totalRemovedFiles": int(report.get("totalRemovedFiles") or len(removed)),
        "totalFileErrors": int(report.get("totalFileErrors") or (len(backup_errors) + len(move_errors)
                                                                  + len(delete_errors))),
    }
    return results, converted
