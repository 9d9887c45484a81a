"""Planning a mitigation: a pure function from a survey report to the actions that fix each resource.

Nothing here reads or writes files. A dry run writes this plan and stops; the executors carry it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from container_app.core.deidentification import MORE_DEIDENTIFIED, Hold, hold_for, is_less_deidentified
from container_app.core.naming import unsafe_name_reason
from container_app.core.vocabulary import ActionKind, ConflictReason, KeepPolicy, KeepReason, RequestStatus


class StatLike(Protocol):
    """What a file's stat tells of its identity (`os.stat_result` has it; core reads no file itself)."""

    @property
    def st_ino(self) -> int: ...
    @property
    def st_size(self) -> int: ...
    @property
    def st_mtime_ns(self) -> int: ...
    @property
    def st_ctime_ns(self) -> int: ...


@dataclass(frozen=True, slots=True)
class FileState:
    """A file as the survey saw it; execution refuses to act if it no longer looks like this."""

    path: str  # relative to ROOT
    size: int
    mtime_ns: int
    sha256: str | None  # a survey report of schema 1.1 hashes only the copies of one instance
    # The file's identity when surveyed (schema 1.1): what proves a file without a sha256 unchanged. Its sha256
    # is then taken when the mitigation starts on it (`with_sha256`), before anything is copied or changed.
    inode: int | None = None
    ctime_ns: int | None = None

    def same_identity(self, st: StatLike) -> bool:
        """Whether a file's stat shows this file unchanged: same inode, size, modification and change times.

        What proves unchanged a file the survey did not hash: every write sets the change time, and no call
        a user may make sets it back.
        """
        return (st.st_ino == self.inode and st.st_ctime_ns == self.ctime_ns and st.st_size == self.size
                and st.st_mtime_ns == self.mtime_ns)

    @property
    def provable(self) -> bool:
        """Whether execution can tell that the file is the one surveyed: by its bytes, or by its identity."""
        return self.sha256 is not None or (self.inode is not None and self.ctime_ns is not None)


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    source: FileState
    target: str | None  # new path relative to ROOT, for RENAME
    reason: str  # why: NAME_MISMATCH, DUPLICATE_KEPT:<KeepReason>, DUPLICATE_SURPLUS
    group: tuple[str, str] | None = None  # (SOPClassUID, SOPInstanceUID) of a duplicate group


def with_sha256(action: Action, sha256: str | None) -> Action:
    """The action with the sha256 its file was proven to have (by its backup); unchanged without one."""
    if sha256 is None or action.source.sha256 == sha256:
        return action
    return replace(action, source=replace(action.source, sha256=sha256))


@dataclass(frozen=True, slots=True)
class Conflict:
    path: str
    target: str
    reason: ConflictReason


@dataclass(frozen=True, slots=True)
class HeldGroup:
    """An actionable duplicate group of which nothing moves, for its copies' de-identification (issue 15)."""

    sop_instance_uid: str
    members: tuple[str, ...]  # paths relative to ROOT
    reason: Hold
    look_at: tuple[str, ...]  # keywords of the attributes to compare, from the survey report


@dataclass(frozen=True, slots=True)
class ResourcePlan:
    resource_path: str
    identity: Mapping[str, str | None]
    catalog_path: str | None
    survey_status: RequestStatus
    actions: tuple[Action, ...]  # in execution order: removals before the renames that need their names
    conflicts: tuple[Conflict, ...]
    files_at_survey: tuple[FileState, ...]  # every file the survey saw: new arrivals make the resource stale
    untouched_bad: int
    untouched_nonactionable: int
    held: tuple[HeldGroup, ...] = ()


@dataclass(frozen=True, slots=True)
class MitigationPlan:
    run_id: str
    root: str
    template: str
    keep: KeepPolicy
    resources: tuple[ResourcePlan, ...]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def _state(file: Mapping[str, Any]) -> FileState:
    return FileState(file["path"], file["size"], file["mtimeNs"], file.get("sha256"), file.get("inode"),
                     file.get("ctimeNs"))


def _intact(members: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [m for m in members if m.get("intact", True)]


def choose_keeper(members: Sequence[Mapping[str, Any]], keep: KeepPolicy,
                  identical: bool | None) -> tuple[Mapping[str, Any], KeepReason | str]:
    """Which copy of an actionable duplicate group stays, and why (a KeepReason, or MORE_DEIDENTIFIED).

    Whatever `keep` says, a copy less de-identified than another intact copy is never kept (issue 15);
    `keep` chooses among the equally de-identified. A group `hold_for` holds is not given here.
    """
    intact = _intact(members)
    more = [m for m in intact if not is_less_deidentified(m)]
    guarded = bool(more) and len(more) < len(intact)
    candidates = (more if guarded else intact) or list(members)
    damaged_others = len(intact) < len(members) and len(intact) >= 1

    def at_expected(m: Mapping[str, Any]) -> bool:
        return bool(m["path"].rsplit("/", 1)[-1] == m["expectedName"])

    if identical:
        placed = [m for m in candidates if at_expected(m)]
        if placed:
            return placed[0], KeepReason.IDENTICAL_AT_EXPECTED_NAME
    ordered = sorted(candidates, key=lambda m: (m["mtimeNs"], m["path"]))
    if keep is KeepPolicy.EXPECTED_NAME:
        placed = [m for m in candidates if at_expected(m)]
        if placed:
            return placed[0], KeepReason.AT_EXPECTED_NAME
    chosen = ordered[0] if keep is KeepPolicy.OLDEST else ordered[-1]
    if guarded:
        return chosen, MORE_DEIDENTIFIED
    if damaged_others and len(intact) == 1:
        return chosen, KeepReason.ONLY_INTACT_COPY
    return chosen, KeepReason.OLDEST if keep is KeepPolicy.OLDEST else KeepReason.NEWEST


def duplicate_group_members(group: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]]
                            ) -> list[Mapping[str, Any]]:
    """The copies of a duplicate group as the plan weighs them: the survey's file documents, in path order."""
    return [files[p] for p in sorted(group["members"])]


def plan_resource(resource: Mapping[str, Any], keep: KeepPolicy) -> ResourcePlan:
    """The actions that bring one surveyed resource to XNAT's naming, and what cannot be done."""
    files = {f["path"]: f for f in resource["files"]}
    actions: list[Action] = []
    conflicts: list[Conflict] = []
    held: list[HeldGroup] = []

    for group in resource["duplicateGroups"]:
        if not group["actionable"]:
            continue
        members = duplicate_group_members(group, files)
        hold = hold_for(members, _intact(members))
        if hold is not None:  # nothing of it moves; the plan says why and what to look at
            look_at = tuple((group.get("deidentification") or {}).get("lookAt", ()))
            held.append(HeldGroup(group["sopInstanceUID"], tuple(m["path"] for m in members), hold, look_at))
            continue
        keeper, why = choose_keeper(members, keep, group["identical"])
        pair = (group["sopClassUID"], group["sopInstanceUID"])
        for member in members:
            if member is keeper:
                continue
            actions.append(Action(ActionKind.REMOVE, _state(member), None, "DUPLICATE_SURPLUS", pair))
        target = _join(_parent(keeper["path"]), keeper["expectedName"])
        kind = ActionKind.RETAIN if target == keeper["path"] else ActionKind.RENAME
        actions.append(Action(kind, _state(keeper), target if kind is ActionKind.RENAME else None,
                              f"DUPLICATE_KEPT:{why}", pair))

    for path, expected in sorted(resource["xnat"]["mismatchedFiles"].items()):
        actions.append(Action(ActionKind.RENAME, _state(files[path]), _join(_parent(path), expected), "NAME_MISMATCH"))

    actions, conflicts = _resolve(actions, files)
    xnat = resource["xnat"]
    return ResourcePlan(
        resource_path=resource["path"],
        identity=resource["identity"],
        catalog_path=resource["identity"]["catalogPath"],
        survey_status=RequestStatus(resource["requestStatus"]),
        actions=tuple(actions),
        conflicts=tuple(conflicts),
        files_at_survey=tuple(_state(f) for f in resource["files"]),
        untouched_bad=xnat["totalBadFiles"],
        untouched_nonactionable=xnat["totalFilesInNonActionableDuplicates"],
        held=tuple(held),
    )


def _resolve(actions: list[Action], files: Mapping[str, Any]) -> tuple[list[Action], list[Conflict]]:
    """Drop actions that would overwrite or collide, and order the rest so each target is free when needed.

    A rename may take a name another file is leaving (a surplus copy being removed, or a file
    renamed first); it may never take the name of a file that stays.
    """
    conflicts: list[Conflict] = []
    renames = [a for a in actions if a.kind is ActionKind.RENAME]
    by_target: dict[str, list[Action]] = {}
    for action in renames:
        assert action.target is not None
        by_target.setdefault(action.target, []).append(action)
    blocked: set[str] = set()
    for target, claimants in by_target.items():
        if len(claimants) > 1:
            blocked.update(a.source.path for a in claimants)
            conflicts.extend(Conflict(a.source.path, target, ConflictReason.SAME_TARGET) for a in claimants)
    for action in actions:
        if action.kind is ActionKind.RETAIN:
            continue
        if not action.source.provable:
            blocked.add(action.source.path)
            conflicts.append(Conflict(action.source.path, action.target or "", ConflictReason.NOT_HASHED))
        elif action.target is not None and unsafe_name_reason(action.target.rsplit("/", 1)[-1]):
            blocked.add(action.source.path)
            conflicts.append(Conflict(action.source.path, action.target, ConflictReason.UNSAFE_TARGET))

    # A group whose keeper cannot move keeps every copy: removing them would leave no file at the name.
    # Settling renames can block more keepers, so repeat until nothing changes.
    while True:
        stuck = {a.group for a in actions if a.group is not None and a.source.path in blocked}
        removals = [a for a in actions
                    if a.kind is ActionKind.REMOVE and a.source.path not in blocked and a.group not in stuck]
        ordered, waiting = _order_renames([a for a in renames if a.source.path not in blocked], removals, files)
        newly = {a.source.path for a in waiting}
        if not newly:
            break
        blocked |= newly
        for action in waiting:
            assert action.target is not None
            conflicts.append(Conflict(action.source.path, action.target, ConflictReason.TARGET_TAKEN))
    retained = [a for a in actions if a.kind is ActionKind.RETAIN]
    return [*removals, *ordered, *retained], conflicts


def _order_renames(renames: list[Action], removals: list[Action],
                   files: Mapping[str, Any]) -> tuple[list[Action], list[Action]]:
    """Renames in an order where each target is free when its turn comes; and those that never get free."""
    leaving = {a.source.path for a in removals}
    pending, ordered = list(renames), []
    progress = True
    while progress:
        progress = False
        for action in list(pending):
            if action.target not in files or action.target in leaving:
                ordered.append(action)
                leaving.add(action.source.path)
                pending.remove(action)
                progress = True
    return ordered, pending  # what is left waits on a file that stays, or on each other in a cycle


def plan_mitigation(survey_report: Mapping[str, Any], keep: KeepPolicy) -> MitigationPlan:
    """The whole plan: one entry per resource with anything to do or anything that blocks it."""
    resources = [plan_resource(r, keep) for r in survey_report["resources"] if _actionable(r)]
    return MitigationPlan(run_id=survey_report["runId"], root=survey_report["root"],
                          template=survey_report["template"], keep=keep, resources=tuple(resources))


def _actionable(resource: Mapping[str, Any]) -> bool:
    # ERROR: a folder of the resource could not be listed; what it holds is unknown, so nothing is planned.
    if resource["requestStatus"] == RequestStatus.ERROR.value:
        return False
    xnat = resource["xnat"]
    return bool(xnat["totalMismatchedFiles"] or xnat["totalDuplicates"])


def plan_document(plan: MitigationPlan) -> dict[str, Any]:
    """The plan as JSON-ready data (`mitigation-plan.json`)."""
    return {
        "reportType": "mitigation-plan",
        "runId": plan.run_id,
        "root": plan.root,
        "template": plan.template,
        "keep": plan.keep.value,
        "resources": [
            {
                "path": r.resource_path,
                "identity": dict(r.identity),
                "actions": [_plan_action_document(a) for a in r.actions],
                "conflicts": [{"path": c.path, "target": c.target, "reason": c.reason.value} for c in r.conflicts],
                "untouchedBadFiles": r.untouched_bad,
                "untouchedNonActionableDuplicates": r.untouched_nonactionable,
                "heldGroups": [{"sopInstanceUID": h.sop_instance_uid, "members": list(h.members),
                                "reason": h.reason.value, "lookAt": list(h.look_at)} for h in r.held],
            }
            for r in plan.resources
        ],
        "totals": plan_totals(plan.resources),
    }


def _plan_action_document(action: Action) -> dict[str, Any]:
    return {"action": action.kind.value, "path": action.source.path, "newPath": action.target,
            "reason": action.reason, "sha256": action.source.sha256}


def plan_totals(resources: Iterable[ResourcePlan]) -> dict[str, int]:
    counts = {"resources": 0, "renames": 0, "removals": 0, "retained": 0, "conflicts": 0}
    for resource in resources:
        counts["resources"] += 1
        counts["conflicts"] += len(resource.conflicts)
        for action in resource.actions:
            key = {ActionKind.RENAME: "renames", ActionKind.REMOVE: "removals", ActionKind.RETAIN: "retained"}
            counts[key[action.kind]] += 1
    return counts
