"""`xnat-resource-survey demo`: build a sample archive with real problems and survey it."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from container_app.cli.commands.survey import SurveyOutcome, survey_archive
from container_app.cli.parser import Subparsers, add_common_options, positive_int
from container_app.cli.settings import Common, DemoSettings, SurveySettings
from container_app.core.errors import ExitCode, UsageError
from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.support import logs

log = logs.get_logger("xnat_resource_survey")

#: Left in OUT beside the archive, so that a later demo replaces only an archive a demo built.
DEMO_MARKER = ".xnat-resource-survey-demo"


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("demo", help="build a sample archive with real problems and survey it")
    parser.add_argument("--output", default="demo-output", metavar="OUT",
                        help="folder for the sample archive and its reports (default: ./demo-output)")
    parser.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1)
    add_common_options(parser)


def settings_from(namespace: argparse.Namespace, common: Common) -> DemoSettings:
    return DemoSettings(common=common, output=namespace.output, jobs=namespace.jobs)


def run(settings: DemoSettings) -> ExitCode:
    run_demo(settings)
    return ExitCode.OK


def run_demo(settings: DemoSettings) -> SurveyOutcome:
    """Build the sample archive in OUT/archive (replacing an earlier demo's) and survey it into OUT."""
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
