"""`xnat-resource-survey restore --report MITIGATION_REPORT`: undo a mitigation from its report."""

from __future__ import annotations

import argparse

from container_app.cli.parser import Subparsers, add_common_options
from container_app.cli.settings import Common, RestoreSettings
from container_app.core.errors import ExitCode


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("restore", help="undo a mitigation from its report")
    parser.add_argument("--report", required=True, metavar="MITIGATION_REPORT")
    parser.add_argument("--output", metavar="OUT", help="folder for the restore report (default: beside the report)")
    add_common_options(parser)


def settings_from(namespace: argparse.Namespace, common: Common) -> RestoreSettings:
    return RestoreSettings(common=common, report=namespace.report, output=namespace.output)


def run(settings: RestoreSettings) -> ExitCode:
    from container_app.mitigation.request import RestoreRequest
    from container_app.mitigation.restore.run import restore

    summary = restore(RestoreRequest(report=settings.report, output=settings.output))
    return ExitCode.FINDINGS if summary.refused else ExitCode.OK
