"""The report people read: one self-contained `report.html` per survey or mitigation run.

Rendered from the Jinja2 templates in `container_app/reports/html/templates/` with autoescaping always on, so a file
name is always text, never markup. The page is self-contained (inline CSS, no scripts, fonts or links
to anything outside it) so it opens offline and from XNAT's resource file viewer.

The page stays small whatever the archive: each table shows at most `max_rows` rows and the whole page
at most `row_budget` detail rows, with a note of how many more the JSON report holds. Resources are
rendered one at a time into a temporary file (`HtmlReportWriter.add`), so a caller that streams its
resources never holds more than one resource's view; the top of the page, which needs the totals, is
rendered last and the pieces joined into `report.html` atomically.

The mitigation part reads `mitigation-report.json` defensively (`.get` everywhere): what it lacks is
left out, never an error.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import IO, Any

import jinja2

from container_app import __version__
from container_app.reports.survey import RenderedResource
from container_app.support.compiled_cache import template_bytecode_cache
from container_app.support.fsutil import SaveFile

HTML_REPORT = "report.html"
SURVEY_REPORT = "survey-report.json"
MITIGATION_REPORT = "mitigation-report.json"

MAX_ROWS = 200  # rows per table
ROW_BUDGET = 4000  # detail rows in the whole page
SECTION_BYTES = 1_300_000  # the detail sections together; with the rest, the page stays under 2 MB
MIN_ERROR_ROWS = 50  # errors are shown even when the budget is spent
MAX_RESOURCE_ROWS = 500  # rows of the table of resources needing attention
MAX_CONFORMING_ROWS = 200  # rows of the table of conforming resources
MAX_SECTIONS = 200  # resources with a detail section
MAX_CHART_BARS = 40  # scans in the chart (the ones with most problems)

TOOL = f"xnat-resource-survey {__version__}"

#: The count columns of the resource tables: key in the row's `counts`, heading.
SURVEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("totalEntries", "files"),
    ("totalUids", "UIDs"),
    ("totalMismatchedFiles", "mismatched"),
    ("totalDuplicates", "duplicate groups"),
    ("totalNonActionableDuplicates", "non-actionable groups"),
    ("totalBadFiles", "bad files"),
    ("identifyingNames", "identifying names"),
)
MITIGATION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("totalMovedFiles", "moved"),
    ("totalRemovedFiles", "removed"),
    ("totalFileErrors", "file errors"),
)

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

_SEGMENTS = (("totalMismatchedFiles", "seg-mismatched", "mismatched"),
             ("totalFilesInDuplicates", "seg-duplicates", "in duplicate groups"),
             ("totalFilesInNonActionableDuplicates", "seg-nonactionable", "in non-actionable groups"),
             ("totalBadFiles", "seg-bad", "bad"))


# --- helpers shared with the roll-up -----------------------------------------------------------------


@cache
def environment() -> jinja2.Environment:
    """The template environment: package templates, autoescaping on for everything, undefined is an error."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("container_app.reports.html", "templates"),
        bytecode_cache=template_bytecode_cache(),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


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


def mitigation_counts(xnat: Mapping[str, Any]) -> dict[str, int]:
    """XNAT's mitigation totals of one resource, counted from the lists when the totals are missing."""
    moved = xnat.get("totalMovedFiles", xnat.get("movedFiles"))
    removed = xnat.get("totalRemovedFiles", xnat.get("removedFiles"))
    errors = xnat.get("totalFileErrors")
    if errors is None:
        errors = sum(count(xnat.get(k)) for k in ("backupErrors", "moveErrors", "deleteErrors"))
    return {"totalMovedFiles": count(moved), "totalRemovedFiles": count(removed), "totalFileErrors": count(errors)}


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


def _relative(path: str, resource_path: str) -> str:
    if resource_path in ("", ".") or not path.startswith(resource_path + "/"):
        return path
    return path[len(resource_path) + 1:]


def _moment(mtime_ns: Any) -> str:
    if not isinstance(mtime_ns, int) or isinstance(mtime_ns, bool):
        return ""
    try:
        moment = dt.datetime.fromtimestamp(mtime_ns / 1e9, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _label(identity: Mapping[str, Any], fallback: str) -> str:
    parts = [text(identity.get("project")), text(identity.get("session"))]
    if identity.get("scanId") is not None:
        parts.append(f"scan {identity['scanId']}")
    if identity.get("resourceLabel") is not None:
        parts.append(text(identity["resourceLabel"]))
    parts = [p for p in parts if p]
    return " / ".join(parts) if len(parts) > 1 else fallback


# --- the writer --------------------------------------------------------------------------------------


class _Table:
    """At most `limit` rows of a longer list, and how many there were."""

    def __init__(self, rows: list[Any], total: int) -> None:
        self.rows = rows
        self.total = total
        self.more = total - len(rows)
        self.kind = self.title = self.keep_note = ""  # what a table of duplicate groups also says


class HtmlReportWriter:
    """Writes `OUT/report.html` from resource documents fed one at a time.

    `add(resource, mitigation)` renders a resource's detail section at once into a temporary file in OUT
    and keeps only a small summary row; `finish(envelope, mitigation_report)` renders the top of the page
    (totals, chart, tables of resources), joins the pieces into `report.html` atomically and returns its path.
    """

    def __init__(self, out_dir: str, *, max_rows: int = MAX_ROWS, row_budget: int = ROW_BUDGET,
                 section_bytes: int = SECTION_BYTES, max_sections: int = MAX_SECTIONS,
                 max_resource_rows: int = MAX_RESOURCE_ROWS) -> None:
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.max_rows = max_rows
        self.rows_left = row_budget
        self.max_sections = max_sections
        self.section_bytes_left = section_bytes
        self.max_resource_rows = max_resource_rows
        self.budget_exhausted = False
        self.totals: Counter[str] = Counter()
        self.mitigated_totals: Counter[str] = Counter()
        self.resource_statuses: Counter[str] = Counter()
        self.mitigation_statuses: Counter[str] = Counter()
        self.after_statuses: Counter[str] = Counter()  # XNAT's status after the mitigation, every resource
        self.mitigated_resources = 0
        self.attention: list[dict[str, Any]] = []
        self.attention_total = 0
        self.conforming: list[dict[str, Any]] = []
        self.conforming_total = 0
        self.scans: dict[str, dict[str, Any]] = {}
        self.sections_shown = 0
        self.sections_total = 0
        self.any_mitigation = False
        # Non-UTF-8 file names arrive as lone surrogates: shown as `\udcXX`, as the JSON report writes them.
        self._sections: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115
            "w+", encoding="utf-8", errors="backslashreplace", dir=out_dir)
        self._template = environment().get_template("report_resource.html.j2")

    # -- feeding -------------------------------------------------------------------------------------

    def add_rendered(self, rendered: RenderedResource) -> None:
        """A resource as the survey's workers hand it over: its summary is enough for the tables, and its
        JSON text is parsed only if the page has room for its detail section."""
        self.add(rendered.summary, details=lambda: json.loads(rendered.text))

    def add(self, resource: Mapping[str, Any] | None, mitigation: Mapping[str, Any] | None = None, *,
            details: Callable[[], Mapping[str, Any]] | None = None) -> None:
        """One resource of the survey report, with its part of the mitigation report if there is one.

        `resource` may be None for a resource only the mitigation report knows. `details`, when given,
        returns the whole resource for its detail section; `resource` then needs only what the tables show.
        """
        resource = resource or {}
        mitigation = mitigation if isinstance(mitigation, Mapping) else None
        path = text(resource.get("path") or (mitigation or {}).get("path")) or "(unnamed resource)"
        identity = mapping(resource.get("identity") or (mitigation or {}).get("identity"))
        xnat = mapping(resource.get("xnat"))
        counts = {key: count(xnat.get(key)) for key, _ in SURVEY_COLUMNS if key != "identifyingNames"}
        counts["identifyingNames"] = count(mapping(resource.get("counts")).get("identifyingName"))
        for key in ("totalFilesInDuplicates", "totalFilesInNonActionableDuplicates"):
            counts[key] = count(xnat.get(key))
        status = text(resource.get("requestStatus")) or "UNKNOWN"
        if resource:
            self.resource_statuses[status] += 1
            self.totals.update(counts)
            self.totals["resources"] += 1
            self.totals["catalogEntriesMissingFile"] += count(mapping(resource.get("catalog")).get("missingFiles"))
        m_status: str | None = None
        after: str | None = None
        if mitigation is not None:
            self.any_mitigation = True
            self.mitigated_resources += 1
            m_counts = mitigation_counts(mapping(mitigation.get("xnat")))
            counts.update(m_counts)
            self.mitigated_totals.update(m_counts)
            m_status = mitigation_status(mitigation)
            after = after_status(mitigation)
            self.mitigation_statuses[m_status] += 1
        else:
            counts.update(dict.fromkeys((k for k, _ in MITIGATION_COLUMNS), 0))
        self.after_statuses[after or status] += 1

        self._add_scan(identity, path, counts)
        needs_section = (status != "CONFORMING" or mitigation is not None
                         or bool(mapping(resource.get("catalog")).get("missingFiles"))
                         or bool(mapping(resource.get("catalog")).get("error"))
                         or any(count(v) for v in mapping(resource.get("counts")).values()))
        anchor = None
        if needs_section:
            self.sections_total += 1
            if self.sections_shown < self.max_sections and self.section_bytes_left > 0:
                self.sections_shown += 1
                anchor = f"r{self.sections_shown}"

                whole = details() if details is not None else resource

                def section() -> str:
                    view = None if mitigation is None else self._mitigation_view(mitigation, path, m_status or "",
                                                                                  after or "")
                    return self._template.render(
                        r=self._resource_view(whole, path, identity, status, counts, anchor, mitigation, view),
                        source=SURVEY_REPORT, mitigation_source=MITIGATION_REPORT)

                html = section()
                size = len(html.encode("utf-8", "backslashreplace"))
                if size <= self.section_bytes_left:
                    self.section_bytes_left -= size
                else:  # the page is full: this last section with counts and errors only, then no more
                    self.rows_left = 0
                    self.budget_exhausted = True
                    self.section_bytes_left = 0
                    html = section()
                self._sections.write(html)
        row = {"path": path, "label": _label(identity, path), "status": status, "status_class": status_class(status),
               "mitigation": m_status and {"status": m_status, "status_class": status_class(m_status),
                                           "after": after, "after_class": status_class(after or "")},
               "counts": counts, "anchor": anchor}
        if status == "CONFORMING" and not needs_section:
            self.conforming_total += 1
            if len(self.conforming) < min(self.max_resource_rows, MAX_CONFORMING_ROWS):
                self.conforming.append(row)
        else:
            self.attention_total += 1
            if len(self.attention) < self.max_resource_rows:
                self.attention.append(row)

    def _add_scan(self, identity: Mapping[str, Any], path: str, counts: Mapping[str, int]) -> None:
        problems = {key: counts.get(key, 0) for key, _, _ in _SEGMENTS}
        if not any(problems.values()):
            return
        if identity.get("scanId") is not None:
            key = "/".join(text(identity.get(k)) for k in ("project", "session", "scanId"))
            label = " / ".join(p for p in (text(identity.get("session")), f"scan {identity['scanId']}") if p)
        else:
            key = label = path
        scan = self.scans.setdefault(key, {"key": key, "label": label, "title": path, "counts": Counter()})
        scan["counts"].update(problems)

    def _take(self, rows: Iterable[Any], *, minimum: int = 0) -> _Table:
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
            self.budget_exhausted = True
        return _Table(kept, total)

    # -- views ---------------------------------------------------------------------------------------

    def _resource_view(self, resource: Mapping[str, Any], path: str, identity: Mapping[str, Any], status: str,
                       counts: Mapping[str, int], anchor: str, mitigation: Mapping[str, Any] | None,
                       mitigation_view: Mapping[str, Any] | None) -> dict[str, Any]:
        files = [f for f in sequence(resource.get("files")) if isinstance(f, Mapping)]
        groups = [g for g in sequence(resource.get("duplicateGroups")) if isinstance(g, Mapping)]
        duplicate_files = {text(f.get("path")): f for f in files if f.get("status") == "DUPLICATE"}
        decided: dict[str, str] = {}
        if mitigation is not None:
            for action in sequence(mitigation.get("actions")):
                if isinstance(action, Mapping) and text(action.get("path")) in duplicate_files:
                    decided[text(action["path"])] = text(action.get("action")).upper()
        plan: dict[str, tuple[str, str | None]] = {}  # path: (action, new name), for actionable duplicates
        keepers: dict[int, tuple[str, str]] = {}  # group index: (kept path, why)
        for index, group in enumerate(groups):
            if group.get("actionable") is True:
                kept, why = _keeper(group, duplicate_files, decided)
                keepers[index] = (kept, why)
                for member, expected in mapping(group.get("members")).items():
                    if member == kept:
                        at_name = _relative(member, path).rsplit("/", 1)[-1] == expected
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
                yield {"name": _relative(text(f.get("path")), path), "new": new, "action": action,
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
                    members.append({"name": _relative(member, path), "expected": text(expected),
                                    "mtime": _moment(info.get("mtimeNs")), "keep": member == kept,
                                    "tags": [text(t) for t in sequence(info.get("identifyingTags"))]})
                identical = group.get("identical")
                yield {"uid": text(group.get("sopInstanceUID")), "class_uid": text(group.get("sopClassUID")),
                       "size": len(members), "members": members, "why": why,
                       "identical": "identical" if identical is True else "contents differ" if identical is False
                       else "not compared"}

        def bad_rows() -> Iterator[dict[str, Any]]:
            for f in files:
                if f.get("status") == "BAD":
                    yield {"name": _relative(text(f.get("path")), path), "detail": text(f.get("detail")),
                           "reasons": [text(r) for r in sequence(f.get("reasons"))],
                           "tags": [text(t) for t in sequence(f.get("identifyingTags"))]}

        catalog = mapping(resource.get("catalog"))
        missing = ({"uri": text(e.get("uri")), "reason": text(e.get("reason"))}
                   for e in sequence(catalog.get("missingFiles")) if isinstance(e, Mapping))
        duplicate_table = self._take(group_rows(True))
        duplicate_table.kind, duplicate_table.title = "duplicates", "Duplicate groups"
        duplicate_table.keep_note = (
            "Kept: as the mitigation decided." if not preview else
            "Kept: preview; mitigation decides. The copy already at its expected name is kept when all copies "
            "are identical, otherwise the newest by modification time (XNAT keeps the newest).")
        nonactionable_table = self._take(group_rows(False))
        nonactionable_table.kind = "nonactionable"
        nonactionable_table.title = "Non-actionable duplicates (same UIDs, different expected names; left alone)"
        notes = [(k, count(v)) for k, v in mapping(resource.get("counts")).items()
                 if count(v) and k not in ("identifyingName", "legacyName")]
        return {
            "anchor": anchor, "path": path, "label": _label(identity, path), "status": status,
            "status_class": status_class(status), "counts": counts,
            "open": self.sections_shown <= 10 and status != "CONFORMING",
            "catalog_path": text(identity.get("catalogPath")), "catalog_error": text(catalog.get("error")),
            "notes": notes, "changes": self._take(changes()), "groups": duplicate_table,
            "nonactionable": nonactionable_table, "bad": self._take(bad_rows()), "missing": self._take(missing),
            "mitigation": mitigation_view,
        }

    def _mitigation_view(self, mitigation: Mapping[str, Any], path: str, status: str, after: str
                         ) -> dict[str, Any]:
        xnat = mapping(mitigation.get("xnat"))
        m_counts = mitigation_counts(xnat)

        def errors() -> Iterator[dict[str, str]]:
            backup_errors = xnat.get("backupErrors")
            if isinstance(backup_errors, Mapping):
                for name, message in backup_errors.items():
                    yield {"name": _relative(text(name), path), "step": "backup", "message": _message(message)}
            else:
                for entry in sequence(backup_errors):
                    if isinstance(entry, Mapping):
                        yield {"name": _relative(text(entry.get("file")), path), "step": "backup",
                               "message": _message(entry)}
                    else:
                        yield {"name": "", "step": "backup", "message": text(entry)}
            for name, error in mapping(xnat.get("moveErrors")).items():
                yield {"name": _relative(text(name), path), "step": "move", "message": _message(error)}
            for name, error in mapping(xnat.get("deleteErrors")).items():
                yield {"name": _relative(text(name), path), "step": "delete", "message": _message(error)}

        backup_folder = text(mitigation.get("backupFolder") or xnat.get("cachePath") or mitigation.get("backupRoot"))

        def actions() -> Iterator[dict[str, str]]:
            for action in sequence(mitigation.get("actions")):
                if not isinstance(action, Mapping):
                    continue
                kind = text(action.get("action")).upper()
                yield {"action": kind, "cls": {"RENAME": "rename", "REMOVE": "remove"}.get(kind, "keep"),
                       "name": _relative(text(action.get("path")), path),
                       "new": _relative(text(action.get("newPath")), path),
                       "backup": _relative(text(action.get("backupPath")), backup_folder.rstrip("/")),
                       "outcome": text(action.get("outcome")), "error": _message(action.get("error")),
                       "reason": _message(action.get("reason"))}

        def conflicts() -> Iterator[dict[str, str]]:
            for conflict in sequence(mitigation.get("conflicts")):
                if isinstance(conflict, Mapping):
                    yield {"name": _relative(text(conflict.get("path")), path),
                           "target": _relative(text(conflict.get("target")), path),
                           "reason": text(conflict.get("reason"))}

        resource_errors = [f"{label}: {_message(xnat.get(key))}" for key, label in
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
            "catalog": {"path": _relative(text(catalog.get("path")), path), "backup": text(catalog.get("backupPath")),
                        "renamed": count(catalog.get("entriesRenamed")),
                        "removed": count(catalog.get("entriesRemoved"))} if catalog else None,
            "resource_errors": resource_errors,
            "conflicts": self._take(conflicts(), minimum=MIN_ERROR_ROWS),
            "errors": self._take(errors(), minimum=MIN_ERROR_ROWS),
            "actions": self._take(actions()),
            "moved_rows": self._take((_relative(text(k), path), _relative(text(v), path))
                                     for k, v in mapping(xnat.get("movedFiles")).items()),
            "removed_rows": self._take((_relative(text(k), path), _relative(text(v), backup_folder.rstrip("/")))
                                       for k, v in mapping(xnat.get("removedFiles")).items()),
        }

    # -- finishing -----------------------------------------------------------------------------------

    def finish(self, envelope: Mapping[str, Any], mitigation_report: Mapping[str, Any] | None = None,
               mitigation_report_path: str | None = None) -> str:
        """Write `report.html` (the survey report's envelope gives the run's details) and return its path.

        The restore command names `mitigation_report_path` (default: OUT/mitigation-report.json).
        """
        path = os.path.join(self.out_dir, HTML_REPORT)
        try:
            context = self._page_context(envelope, mitigation_report, mitigation_report_path)
            environment_ = environment()
            with SaveFile(path) as handle:
                for chunk in environment_.get_template("report_head.html.j2").generate(**context):
                    handle.write(chunk)
                self._sections.seek(0)
                shutil.copyfileobj(self._sections, handle)
                for chunk in environment_.get_template("report_foot.html.j2").generate(**context):
                    handle.write(chunk)
        finally:
            self._sections.close()
        return path

    def abort(self) -> None:
        self._sections.close()

    def _page_context(self, envelope: Mapping[str, Any], mitigation_report: Mapping[str, Any] | None,
                      mitigation_report_path: str | None) -> dict[str, Any]:
        mitigation_report = mitigation_report if isinstance(mitigation_report, Mapping) else None
        totals = self.totals
        survey_status = worst_status(self.resource_statuses) if self.resource_statuses else "CONFORMING"
        overall, note = survey_status, "from the survey"
        mitigation = None
        if mitigation_report is not None or self.any_mitigation:
            report = mitigation_report or {}
            dry_run = bool(report.get("dryRun")) or text(report.get("reportType")) == "mitigation-plan"
            if dry_run:
                note = "from the survey; the mitigation was a dry run and changed nothing"
            else:
                overall = worst_status(self.after_statuses, survey_status)
                note = f"after the mitigation; before it, the survey found {survey_status}"
            report_path = os.path.abspath(mitigation_report_path or os.path.join(self.out_dir, MITIGATION_REPORT))
            m_totals = self.mitigated_totals
            report_totals = mapping(report.get("totals"))
            statuses = sorted(self.mitigation_statuses.items())
            mitigation = {
                "statuses": [{"status": k, "status_class": status_class(k), "n": n} for k, n in statuses],
                "dry_run": dry_run, "backup_root": text(report.get("backupRoot")),
                "restore_command": None if dry_run else
                f"xnat-resource-survey restore --report {shlex.quote(report_path)}",
                "survey_report": text(report.get("surveyReport")),
                "executor": text(report.get("executor")),
                "server": {k: text(mapping(report.get("xnatServer")).get(k))
                           for k in ("host", "version", "way", "wayReason")},
                "stats": [
                    {"key": "resources", "label": "resources mitigated", "value": self.mitigated_resources,
                     "alert": False},
                    {"key": "movedFiles", "label": "files moved (renamed)", "value": m_totals["totalMovedFiles"],
                     "alert": False},
                    {"key": "removedFiles", "label": "files removed (backed up)",
                     "value": m_totals["totalRemovedFiles"], "alert": False},
                    {"key": "fileErrors", "label": "file errors", "value": m_totals["totalFileErrors"],
                     "alert": m_totals["totalFileErrors"] > 0},
                    *({"key": key, "label": label, "value": count(report_totals[key]),
                       "alert": count(report_totals[key]) > 0}
                      for key, label in (("conflicts", "conflicts (left alone)"), ("stale", "stale resources"),
                                         ("failed", "failed resources")) if key in report_totals),
                ],
            }
        stats = [
            ("resources", "resources", totals["resources"], False),
            ("files", "files", totals["totalEntries"], False),
            ("uids", "UIDs", totals["totalUids"], False),
            ("conforming", "conforming resources", self.resource_statuses["CONFORMING"], False),
            ("divergent", "divergent resources", self.resource_statuses["DIVERGENT"], True),
            ("noncompliant", "noncompliant resources", self.resource_statuses["NONCOMPLIANT"], True),
            ("mismatchedFiles", "mismatched files", totals["totalMismatchedFiles"], True),
            ("duplicates", "duplicate groups", totals["totalDuplicates"], True),
            ("filesInDuplicates", "files in duplicate groups", totals["totalFilesInDuplicates"], True),
            ("nonActionableDuplicates", "non-actionable groups", totals["totalNonActionableDuplicates"], True),
            ("badFiles", "bad files", totals["totalBadFiles"], True),
            ("identifyingNames", "names with identifying values", totals["identifyingNames"], True),
            ("catalogEntriesMissingFile", "catalog entries without file", totals["catalogEntriesMissingFile"], True),
        ]
        columns = SURVEY_COLUMNS + (MITIGATION_COLUMNS if mitigation else ())
        title = "XNAT resource " + ("mitigation" if mitigation else "survey")
        meta = [(label, text(envelope.get(key))) for key, label in
                (("runId", "run"), ("root", "root"), ("template", "naming template"), ("startedAt", "started"),
                 ("finishedAt", "finished")) if envelope.get(key)]
        if mitigation_report is not None and mitigation_report.get("runId"):
            meta.append(("mitigation run", text(mitigation_report["runId"])))
        return {
            "tool": TOOL, "title": title, "kind": "mitigation" if mitigation else "survey",
            "run_id": text((mitigation_report or envelope).get("runId")), "meta": meta,
            "overall_status": overall, "overall_class": status_class(overall), "overall_note": note,
            "stats": [{"key": k, "label": label, "value": v, "alert": alert and v > 0} for k, label, v, alert in stats],
            "mitigation": mitigation, "chart": self._chart(), "columns": columns,
            "attention": _Table(self.attention, self.attention_total),
            "conforming": _Table(self.conforming, self.conforming_total),
            "sections_total": self.sections_total, "sections_shown": self.sections_shown,
            "sections_hidden": self.sections_total - self.sections_shown, "budget_exhausted": self.budget_exhausted,
            "source": SURVEY_REPORT, "mitigation_source": MITIGATION_REPORT if mitigation else None,
        }

    def _chart(self) -> dict[str, Any]:
        scans = sorted(self.scans.values(), key=lambda s: (-sum(s["counts"].values()), s["key"]))
        shown = sorted(scans[:MAX_CHART_BARS], key=lambda s: s["key"])
        peak = max((sum(s["counts"].values()) for s in shown), default=0)
        bars = []
        for scan in shown:
            total = sum(scan["counts"].values())
            segments = [{"cls": cls, "name": name, "n": scan["counts"][key],
                         "pct": f"{100 * scan['counts'][key] / peak:.2f}"}
                        for key, cls, name in _SEGMENTS if scan["counts"][key]]
            bars.append({"key": scan["key"], "label": scan["label"], "title": scan["title"], "total": total,
                         "segments": segments})
        legend = [{"cls": cls, "name": name} for _, cls, name in _SEGMENTS]
        return {"bars": bars, "hidden": len(scans) - len(shown), "legend": legend}


def _keeper(group: Mapping[str, Any], files: Mapping[str, Mapping[str, Any]], decided: Mapping[str, str]
            ) -> tuple[str, str]:
    """Which copy of an actionable duplicate group is kept, and why.

    From the mitigation's actions when it has decided; otherwise a preview: the copy already at its expected
    name when all copies are identical, else the newest by modification time (XNAT's rule).
    """
    members = mapping(group.get("members"))
    names = list(members)
    if not names:
        return "", ""
    chosen = [m for m in names if decided.get(m) in ("KEEP", "RETAIN", "RENAME")]
    if chosen:
        return chosen[0], "mitigation"
    if group.get("identical") is True:
        for member in names:
            if member.rsplit("/", 1)[-1] == members[member]:
                return member, "preview: identical, already at its name"
    newest = max(names, key=lambda m: _mtime(files.get(m)))
    return newest, "preview: newest"


def _mtime(file: Mapping[str, Any] | None) -> int:
    value = (file or {}).get("mtimeNs")
    return value if isinstance(value, int) else 0


def _message(value: Any) -> str:
    if isinstance(value, Mapping):
        return text(value.get("message") or value.get("error") or value.get("reason") or "")
    return text(value)


def write_html_report(out_dir: str, survey_report: Mapping[str, Any],
                      mitigation_report: Mapping[str, Any] | None = None, *,
                      mitigation_report_path: str | None = None) -> str:
    """Write `OUT/report.html` for a survey report (and the mitigation that followed it); return its path.

    Resources are matched to the mitigation report's by `path`. The restore command shown names
    `mitigation_report_path`, by default OUT/mitigation-report.json.
    """
    by_path = _mitigated_by_path(mitigation_report)
    writer = HtmlReportWriter(out_dir)
    try:
        for resource in sequence(survey_report.get("resources")):
            if isinstance(resource, Mapping):
                writer.add(resource, by_path.pop(text(resource.get("path")), None))
        for leftover in by_path.values():
            writer.add(None, leftover)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(survey_report, mitigation_report, mitigation_report_path)


def _mitigated_by_path(mitigation_report: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """A mitigation report's resources by path, to pair each with the surveyed resource it changed."""
    by_path: dict[str, Mapping[str, Any]] = {}
    if isinstance(mitigation_report, Mapping):
        for resource in sequence(mitigation_report.get("resources")):
            if isinstance(resource, Mapping):
                by_path[text(resource.get("path"))] = resource
    return by_path
