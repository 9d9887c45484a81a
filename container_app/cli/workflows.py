"""Whole runs as the CLI offers them: survey a root into reports, build and survey the demo."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

import structlog

from container_app import __version__
from container_app.cli.settings import DemoSettings, SurveySettings
from container_app.core.errors import UsageError
from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.reports.html.writer import HtmlReportWriter
from container_app.reports.survey import SurveyReportWriter, render_resource, summary_table
from container_app.support.time import iso, new_run_id, now_utc
from container_app.survey.discover import Selection
from container_app.survey.pipeline import Progress, SurveyRequest, plan_resources, run

log = structlog.get_logger("xnat_resource_survey")


@dataclass(frozen=True, slots=True)
class SurveyOutcome:
    report_path: str
    totals: dict[str, int]
    summaries: list[dict[str, Any]]

    @property
    def divergent(self) -> bool:
        return self.totals["divergent"] > 0


def _selection(settings: SurveySettings) -> Selection:
    since_ns = None
    if settings.since is not None:
        start = dt.datetime.combine(settings.since, dt.time(), tzinfo=dt.UTC)
        since_ns = int(start.timestamp()) * 1_000_000_000
    return Selection(labels=settings.labels, all_resources=settings.all_resources, since_ns=since_ns)


def _check_paths(root: str, output: str) -> None:
    if not os.path.isdir(root):
        raise UsageError(f"ROOT {root!r} is not a folder")
    real_root, real_out = os.path.realpath(root), os.path.realpath(output)
    if real_out == real_root or real_out.startswith(real_root + os.sep):
        raise UsageError("OUT must not be inside ROOT: a survey never writes into the archive")


def survey_archive(settings: SurveySettings, *, print_summary: bool = True) -> SurveyOutcome:
    """Survey ROOT and write `survey-report.json` and `survey-summary.csv` into OUT."""
    _check_paths(settings.root, settings.output)
    started = now_utc()
    request = SurveyRequest(root=settings.root, template=settings.template, selection=_selection(settings),
                            jobs=settings.jobs)
    resources = plan_resources(request)
    total_files = sum(len(r.files) for r in resources)
    log.info("survey started", root=os.path.abspath(settings.root), resources=len(resources), files=total_files,
             jobs=settings.jobs, template=settings.template.source)
    envelope: dict[str, Any] = {
        "reportType": "survey",
        "schemaVersion": "1.0",
        "tool": {"name": "xnat-resource-survey", "version": __version__},
        "runId": new_run_id(started),
        "root": os.path.abspath(settings.root),
        "template": settings.template.source,
        "options": {"resourceLabels": sorted(settings.labels), "allResources": settings.all_resources,
                    "since": settings.since.isoformat() if settings.since else None, "jobs": settings.jobs},
        "startedAt": iso(started),
    }
    try:
        writer = SurveyReportWriter(settings.output, envelope)
        page = HtmlReportWriter(settings.output)  # fed as resources arrive, so it costs nothing at the end
    except OSError as exc:  # OUT is a file, or cannot be created or written: the user's choice of OUT
        raise UsageError(f"cannot write the reports into OUT {settings.output!r}: {exc.strerror or exc}") from exc
    clock = time.monotonic()
    try:
        for rendered in run(request, resources, on_progress=_log_progress, render=render_resource):
            summary = writer.add_rendered(rendered)
            page.add_rendered(rendered)
            xnat = summary["xnat"]
            log.info("resource surveyed", resource=summary["path"], status=summary["requestStatus"],
                     files=xnat["totalEntries"], uids=xnat["totalUids"], mismatched=xnat["totalMismatchedFiles"],
                     duplicates=xnat["totalDuplicates"], bad=xnat["totalBadFiles"],
                     identifying_names=summary["counts"]["identifyingName"])
        envelope = writer.finish(now_utc())
        html_path = page.finish(envelope)
    except BaseException:
        writer.abort()
        page.abort()
        raise
    elapsed = time.monotonic() - clock
    totals = envelope["totals"]
    report_path = os.path.join(settings.output, "survey-report.json")
    sessions = {(s["identity"]["project"], s["identity"]["session"]) for s in writer.summaries}
    if len(sessions) > 1:  # a project-wide run: the per-session roll-up comes with it
        from container_app.reports.rollup import build_rollup, load_report, write_rollup

        rollup = write_rollup(settings.output, build_rollup([load_report(report_path)], [report_path]))
        log.info("roll-up written", sessions=len(sessions), report=rollup["rollup.json"])
    log.info("survey finished", report=report_path, html=html_path, seconds=round(elapsed, 3),
             files_per_second=round(total_files / elapsed) if elapsed > 0 else None, **totals)
    if print_summary and sys.stderr.isatty():
        sys.stdout.write(summary_table(writer.summaries, totals))
    return SurveyOutcome(report_path, totals, writer.summaries)


def _log_progress(progress: Progress) -> None:
    elapsed = time.monotonic() - progress.started
    rate = progress.done_files / elapsed if elapsed > 0 else 0.0
    remaining = progress.total_files - progress.done_files
    log.info("progress", files_done=progress.done_files, files_total=progress.total_files,
             files_per_second=round(rate), eta_seconds=round(remaining / rate) if rate else None)


DEMO_MARKER = ".xnat-resource-survey-demo"


def run_demo(settings: DemoSettings) -> SurveyOutcome:
    """Build the sample archive in OUT/archive (replacing an earlier demo's) and survey it into OUT."""
    from pathlib import Path

    from container_app.demo.archive import build_demo_archive

    archive, marker = Path(settings.output) / "archive", Path(settings.output) / DEMO_MARKER
    if archive.exists():
        if not marker.exists():
            raise UsageError(f"{archive} exists and is not an earlier demo archive: choose another --output")
        shutil.rmtree(archive)
    archive.mkdir(parents=True)
    marker.write_text("OUT/archive was built by `xnat-resource-survey demo`; safe to delete\n", encoding="utf-8")
    manifest = build_demo_archive(archive)
    log.info("demo archive built", archive=str(archive), session=str(manifest.session_root))
    survey = SurveySettings(
        common=settings.common, root=str(archive), output=settings.output, template=parse_template(DEFAULT_TEMPLATE),
        labels=frozenset({"DICOM"}), all_resources=False, since=None, jobs=settings.jobs, fail_on_divergent=False,
    )
    outcome = survey_archive(survey)
    log.info("demo done", report=outcome.report_path,
             next_step=f"xnat-resource-survey mitigate {archive} --report {outcome.report_path} "
                       f"--output {Path(settings.output) / 'mitigation'} --dry-run")
    return outcome
