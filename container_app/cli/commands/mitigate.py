"""`xnat-resource-survey mitigate ROOT --output OUT`: back up, rename and de-duplicate what a survey found."""

from __future__ import annotations

import argparse
import dataclasses
import os

from container_app.cli.commands import survey
from container_app.cli.parser import Subparsers, add_common_options, add_mitigation_options, add_selection_options
from container_app.cli.settings import Common, MitigateSettings
from container_app.core.errors import ExitCode
from container_app.core.vocabulary import ExecutorChoice, KeepPolicy, RestFileOperations


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("mitigate", help="back up, rename and de-duplicate what a survey found")
    parser.add_argument("root", metavar="ROOT", help="the archive folder the survey report describes")
    parser.add_argument("--report", metavar="SURVEY_REPORT",
                        help="survey-report.json to act on (default: survey ROOT first, into OUT)")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder for the mitigation report")
    add_mitigation_options(parser)
    add_selection_options(parser)
    # Accepted for the same one-command-line reason as survey's hidden mitigation options; it changes nothing.
    parser.add_argument("--fail-on-divergent", action="store_true", help=argparse.SUPPRESS)
    add_common_options(parser)


def settings_from(namespace: argparse.Namespace, common: Common) -> MitigateSettings:
    return MitigateSettings(
        survey=survey.settings_from(namespace, common), report=namespace.report,
        backup_dir=namespace.backup_dir or os.path.join(namespace.output, "backup"), dry_run=namespace.dry_run,
        keep=KeepPolicy(namespace.keep), executor=ExecutorChoice(namespace.executor),
        rest_file_operations=RestFileOperations(namespace.rest_file_operations),
        xnat_session=namespace.xnat_session or None, xnat_project=namespace.xnat_project or None,
        xnat_scan=namespace.xnat_scan or None, xnat_timeout=namespace.xnat_timeout,
    )


def run(settings: MitigateSettings) -> ExitCode:
    from container_app.mitigation.request import MitigationRequest
    from container_app.mitigation.run import mitigate

    survey_settings = settings.survey

    def survey_into(output: str) -> str:
        """The survey a mitigation without --report runs first into OUT, and the XNAT executor's re-survey.

        `fail_on_divergent` only picks survey's exit code, which neither use: off, so it cannot matter.
        """
        replaced = dataclasses.replace(survey_settings, output=output, fail_on_divergent=False)
        return survey.survey_archive(replaced, print_summary=False).report_path

    request = MitigationRequest(
        root=survey_settings.root, output=survey_settings.output, report=settings.report, survey=survey_into,
        template=survey_settings.template.source, backup_dir=settings.backup_dir, dry_run=settings.dry_run,
        keep=settings.keep, executor=settings.executor, rest_file_operations=settings.rest_file_operations,
        xnat_session=settings.xnat_session, xnat_project=settings.xnat_project, xnat_scan=settings.xnat_scan,
        xnat_timeout=settings.xnat_timeout,
    )
    summary = mitigate(request)
    return ExitCode.FINDINGS if summary.troubled else ExitCode.OK
