"""cli.main: argv to frozen settings for each command, and the one place errors become exit codes."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from container_app.cli import main as cli
from container_app.cli.commands import demo, mitigate, restore, rollup, survey
from container_app.cli.settings import (
    DemoSettings,
    MitigateSettings,
    RestoreSettings,
    RollupSettings,
    SurveySettings,
)
from container_app.core.errors import ExitCode, LockedError, UsageError
from container_app.core.vocabulary import ExecutorChoice, KeepPolicy, RestFileOperations
from tests.helpers.cli import no_traceback


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()  # main() configures logging for the process


def test_each_command_parses_into_its_frozen_settings() -> None:
    parsed = {
        "survey": cli.parse_settings(["survey", "r", "--output", "o", "--resource-label", "A, B", "--jobs", "3"]),
        "demo": cli.parse_settings(["demo"]),
        "mitigate": cli.parse_settings(["mitigate", "r", "--output", "o", "--keep", "oldest", "--xnat-session", ""]),
        "restore": cli.parse_settings(["restore", "--report", "m.json"]),
        "rollup": cli.parse_settings(["rollup", "a.json", "b", "--output", "o", "--log-format", "json", "-v"]),
    }
    assert {name: type(s) for name, s in parsed.items()} == {
        "survey": SurveySettings, "demo": DemoSettings, "mitigate": MitigateSettings,
        "restore": RestoreSettings, "rollup": RollupSettings}
    for settings in parsed.values():
        assert dataclasses.is_dataclass(settings)
        assert getattr(type(settings), "__dataclass_params__").frozen  # noqa: B009 (a dataclass internal)
    surveyed = parsed["survey"]
    assert isinstance(surveyed, SurveySettings)
    assert (surveyed.root, surveyed.output, surveyed.labels, surveyed.jobs) == ("r", "o", frozenset({"A", "B"}), 3)
    demoing = parsed["demo"]
    assert isinstance(demoing, DemoSettings)
    assert demoing == DemoSettings(common=demoing.common, output="demo-output", jobs=demoing.jobs)
    mitigating = parsed["mitigate"]
    assert isinstance(mitigating, MitigateSettings)
    assert mitigating.backup_dir == str(Path("o") / "backup")
    assert (mitigating.keep, mitigating.executor, mitigating.rest_file_operations) == (
        KeepPolicy.OLDEST, ExecutorChoice.AUTO, RestFileOperations.REFUSE)
    assert mitigating.xnat_session is None  # a blank value (XNAT leaves derived inputs blank) means none
    assert mitigating.common is mitigating.survey.common
    assert parsed["restore"] == RestoreSettings(common=parsed["restore"].common, report="m.json", output=None)
    rolled = parsed["rollup"]
    assert isinstance(rolled, RollupSettings)
    assert (rolled.reports, rolled.common.log_format, rolled.common.verbose) == (("a.json", "b"), "json", True)


def test_help_lists_the_commands_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("    ")]
    assert listed == ["survey", "demo", "mitigate", "restore", "rollup"]
    assert (survey, demo, mitigate, restore, rollup) == cli.COMMANDS


def _run_raising(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
                 error: BaseException, *extra: str) -> tuple[int, list[dict[str, object]], str]:
    def run(settings: RestoreSettings) -> ExitCode:
        raise error

    monkeypatch.setattr(restore, "run", run)
    rc = cli.main(["restore", "--report", str(tmp_path / "m.json"), "--log-format", "json", *extra])
    captured = capsys.readouterr()
    no_traceback(captured.out, captured.err)
    return rc, [json.loads(line) for line in captured.out.splitlines()], captured.err


@pytest.mark.parametrize(("error", "code"), [(UsageError("no such thing"), 2), (LockedError("held"), 3)])
def test_the_projects_errors_stop_with_their_exit_code_and_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        error: Exception, code: int) -> None:
    rc, lines, stderr = _run_raising(monkeypatch, capsys, tmp_path, error)
    assert rc == code
    assert [(e["event"], e["error"], e["kind"], e["level"]) for e in lines] == [
        ("stopped", str(error), type(error).__name__, "error")]
    assert stderr == ""


def test_a_bug_is_an_internal_error_exit_3_without_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, lines, _ = _run_raising(monkeypatch, capsys, tmp_path, KeyError("oops"))
    assert rc == 3
    assert [(e["event"], e["error"]) for e in lines] == [("internal error, please report it", "KeyError: 'oops'")]


def test_a_bug_with_verbose_keeps_the_traceback_in_the_log(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def run(settings: RestoreSettings) -> ExitCode:
        raise KeyError("oops")

    monkeypatch.setattr(restore, "run", run)
    assert cli.main(["restore", "--report", str(tmp_path / "m.json"), "--log-format", "json", "-v"]) == 3
    (line,) = capsys.readouterr().out.splitlines()
    assert "Traceback" in json.loads(line)["exception"]


def test_interrupted_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                               tmp_path: Path) -> None:
    rc, lines, _ = _run_raising(monkeypatch, capsys, tmp_path, KeyboardInterrupt())
    assert rc == 130
    assert [e["event"] for e in lines] == ["interrupted"]


def test_usage_errors_are_one_line_on_stderr_before_any_logging(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["survey", "r", "--output", "o", "--jobs", "0"]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "xnat-resource-survey survey: argument --jobs: must be at least 1\n")
