"""The command line: parse, configure logging once, call the library, turn errors into exit codes."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import structlog

from container_app.cli.settings import (
    DemoSettings,
    MitigateSettings,
    RestoreSettings,
    RollupSettings,
    Settings,
    SurveySettings,
    parse_settings,
)
from container_app.core.errors import ExitCode, SurveyError
from container_app.support import logs

log = structlog.get_logger("xnat_resource_survey")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code."""
    try:
        settings = parse_settings(argv)
    except SurveyError as exc:
        print(str(exc), file=sys.stderr)
        return int(exc.exit_code)
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0) if isinstance(exc.code, int | None) else int(ExitCode.USAGE)
    common = settings.survey.common if isinstance(settings, MitigateSettings) else settings.common
    logs.configure(common.log_format, verbose=common.verbose)  # type: ignore[arg-type]
    try:
        return int(_dispatch(settings))
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


def _dispatch(settings: Settings) -> ExitCode:
    if isinstance(settings, SurveySettings):
        from container_app.cli.workflows import survey_archive

        outcome = survey_archive(settings)
        return ExitCode.FINDINGS if settings.fail_on_divergent and outcome.divergent else ExitCode.OK
    if isinstance(settings, DemoSettings):
        from container_app.cli.workflows import run_demo

        run_demo(settings)
        return ExitCode.OK
    if isinstance(settings, MitigateSettings):
        from container_app.mitigation.run import mitigate_command

        return mitigate_command(settings)
    if isinstance(settings, RestoreSettings):
        from container_app.mitigation.restore.filesystem import restore_command

        return restore_command(settings)
    if isinstance(settings, RollupSettings):
        from container_app.reports.rollup import rollup_command

        return rollup_command(settings)
    raise AssertionError(settings)


def main_entry() -> None:
    sys.exit(main())
