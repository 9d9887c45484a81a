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

import json
import os
import shlex
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from typing import IO, Any

from container_app.reports.html.aftermath import (
    Remainder,
    dry_run_stats,
    mitigation_stats,
    uploaded_names_note,
    what_is_left,
)
from container_app.reports.html.resource_section import RowBudget, Table, mitigation_view, resource_view
from container_app.reports.html.templating import TOOL, environment
from container_app.reports.html.view import (
    after_status,
    count,
    label,
    mapping,
    mitigation_counts,
    mitigation_status,
    planned_counts,
    sequence,
    status_class,
    text,
    worst_status,
)
from container_app.reports.mitigation import MITIGATION_REPORT
from container_app.reports.survey import SURVEY_REPORT, RenderedResource
from container_app.support.fsutil import SaveFile

HTML_REPORT = "report.html"

MAX_ROWS = 200  # rows per table
ROW_BUDGET = 4000  # detail rows in the whole page
SECTION_BYTES = 1_300_000  # the detail sections together; with the rest, the page stays under 2 MB
MAX_RESOURCE_ROWS = 500  # rows of the table of resources needing attention
MAX_CONFORMING_ROWS = 200  # rows of the table of conforming resources
MAX_SECTIONS = 200  # resources with a detail section
MAX_CHART_BARS = 40  # scans in the chart (the ones with most problems)
OPEN_SECTIONS = 10  # the first sections needing attention are shown open

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
#: A dry run changed nothing: its columns say what the run would do.
DRY_RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("wouldMove", "would move"),
    ("wouldRemove", "would remove"),
    ("wouldRetain", "would retain"),
)

_SEGMENTS = (("totalMismatchedFiles", "seg-mismatched", "mismatched"),
             ("totalFilesInDuplicates", "seg-duplicates", "in duplicate groups"),
             ("totalFilesInNonActionableDuplicates", "seg-nonactionable", "in non-actionable groups"),
             ("totalBadFiles", "seg-bad", "bad"))


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
        self.budget = RowBudget(max_rows, row_budget)
        self.max_sections = max_sections
        self.section_bytes_left = section_bytes
        self.max_resource_rows = max_resource_rows
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
            self.totals["unreadableFolders"] += count(mapping(resource.get("folder")).get("unreadable"))
        m_status: str | None = None
        after: str | None = None
        if mitigation is not None:
            self.any_mitigation = True
            self.mitigated_resources += 1
            m_counts = mitigation_counts(mapping(mitigation.get("xnat")))
            planned = planned_counts(mitigation)
            counts.update(m_counts)
            counts.update(planned)
            self.mitigated_totals.update(m_counts)
            self.mitigated_totals.update(planned)
            m_status = mitigation_status(mitigation)
            after = after_status(mitigation)
            self.mitigation_statuses[m_status] += 1
        else:
            counts.update(dict.fromkeys((k for k, _ in MITIGATION_COLUMNS + DRY_RUN_COLUMNS), 0))
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
                    view = None if mitigation is None else mitigation_view(mitigation, path, m_status or "",
                                                                           after or "", self.budget)
                    return self._template.render(
                        r=resource_view(whole, path, identity, status, counts, anchor, mitigation, view, self.budget,
                                        open_section=self.sections_shown <= OPEN_SECTIONS),
                        source=SURVEY_REPORT, mitigation_source=MITIGATION_REPORT)

                html = section()
                size = len(html.encode("utf-8", "backslashreplace"))
                if size <= self.section_bytes_left:
                    self.section_bytes_left -= size
                else:  # the page is full: this last section with counts and errors only, then no more
                    self.budget.spend_all()
                    self.section_bytes_left = 0
                    html = section()
                self._sections.write(html)
        row = {"path": path, "label": label(identity, path), "status": status, "status_class": status_class(status),
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
            bar_label = " / ".join(p for p in (text(identity.get("session")), f"scan {identity['scanId']}") if p)
        else:
            key = bar_label = path
        scan = self.scans.setdefault(key, {"key": key, "label": bar_label, "title": path, "counts": Counter()})
        scan["counts"].update(problems)

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
        left: list[Remainder] = []
        if mitigation_report is not None or self.any_mitigation:
            report = mitigation_report or {}
            dry_run = bool(report.get("dryRun")) or text(report.get("reportType")) == "mitigation-plan"
            if dry_run:
                note = "from the survey; the mitigation was a dry run and changed nothing"
            else:
                overall = worst_status(self.after_statuses, survey_status)
                note = f"after the mitigation; before it, the survey found {survey_status}"
                left = what_is_left(totals, mapping(report.get("totals")))
                if left:
                    note += ". What is left, and what to do with it, is listed below"
            report_path = os.path.abspath(mitigation_report_path or os.path.join(self.out_dir, MITIGATION_REPORT))
            m_totals = self.mitigated_totals
            report_totals = mapping(report.get("totals"))
            statuses = sorted(self.mitigation_statuses.items())
            mitigation = {
                "statuses": [{"status": k, "status_class": status_class(k), "n": n} for k, n in statuses],
                "dry_run": dry_run, "backup_root": text(report.get("backupRoot")), "left": left,
                "names_note": uploaded_names_note(totals["identifyingNames"], text(report.get("executor"))),
                "restore_command": None if dry_run else
                f"xnat-resource-survey restore --report {shlex.quote(report_path)}",
                "survey_report": text(report.get("surveyReport")),
                "executor": text(report.get("executor")),
                "server": {k: text(mapping(report.get("xnatServer")).get(k))
                           for k in ("host", "version", "way", "wayReason")},
                "stats": dry_run_stats(m_totals, report_totals) if dry_run else mitigation_stats(
                    self.mitigated_resources, m_totals, report_totals),
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
            ("unreadableFolders", "folders that could not be read", totals["unreadableFolders"], True),
        ]
        columns = SURVEY_COLUMNS + ((DRY_RUN_COLUMNS if mitigation["dry_run"] else MITIGATION_COLUMNS)
                                    if mitigation else ())
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
            "attention": Table(self.attention, self.attention_total),
            "conforming": Table(self.conforming, self.conforming_total),
            "sections_total": self.sections_total, "sections_shown": self.sections_shown,
            "sections_hidden": self.sections_total - self.sections_shown, "budget_exhausted": self.budget.exhausted,
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

