"""The survey's progress: a bar on a person's terminal (the CLI under a pseudo-terminal), the pipeline's
periodic JSON `progress` lines anywhere else, exactly as before the bar."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from container_app.cli.commands.survey import survey_archive
from container_app.cli.main import parse_settings
from container_app.cli.settings import SurveySettings
from container_app.survey import pipeline
from tests.helpers.mitigation import legacy_session, run_cli
from tests.helpers.terminal import run_on_terminal

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SCANS, PER_SCAN, DUPLICATES = 3, 6, 2
FILES = SCANS * (PER_SCAN + DUPLICATES)  # legacy_session adds each duplicate as one more file


def _screen(output: str) -> str:
    return ANSI.sub("", output).replace("\r\n", "\n")


def _bar_states(output: str) -> list[tuple[int, int]]:
    """Every (done, total) the survey's bar showed, in order (rich redraws it in place with \\r)."""
    text = _screen(output).replace("\r", "\n")
    lines = [line for line in text.splitlines() if line.startswith("survey ") and " files " in line]
    found = [re.search(r"(\d+)/(\d+) files", line) for line in lines]
    return [(int(m.group(1)), int(m.group(2))) for m in found if m is not None]


def test_survey_on_a_terminal_shows_a_bar_that_ends_at_the_total(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "archive", scans=SCANS, per_scan=PER_SCAN, duplicates=DUPLICATES, differing=1)
    run = run_on_terminal("survey", root, "--output", tmp_path / "out", "--jobs", "2")
    assert run.returncode == 0, run.output
    report = json.loads((tmp_path / "out" / "survey-report.json").read_text("utf-8"))
    total = report["totals"]["files"]
    assert total == FILES
    states = _bar_states(run.output)
    assert states and all(planned == total for _, planned in states)
    assert [done for done, _ in states] == sorted(done for done, _ in states)  # it only moves forward
    assert states[-1] == (total, total)
    # a resource's log line comes after the bar counted it: some state between the start and the end shows
    assert {done for done, _ in states} & set(range(1, total))
    screen = _screen(run.output)
    last_bar = [line for line in screen.replace("\r", "\n").splitlines() if line.startswith("survey ")][-1]
    assert "100%" in last_bar and "files/s" in last_bar
    # the log lines and the summary table are intact, in console form, below the finished bar
    assert screen.count("resource surveyed") == SCANS and "survey finished" in screen
    assert '"event"' not in screen and '"progress"' not in screen
    table = screen[screen.rindex("survey finished"):]
    for scan in range(1, SCANS + 1):
        assert re.search(rf"SCANS/{scan}/DICOM\s+DIVERGENT\s+{PER_SCAN + DUPLICATES}\s", table), table
    assert f"{SCANS} resources, {total} files:" in table


def test_survey_without_a_terminal_has_no_bar(tmp_path: Path) -> None:
    root = legacy_session(tmp_path / "archive", scans=1, per_scan=4, duplicates=1, differing=0)
    result = run_cli("survey", root, "--output", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert "━" not in result.stdout + result.stderr and "\r" not in result.stderr
    output = result.stdout + result.stderr  # JSON log lines: the container's log
    events = [json.loads(line)["event"] for line in output.splitlines() if line.startswith("{")]
    assert events[0] == "survey started" and events[-1] == "survey finished" and "resource surveyed" in events


def test_survey_without_a_terminal_writes_the_pipelines_progress_lines_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = legacy_session(tmp_path / "archive", scans=SCANS, per_scan=PER_SCAN, duplicates=DUPLICATES, differing=0)
    settings = parse_settings(["survey", str(root), "--output", str(tmp_path / "out"), "--jobs", "1"])
    assert isinstance(settings, SurveySettings)
    monkeypatch.setattr(pipeline, "PROGRESS_EVERY_S", 0.0)  # a line after every resource, not every 10 s
    with structlog.testing.capture_logs() as lines:  # pytest's stderr is no terminal
        survey_archive(settings, print_summary=False)
    progress = [line for line in lines if line["event"] == "progress"]
    assert [p["files_done"] for p in progress] == [(PER_SCAN + DUPLICATES) * n for n in range(1, SCANS + 1)]
    assert {frozenset(p) for p in progress} == {
        frozenset({"event", "log_level", "files_done", "files_total", "files_per_second", "eta_seconds"})}
    assert progress[-1]["files_total"] == FILES and progress[-1]["eta_seconds"] == 0


def test_what_is_printed_while_the_bar_is_live_stays_above_it(tmp_path: Path) -> None:
    """A summary written to stdout before the bar closes (as a command may print its table) is printed above
    the bar, not run into it: the bar's last state is the terminal's last line."""
    script = tmp_path / "bar.py"
    script.write_text(
        "import sys\n"
        "from container_app.support.progress import RunProgress\n"
        "with RunProgress('survey', 4, interactive=True) as bar:\n"
        "    bar.advance(2)\n"
        "    sys.stdout.write('the summary table\\n')\n"
        "    bar.advance(2)\n", "utf-8")
    controller, terminal = os.openpty()
    process = subprocess.Popen([sys.executable, str(script)], stdout=terminal, stderr=terminal, cwd=REPO,
                               env={**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    assert process.wait(timeout=60) == 0
    lines = [line for line in _screen(b"".join(chunks).decode()).replace("\r", "\n").splitlines() if line.strip()]
    assert "the summary table" in lines
    assert lines[-1].startswith("survey ") and "4/4 files" in lines[-1]
    assert not any("table" in line and "files" in line for line in lines)  # never on one line with the bar
