"""`xnat-resource-survey survey ROOT --output OUT`: survey ROOT and write the reports; never changes ROOT."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from container_app import __version__
from container_app.cli.parser import (
    Subparsers,
    add_common_options,
    add_mitigation_options,
    add_selection_options,
    resource_labels,
)
from container_app.cli.settings import Common, SurveySettings
from container_app.core.errors import ExitCode, UsageError
from container_app.core.naming import parse_template
from container_app.support import logs

if TYPE_CHECKING:
    from container_app.survey.discover import Selection
    from container_app.survey.pipeline import Progress

log = logs.get_logger("xnat_resource_survey")

SURVEY_REPORT = "survey-report.json"


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("survey", help="survey ROOT and write reports; never changes ROOT")
    parser.add_argument("root", metavar="ROOT", help="a resource, scan, session, project archive or any folder")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder for the reports")
    add_selection_options(parser)
    parser.add_argument("--fail-on-divergent", action="store_true",
                        help="exit 1 when any resource is divergent or a folder cannot be read (for automation)")
    # The Container Service passes one command line to both modes: survey accepts and ignores these.
    add_mitigation_options(parser, hidden=True)
    add_common_options(parser)


def settings_from(namespace: argparse.Namespace, common: Common) -> SurveySettings:
    """The survey part of `survey`'s or `mitigate`'s arguments (both take ROOT, OUT and the selection options)."""
    return SurveySettings(
        common=common, root=namespace.root, output=namespace.output, template=parse_template(namespace.template),
        labels=resource_labels(namespace.labels), all_resources=namespace.all_resources, since=namespace.since,
        jobs=namespace.jobs, fail_on_divergent=getattr(namespace, "fail_on_divergent", False),
    )


def run(settings: SurveySettings) -> ExitCode:
    outcome = survey_archive(settings)
    return ExitCode.FINDINGS if settings.fail_on_divergent and outcome.needs_attention else ExitCode.OK


@dataclass(frozen=True, slots=True)
class SurveyOutcome:
    report_path: str
    totals: dict[str, int]
    summaries: list[dict[str, Any]]

    @property
    def divergent(self) -> bool:
        return self.totals["divergent"] > 0

    @property
    def needs_attention(self) -> bool:
        """Divergent, or a folder that could not be read: the report must be looked at either way (an
        unreadable resource is ERROR, not divergent, yet hides what it holds)."""
        return self.divergent or self.totals["unreadableFolders"] > 0


def survey_archive(settings: SurveySettings, *, print_summary: bool = True) -> SurveyOutcome:
    """Survey ROOT and write `survey-report.json` and `survey-summary.csv` into OUT."""
    from container_app.reports.html.survey_page import HtmlReportWriter
    from container_app.reports.survey import SURVEY_SCHEMA_VERSION, SurveyReportWriter, render_resource
    from container_app.reports.table import summary_table
    from container_app.support.progress import RunProgress
    from container_app.support.time import iso, new_run_id, now_utc
    from container_app.survey.pipeline import SurveyRequest, resources_to_survey
    from container_app.survey.pipeline import run as survey_resources

    _check_paths(settings.root, settings.output)
    started = now_utc()
    request = SurveyRequest(root=settings.root, template=settings.template, selection=_selection(settings),
                            jobs=settings.jobs)
    resources = resources_to_survey(request)
    total_files = sum(len(r.files) for r in resources)
    log.info("survey started", root=os.path.abspath(settings.root), resources=len(resources), files=total_files,
             jobs=settings.jobs, template=settings.template.source)
    envelope: dict[str, Any] = {
        "reportType": "survey",
        "schemaVersion": SURVEY_SCHEMA_VERSION,
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
    # On a person's terminal a bar, advanced resource by resource; elsewhere the pipeline's periodic
    # `progress` lines, unchanged, because container logs and XNAT's log view are read for them.
    bar = RunProgress("survey", total_files)
    periodic = None if bar.interactive else _log_progress
    try:
        with bar:
            surveyed = survey_resources(request, resources, on_progress=periodic, render=render_resource)
            for index, rendered in enumerate(surveyed):
                summary = writer.add_rendered(rendered)
                page.add_rendered(rendered)
                if bar.interactive:  # before the log line, which rich prints above the bar as it then is
                    bar.advance(len(resources[index].files))
                _log_resource(summary)
        envelope = writer.finish(now_utc())
        html_path = page.finish(envelope)
    except BaseException:
        writer.abort()
        page.abort()
        raise
    elapsed = time.monotonic() - clock
    totals = envelope["totals"]
    report_path = os.path.join(settings.output, SURVEY_REPORT)
    sessions = {(s["identity"]["project"], s["identity"]["session"]) for s in writer.summaries}
    if len(sessions) > 1:  # a project-wide run: the per-session roll-up comes with it
        from container_app.reports.rollup import SURVEY_FIELDS, build_rollup, write_rollup

        # From the resources' summaries, not the report read back: at a million files that report is
        # ~0.5 GB of JSON (1.7 GB loaded), and the roll-up needs only each resource's counts.
        rollup = write_rollup(settings.output, build_rollup(
            [_rollup_input(envelope, writer.summaries, SURVEY_FIELDS)], [report_path]))
        log.info("roll-up written", sessions=len(sessions), report=rollup["rollup.json"])
    log.info("survey finished", report=report_path, html=html_path, seconds=round(elapsed, 3),
             files_per_second=round(total_files / elapsed) if elapsed > 0 else None, **totals)
    if print_summary and sys.stderr.isatty():
        sys.stdout.write(summary_table(writer.summaries, totals))
        sys.stdout.write(deidentification_line(totals))
    return SurveyOutcome(report_path, totals, writer.summaries)


def deidentification_line(totals: dict[str, int]) -> str:
    """The terminal summary's line on copies less de-identified than another copy of their instance (issue 15)."""
    count = totals.get("lessDeidentified", 0)
    if not count:
        return ""
    copies = "copy" if count == 1 else "copies"
    return f"{count} {copies} less de-identified than another copy of the same instance (never kept by mitigate)\n"


def _selection(settings: SurveySettings) -> Selection:
    from container_app.survey.discover import Selection

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


def _log_resource(summary: dict[str, Any]) -> None:
    xnat = summary["xnat"]
    log.info("resource surveyed", resource=summary["path"], status=summary["requestStatus"],
             files=xnat["totalEntries"], uids=xnat["totalUids"], mismatched=xnat["totalMismatchedFiles"],
             duplicates=xnat["totalDuplicates"], bad=xnat["totalBadFiles"],
             identifying_names=summary["counts"]["identifyingName"],
             unreadable_folders=len(summary["folder"]["unreadable"]))


def _log_progress(progress: Progress) -> None:
    elapsed = time.monotonic() - progress.started
    rate = progress.done_files / elapsed if elapsed > 0 else 0.0
    remaining = progress.total_files - progress.done_files
    log.info("progress", files_done=progress.done_files, files_total=progress.total_files,
             files_per_second=round(rate), eta_seconds=round(remaining / rate) if rate else None)


def _rollup_input(envelope: dict[str, Any], summaries: list[dict[str, Any]],
                  counts: tuple[str, ...]) -> dict[str, Any]:
    """The survey report as the roll-up reads it (`RollupBuilder.add`): its envelope, and per resource its
    path, identity, status and `counts` (the XNAT fields it sums), without its files."""
    resources = [{"path": s["path"], "identity": s["identity"], "requestStatus": s["requestStatus"],
                  "xnat": {k: s[k] for k in counts}, "folder": {"unreadable": s["unreadableFolders"]}}
                 for s in summaries]
    return {**envelope, "resources": resources}
