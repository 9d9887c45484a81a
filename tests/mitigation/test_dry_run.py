"""A dry run says what would change, on the demo archive: in its log lines, its report, its page and, on a
terminal, its table (11 files would move, 4 would be removed: scan 3's commented re-send is less
de-identified than its twin, so the twin moves to the expected name)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers.mitigation import run_cli, snapshot
from tests.helpers.terminal import run_on_terminal


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "d"
    result = run_cli("demo", "--output", out)
    assert result.returncode == 0, result.stderr
    return out


def test_the_dry_run_report_and_log_say_what_would_change(demo: Path, tmp_path: Path) -> None:
    before = snapshot(demo / "archive")
    out = tmp_path / "dry"
    result = run_cli("mitigate", demo / "archive", "--report", demo / "survey-report.json", "--output", out,
                     "--dry-run")
    assert result.returncode == 0, result.stderr
    assert snapshot(demo / "archive") == before
    report = json.loads((out / "mitigation-report.json").read_text("utf-8"))
    totals = report["totals"]
    # XNAT's fields say what was done: nothing; the planned counts beside them say what would be.
    assert (totals["movedFiles"], totals["removedFiles"], totals["retainedFiles"]) == (0, 0, 0)
    assert (totals["plannedMoves"], totals["plannedRemovals"], totals["plannedRetained"]) == (11, 4, 3)
    assert all(r["xnat"]["totalMovedFiles"] == 0 for r in report["resources"])
    assert sorted(r["planned"]["wouldMove"] for r in report["resources"]) == [1, 2, 8]
    lines = [json.loads(line) for line in (result.stdout + result.stderr).splitlines()
             if line.startswith("{")]
    planned = [line for line in lines if line["event"] == "resource planned"]
    assert len(planned) == 3 and sum(line["would_move"] for line in planned) == 11
    assert sum(line["would_remove"] for line in planned) == 4
    finished = next(line for line in lines if line["event"].startswith("dry run finished"))
    assert (finished["would_move"], finished["would_remove"]) == (11, 4)
    assert not any(line["event"] == "resource mitigated" for line in lines)
    page = (out / "report.html").read_text("utf-8")
    assert re.search(r'data-value="11">11</span><span class="l">files that would move', page)
    assert "Originals were copied" not in page and "Nothing was copied or changed" in page
    assert re.search(r'data-value="4">4</span><span class="l">files that would be removed', page)
    assert "<th class=\"num\">would move</th>" in page and ">moved</th>" not in page


def test_the_dry_run_table_on_a_terminal_says_would(demo: Path, tmp_path: Path) -> None:
    run = run_on_terminal("mitigate", demo / "archive", "--report", demo / "survey-report.json",
                          "--output", tmp_path / "dry", "--dry-run")
    assert run.returncode == 0, run.output
    header = next(line for line in run.output.splitlines() if line.startswith("resource"))
    assert "would move" in header and "would remove" in header and " moved " not in header
    assert "11 files would move, 4 would be removed" in run.output
    rows = {line.split()[0]: line.split()[1:] for line in run.output.splitlines() if line.startswith("DEMO/")}
    assert rows["DEMO/arc001/DEMO_MR1/SCANS/2/DICOM"][:2] == ["PLANNED", "8"]
    assert rows["DEMO/arc001/DEMO_MR1/SCANS/3/DICOM"][:3] == ["PLANNED", "1", "4"]
