"""Small helpers that turn report fields into what the pages show: statuses and their CSS classes,
counts, labels and moments. Reports are read defensively: a field that is missing or of another type
gives an empty value, never an error. Shared by the survey/mitigation page and the roll-up page.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: How bad a status is, for an overall status; statuses not listed rank between NONCOMPLIANT and ERROR.
STATUS_RANK = {"CONFORMING": 0, "NONCOMPLIANT": 2, "DIVERGENT": 3, "ERROR": 4, "FAILED": 4}
_UNKNOWN_RANK = 1
_STATUS_CLASSES = {
    # XNAT's request statuses
    "CONFORMING": "conforming", "DIVERGENT": "divergent", "NONCOMPLIANT": "noncompliant", "ERROR": "error",
    "QUEUED_FOR_MITIGATION": "planned",
    # a mitigated resource's status in mitigation-report.json
    "MITIGATED": "mitigated", "PLANNED": "planned", "NOTHING_TO_DO": "conforming", "PARTIAL": "noncompliant",
    "STALE": "noncompliant", "LOCKED": "noncompliant", "FAILED": "error",
}


def status_class(status: str) -> str:
    return "status-" + _STATUS_CLASSES.get(status, "other")


def worst_status(statuses: Iterable[str], default: str = "CONFORMING") -> str:
    """The most serious of several statuses (ERROR > DIVERGENT > NONCOMPLIANT > others > CONFORMING)."""
    worst: str | None = None
    for status in statuses:
        if worst is None or STATUS_RANK.get(status, _UNKNOWN_RANK) > STATUS_RANK.get(worst, _UNKNOWN_RANK):
            worst = status
    return worst if worst is not None else default


def count(value: Any) -> int:
    """A count from a report field that may be missing or of another type."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, list | dict):
        return len(value)
    return 0


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def text(value: Any) -> str:
    return "" if value is None else str(value)


def message(value: Any) -> str:
    """An error's message, whether the report gives it as text or as an object."""
    if isinstance(value, Mapping):
        return text(value.get("message") or value.get("error") or value.get("reason") or "")
    return text(value)


def mitigation_counts(xnat: Mapping[str, Any]) -> dict[str, int]:
    """XNAT's mitigation totals of one resource, counted from the lists when the totals are missing."""
    moved = xnat.get("totalMovedFiles", xnat.get("movedFiles"))
    removed = xnat.get("totalRemovedFiles", xnat.get("removedFiles"))
    errors = xnat.get("totalFileErrors")
    if errors is None:
        errors = sum(count(xnat.get(k)) for k in ("backupErrors", "moveErrors", "deleteErrors"))
    return {"totalMovedFiles": count(moved), "totalRemovedFiles": count(removed), "totalFileErrors": count(errors)}


def planned_counts(mitigation: Mapping[str, Any]) -> dict[str, int]:
    """What the plan would do to one resource: the report's `planned`, or counted from its actions (a plan,
    or a report written before `planned` existed)."""
    planned = mapping(mitigation.get("planned"))
    if planned:
        return {key: count(planned.get(key)) for key in ("wouldMove", "wouldRemove", "wouldRetain")}
    kinds = [text(a.get("action")) for a in sequence(mitigation.get("actions")) if isinstance(a, Mapping)]
    return {"wouldMove": kinds.count("RENAME"), "wouldRemove": kinds.count("REMOVE"),
            "wouldRetain": kinds.count("RETAIN")}


def _failed(xnat: Mapping[str, Any]) -> bool:
    return bool(mitigation_counts(xnat)["totalFileErrors"] or xnat.get("catalogWriteError")
                or xnat.get("resourceSaveError"))


def mitigation_status(resource: Mapping[str, Any]) -> str:
    """What the mitigation did to a resource (MITIGATED, PARTIAL, FAILED...): as reported, else guessed."""
    status = resource.get("status")
    if isinstance(status, str) and status:
        return status
    if "xnat" not in resource:  # a plan (mitigation-plan.json): nothing done yet
        return "PLANNED"
    return "PARTIAL" if _failed(mapping(resource.get("xnat"))) else "MITIGATED"


def after_status(resource: Mapping[str, Any]) -> str:
    """XNAT's status of a mitigated resource afterwards (`requestStatus`), else ERROR when files failed."""
    status = resource.get("requestStatus")
    if isinstance(status, str) and status:
        return status
    if "xnat" not in resource:
        return "QUEUED_FOR_MITIGATION"
    return "ERROR" if _failed(mapping(resource.get("xnat"))) else "CONFORMING"


def relative(path: str, resource_path: str) -> str:
    """A path as the resource's page shows it: inside the resource's folder."""
    if resource_path in ("", ".") or not path.startswith(resource_path + "/"):
        return path
    return path[len(resource_path) + 1:]


def moment(mtime_ns: Any) -> str:
    """A file's modification time (ns since the epoch) as UTC text; empty if it is not a usable time."""
    if not isinstance(mtime_ns, int) or isinstance(mtime_ns, bool):
        return ""
    try:
        when = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def label(identity: Mapping[str, Any], fallback: str) -> str:
    """A resource's name for people: project / session / scan / label, or `fallback` (its path)."""
    parts = [text(identity.get("project")), text(identity.get("session"))]
    if identity.get("scanId") is not None:
        parts.append(f"scan {identity['scanId']}")
    if identity.get("resourceLabel") is not None:
        parts.append(text(identity["resourceLabel"]))
    parts = [p for p in parts if p]
    return " / ".join(parts) if len(parts) > 1 else fallback
