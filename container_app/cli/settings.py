"""Command-line parsing: argv in, a frozen settings object out. Nothing here touches files."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass

from container_app import __version__
from container_app.core.errors import UsageError
from container_app.core.naming import DEFAULT_TEMPLATE, NamingTemplate, parse_template
from container_app.core.vocabulary import ExecutorChoice, KeepPolicy, RestFileOperations

PROG = "xnat-resource-survey"


@dataclass(frozen=True, slots=True)
class Common:
    log_format: str
    verbose: bool


@dataclass(frozen=True, slots=True)
class SurveySettings:
    common: Common
    root: str
    output: str
    template: NamingTemplate
    labels: frozenset[str]
    all_resources: bool
    since: dt.date | None
    jobs: int
    fail_on_divergent: bool


@dataclass(frozen=True, slots=True)
class DemoSettings:
    common: Common
    output: str
    jobs: int


@dataclass(frozen=True, slots=True)
class MitigateSettings:
    survey: SurveySettings  # how to survey first when no report is given, and where ROOT is
    report: str | None
    backup_dir: str
    dry_run: bool
    keep: KeepPolicy
    executor: ExecutorChoice
    rest_file_operations: RestFileOperations
    xnat_session: str | None = None  # the XNAT session ID (accession number) mounted at ROOT
    xnat_project: str | None = None  # the XNAT project whose sessions ROOT holds (sessions found by label)
    xnat_scan: str | None = None  # the XNAT URI of the scan mounted at ROOT (/experiments/<id>/scans/<scan>)
    xnat_timeout: float = 1800.0  # seconds to wait for XNAT's survey or mitigation of one resource


@dataclass(frozen=True, slots=True)
class RestoreSettings:
    common: Common
    report: str
    output: str | None


@dataclass(frozen=True, slots=True)
class RollupSettings:
    common: Common
    reports: tuple[str, ...]
    output: str


Settings = SurveySettings | DemoSettings | MitigateSettings | RestoreSettings | RollupSettings


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so `main` decides the exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=("auto", "console", "json"), default="auto",
                        help="console on a terminal, JSON lines otherwise (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _add_selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--template", default=DEFAULT_TEMPLATE,
                        help="the site's dicomFileNameTemplate (default: XNAT's since 1.8.7)")
    parser.add_argument("--resource-label", action="append", dest="labels", metavar="LABEL",
                        help="survey resources with this label (repeatable, or comma-separated; default DICOM)")
    parser.add_argument("--all-resources", action="store_true", help="survey every resource, whatever its label")
    parser.add_argument("--since", type=_date, metavar="YYYY-MM-DD",
                        help="only resources with something changed on or after this day")
    parser.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1,
                        help="worker processes (default: CPU count)")


def _add_mitigation_options(parser: argparse.ArgumentParser, *, hidden: bool = False) -> None:
    def say(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    parser.add_argument("--backup-dir", metavar="BACKUP",
                        help=say("where originals are copied before any change (default: OUT/backup)"))
    parser.add_argument("--dry-run", action="store_true", help=say("write the plan and change nothing"))
    parser.add_argument("--keep", choices=[k.value for k in KeepPolicy], default=KeepPolicy.NEWEST.value,
                        help=say("which copy of a duplicate to keep (default: newest, as XNAT)"))
    parser.add_argument("--executor", choices=[e.value for e in ExecutorChoice], default=ExecutorChoice.AUTO.value,
                        help=say("filesystem: change files under ROOT; xnat: through XNAT's REST API "
                                 "(auto: filesystem where ROOT is writable)"))
    parser.add_argument("--rest-file-operations", choices=[r.value for r in RestFileOperations],
                        default=RestFileOperations.REFUSE.value,
                        help=say("on servers without XNAT's mitigation API, allow renames through upload and "
                                 "delete (which downgrades catalog entries); default refuse"))
    parser.add_argument("--xnat-session", metavar="ID",
                        help=say("executor xnat: the XNAT ID of the session mounted at ROOT (the session "
                                 "wrapper passes it)"))
    parser.add_argument("--xnat-project", metavar="ID",
                        help=say("executor xnat: the XNAT project whose sessions ROOT holds (sessions are "
                                 "found by label; default: the project in each catalog)"))
    parser.add_argument("--xnat-scan", metavar="URI",
                        help=say("executor xnat: the XNAT URI of the scan mounted at ROOT, "
                                 "/experiments/<session ID>/scans/<scan ID> (the scan wrapper passes it)"))
    parser.add_argument("--xnat-timeout", type=_seconds, default=1800.0, metavar="SECONDS",
                        help=say("executor xnat: how long to wait for XNAT's survey or mitigation of one "
                                 "resource (default 1800)"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Survey and mitigate badly named and duplicated DICOM files "
                                            "in an XNAT archive.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    survey = commands.add_parser("survey", help="survey ROOT and write reports; never changes ROOT")
    survey.add_argument("root", metavar="ROOT", help="a resource, scan, session, project archive or any folder")
    survey.add_argument("--output", required=True, metavar="OUT", help="folder for the reports")
    _add_selection(survey)
    survey.add_argument("--fail-on-divergent", action="store_true",
                        help="exit 1 when any resource is divergent (for automation)")
    # The Container Service passes one command line to both modes: survey accepts and ignores these.
    _add_mitigation_options(survey, hidden=True)
    _add_common(survey)

    demo = commands.add_parser("demo", help="build a sample archive with real problems and survey it")
    demo.add_argument("--output", default="demo-output", metavar="OUT",
                      help="folder for the sample archive and its reports (default: ./demo-output)")
    demo.add_argument("--jobs", type=_positive, default=os.cpu_count() or 1)
    _add_common(demo)

    mitigate = commands.add_parser("mitigate", help="back up, rename and de-duplicate what a survey found")
    mitigate.add_argument("root", metavar="ROOT", help="the archive folder the survey report describes")
    mitigate.add_argument("--report", metavar="SURVEY_REPORT",
                          help="survey-report.json to act on (default: survey ROOT first, into OUT)")
    mitigate.add_argument("--output", required=True, metavar="OUT", help="folder for the mitigation report")
    _add_mitigation_options(mitigate)
    _add_selection(mitigate)
    mitigate.add_argument("--fail-on-divergent", action="store_true", help=argparse.SUPPRESS)
    _add_common(mitigate)

    restore = commands.add_parser("restore", help="undo a mitigation from its report")
    restore.add_argument("--report", required=True, metavar="MITIGATION_REPORT")
    restore.add_argument("--output", metavar="OUT", help="folder for the restore report (default: beside the report)")
    _add_common(restore)

    rollup = commands.add_parser("rollup", help="combine many reports into one project summary")
    rollup.add_argument("reports", nargs="+", metavar="REPORT")
    rollup.add_argument("--output", required=True, metavar="OUT")
    _add_common(rollup)
    return parser


def _labels(values: Sequence[str] | None) -> frozenset[str]:
    if not values:
        return frozenset({"DICOM"})
    labels = frozenset(p.strip() for v in values for p in v.split(",") if p.strip())
    if not labels:
        raise UsageError("--resource-label needs a label")
    return labels


def _survey_settings(ns: argparse.Namespace, common: Common, output: str) -> SurveySettings:
    return SurveySettings(
        common=common, root=ns.root, output=output, template=parse_template(ns.template), labels=_labels(ns.labels),
        all_resources=ns.all_resources, since=ns.since, jobs=ns.jobs,
        fail_on_divergent=getattr(ns, "fail_on_divergent", False),
    )


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Parse argv into settings; raises UsageError (never exits) on anything wrong."""
    ns = build_parser().parse_args(argv)
    common = Common(log_format=ns.log_format, verbose=ns.verbose)
    if ns.command == "survey":
        return _survey_settings(ns, common, ns.output)
    if ns.command == "demo":
        return DemoSettings(common=common, output=ns.output, jobs=ns.jobs)
    if ns.command == "mitigate":
        return MitigateSettings(
            survey=_survey_settings(ns, common, ns.output), report=ns.report,
            backup_dir=ns.backup_dir or os.path.join(ns.output, "backup"), dry_run=ns.dry_run,
            keep=KeepPolicy(ns.keep), executor=ExecutorChoice(ns.executor),
            rest_file_operations=RestFileOperations(ns.rest_file_operations),
            xnat_session=ns.xnat_session or None, xnat_project=ns.xnat_project or None,
            xnat_scan=ns.xnat_scan or None, xnat_timeout=ns.xnat_timeout,
        )
    if ns.command == "restore":
        return RestoreSettings(common=common, report=ns.report, output=ns.output)
    return RollupSettings(common=common, reports=tuple(ns.reports), output=ns.output)
