"""`xnat-resource-survey rollup REPORT... --output OUT`: combine many reports into one project summary."""

from __future__ import annotations

import argparse

import structlog

from container_app.cli.parser import Subparsers, add_common_options
from container_app.cli.settings import Common, RollupSettings
from container_app.core.errors import ExitCode

log = structlog.get_logger("xnat_resource_survey")


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("rollup", help="combine many reports into one project summary")
    parser.add_argument("reports", nargs="+", metavar="REPORT")
    parser.add_argument("--output", required=True, metavar="OUT")
    add_common_options(parser)


def settings_from(namespace: argparse.Namespace, common: Common) -> RollupSettings:
    return RollupSettings(common=common, reports=tuple(namespace.reports), output=namespace.output)


def run(settings: RollupSettings) -> ExitCode:
    from container_app.reports.rollup import run_rollup

    summary = run_rollup(settings.reports, settings.output)
    log.info("rollup written", **summary.log_fields())
    return ExitCode.OK
