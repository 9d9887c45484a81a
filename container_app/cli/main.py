"""The command line: parse, configure logging once, call the library, turn errors into exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import assert_never

from container_app import __version__
from container_app.cli.commands import demo, mitigate, restore, rollup, survey
from container_app.cli.parser import PROG, CommandParser
from container_app.cli.settings import (
    Common,
    DemoSettings,
    MitigateSettings,
    RestoreSettings,
    RollupSettings,
    Settings,
    SurveySettings,
)
from container_app.core.errors import ExitCode, SurveyError
from container_app.support import logs

log = logs.get_logger("xnat_resource_survey")

#: The commands in the order `--help` lists them.
COMMANDS = (survey, demo, mitigate, restore, rollup)

_SETTINGS_FROM: dict[str, Callable[[argparse.Namespace, Common], Settings]] = {
    "survey": survey.settings_from, "demo": demo.settings_from, "mitigate": mitigate.settings_from,
    "restore": restore.settings_from, "rollup": rollup.settings_from,
}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog=PROG, description="Survey and mitigate badly named and duplicated DICOM files "
                                                  "in an XNAT archive.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    """Parse argv into settings; raises UsageError (never exits) on anything wrong."""
    namespace = build_parser().parse_args(argv)
    common = Common(log_format=namespace.log_format, verbose=namespace.verbose)
    return _SETTINGS_FROM[namespace.command](namespace, common)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code."""
    try:
        settings = parse_settings(argv)
    except SurveyError as exc:  # before logging is configured: the message alone, on stderr
        print(str(exc), file=sys.stderr)
        return int(exc.exit_code)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if isinstance(exc.code, int | None) else int(ExitCode.USAGE)
    common = settings.common
    logs.configure(common.log_format, verbose=common.verbose)
    try:
        return int(_run(settings))
    except SurveyError as exc:
        log.error("stopped", error=str(exc), kind=type(exc).__name__)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # a bug: say so plainly, keep the traceback for the debug log only
        log.error("internal error, please report it", error=f"{type(exc).__name__}: {exc}",
                  exc_info=common.verbose)
        return int(ExitCode.FAILURE)


def _run(settings: Settings) -> ExitCode:
    if isinstance(settings, SurveySettings):
        return survey.run(settings)
    if isinstance(settings, DemoSettings):
        return demo.run(settings)
    if isinstance(settings, MitigateSettings):
        return mitigate.run(settings)
    if isinstance(settings, RestoreSettings):
        return restore.run(settings)
    if isinstance(settings, RollupSettings):
        return rollup.run(settings)
    assert_never(settings)


def main_entry() -> None:
    sys.exit(main())
