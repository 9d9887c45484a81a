"""`xnat-resource-survey rollup REPORT... --output OUT`: combine many reports into one project summary;
`rollup --xnat-project ID --output OUT`: the same from the reports a bulk launch uploaded to XNAT.

Exit codes: 0 when the roll-up is written; 1 (FINDINGS: written, but incomplete) when the reports of some
sessions could not be fetched from XNAT (they are listed in the roll-up); 2 for a usage error; 3 when no
roll-up could be written (a report unreadable, the project not listed, XNAT not reachable).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
from dataclasses import dataclass

from container_app.cli.parser import Subparsers, add_common_options
from container_app.cli.settings import Common, RollupSettings
from container_app.core.errors import ExitCode, UsageError
from container_app.support import logs

log = logs.get_logger("xnat_resource_survey")

DEFAULT_GRACE_MINUTES = 60.0  # mitigation.xnat.project_rollup.DEFAULT_GRACE, kept out of argv parsing's imports


@dataclass(frozen=True, slots=True)
class XnatRollupSettings(RollupSettings):
    """`rollup --xnat-project`: `reports` is empty; the reports come from the project's sessions in XNAT."""

    xnat_project: str
    grace_minutes: float
    xnat_timezone: str


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 0 <= value <= 7 * 24 * 60:
        raise argparse.ArgumentTypeError("must be between 0 and 10080 (a week)")
    return value


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "rollup", help="combine many reports into one project summary",
        description="Combine survey and mitigation reports into one project summary (rollup.json, rollup.csv, "
                    "rollup.html). Give the reports (files or folders), or --xnat-project ID to fetch every "
                    "session's reports from its RESOURCE_SURVEY resource in XNAT (XNAT_HOST, XNAT_USER, XNAT_PASS "
                    "from the environment, as in a container). Exit code 1: written, but the reports of some "
                    "sessions could not be fetched (listed in the roll-up).")
    parser.add_argument("reports", nargs="*", metavar="REPORT")
    parser.add_argument("--output", required=True, metavar="OUT")
    parser.add_argument("--xnat-project", metavar="ID", help="roll up this XNAT project's sessions (no REPORT then)")
    parser.add_argument("--modified-grace", type=_minutes, default=DEFAULT_GRACE_MINUTES, metavar="MINUTES",
                        help="a report counts as older than its session when XNAT's last modification of the session "
                             "is more than this after the report finished (default 60: the container's own upload "
                             "of its reports modifies the session)")
    parser.add_argument("--xnat-timezone", default="UTC", metavar="ZONE",
                        help="XNAT's time zone (an IANA name such as Europe/Amsterdam, or an offset such as +01:00): "
                             "its listings give dates without one (default UTC)")
    add_common_options(parser)


def settings_from(namespace: argparse.Namespace, common: Common) -> RollupSettings:
    reports = tuple(namespace.reports)
    if namespace.xnat_project is None:
        if not reports:
            raise UsageError("rollup: give the REPORT files or folders to combine, or --xnat-project ID")
        return RollupSettings(common=common, reports=reports, output=namespace.output)
    if reports:
        raise UsageError("rollup: --xnat-project fetches the reports from XNAT; give no REPORT with it")
    if not namespace.xnat_project.strip() or "/" in namespace.xnat_project:
        raise UsageError(f"rollup: --xnat-project must be an XNAT project ID (got {namespace.xnat_project!r})")
    _zone(namespace.xnat_timezone)
    return XnatRollupSettings(common=common, reports=(), output=namespace.output,
                              xnat_project=namespace.xnat_project.strip(), grace_minutes=namespace.modified_grace,
                              xnat_timezone=namespace.xnat_timezone)


def _zone(name: str) -> dt.tzinfo:
    """An IANA zone, UTC, or a fixed offset (+HH:MM, -HH:MM)."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return dt.UTC
    offset = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", name.strip())
    if offset is not None and int(offset.group(2)) < 24 and int(offset.group(3)) < 60:
        sign = -1 if offset.group(1) == "-" else 1
        return dt.timezone(sign * dt.timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3))))
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"rollup: --xnat-timezone {name!r} is not a time zone this system knows "
                         "(an IANA name such as Europe/Amsterdam, an offset such as +01:00, or UTC)") from None


def run(settings: RollupSettings) -> ExitCode:
    if isinstance(settings, XnatRollupSettings):
        return _run_xnat(settings)
    from container_app.reports.rollup import run_rollup

    summary = run_rollup(settings.reports, settings.output)
    log.info("rollup written", **summary.log_fields())
    return ExitCode.OK


def _run_xnat(settings: XnatRollupSettings) -> ExitCode:
    from container_app.mitigation.xnat.client import XnatClient
    from container_app.mitigation.xnat.project_rollup import XnatRollupRequest, run_xnat_rollup
    from container_app.support.progress import RunProgress, on_a_terminal

    request = XnatRollupRequest(project=settings.xnat_project, output=settings.output,
                                grace=dt.timedelta(minutes=settings.grace_minutes),
                                zone=_zone(settings.xnat_timezone))
    with XnatClient.connect() as client:  # XNAT_HOST / XNAT_USER / XNAT_PASS only, never argv
        if on_a_terminal():  # a bar of sessions for a person; elsewhere the per-session log lines say as much
            with RunProgress("rollup", 0, unit="sessions", interactive=True) as progress:
                outcome = run_xnat_rollup(client, request, progress)
        else:
            outcome = run_xnat_rollup(client, request)
    log.info("rollup written", **outcome.log_fields())
    if outcome.fetch_problems:
        log.warning("rollup incomplete", fetch_problems=outcome.fetch_problems,
                    note="the reports of these sessions could not be fetched; see xnat.fetchProblems in rollup.json")
        return ExitCode.FINDINGS
    return ExitCode.OK
