"""Progress: a bar on a person's terminal (the CLI under a pseudo-terminal), JSON lines anywhere else."""

from __future__ import annotations

import json
import re
from pathlib import Path

import structlog

from container_app.support.progress import RunProgress
from tests.helpers.mitigation import legacy_session, run_cli
from tests.helpers.terminal import run_on_terminal

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_without_a_terminal_progress_is_a_log_line_with_the_figures() -> None:
    with structlog.testing.capture_logs() as lines, RunProgress("mitigate", 10, interactive=False,
                                                                interval=0.0) as progress:
        for _ in range(10):
            progress.advance()
    shown = [line for line in lines if line["event"] == "progress"]
    assert len(shown) == 10 and shown[-1]["files_done"] == 10 and shown[-1]["files_total"] == 10
    assert shown[-1]["command"] == "mitigate" and shown[-1]["eta_seconds"] == 0


def test_progress_lines_wait_for_their_interval() -> None:
    with structlog.testing.capture_logs() as lines, RunProgress("restore", 1000, interactive=False,
                                                                interval=3600.0) as progress:
        progress.advance(1000)
    assert not [line for line in lines if line["event"] == "progress"]


def _bar_end(output: str, command: str) -> str:
    """The last state of the command's bar as the terminal shows it (control sequences removed)."""
    text = ANSI.sub("", output).replace("\r", "\n")
    lines = [line for line in text.splitlines() if line.strip().startswith(command) and "files" in line]
    assert lines, text
    return lines[-1]


def test_mitigate_and_restore_show_a_bar_on_a_terminal_that_ends_at_the_total(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "archive", scans=2, per_scan=6, duplicates=2, differing=1)
    survey = run_cli("survey", root, "--output", tmp_path / "survey")
    assert survey.returncode == 0, survey.stderr
    report = json.loads((tmp_path / "survey" / "survey-report.json").read_text("utf-8"))
    total = sum(len(r["xnat"]["mismatchedFiles"]) for r in report["resources"])
    run = run_on_terminal("mitigate", root, "--report", tmp_path / "survey" / "survey-report.json",
                          "--output", tmp_path / "out", "--backup-dir", tmp_path / "backup")
    assert run.returncode == 0, run.output
    end = _bar_end(run.output, "mitigate")
    done, planned = map(int, re.search(r"(\d+)/(\d+) files", end).groups())  # type: ignore[union-attr]
    assert done == planned >= total > 0 and "100%" in end
    assert '"event"' not in run.output  # a person's terminal: console log lines, not JSON
    again = run_on_terminal("restore", "--report", tmp_path / "out" / "mitigation-report.json")
    assert again.returncode == 0, again.output
    end = _bar_end(again.output, "restore")
    done, planned = map(int, re.search(r"(\d+)/(\d+) files", end).groups())  # type: ignore[union-attr]
    assert done == planned > 0 and "100%" in end


def test_in_a_container_there_is_no_bar(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "archive", scans=1, per_scan=4, duplicates=1, differing=0)
    run_cli("survey", root, "--output", tmp_path / "survey")
    result = run_cli("mitigate", root, "--report", tmp_path / "survey" / "survey-report.json",
                     "--output", tmp_path / "out", "--backup-dir", tmp_path / "backup")
    assert result.returncode == 0, result.stderr
    assert "━" not in result.stdout + result.stderr and "\r" not in result.stderr
