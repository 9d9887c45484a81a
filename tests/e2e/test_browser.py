"""report.html (and rollup.html) in a real browser: headless Chromium from Debian's `chromium` package.

The DOM Chromium builds from the demo's page must show the counts of survey-report.json, and a
screenshot is kept as an artifact in `artifacts/` (git-ignored). Chromium is installed with apt-get
when CI=true or XRS_INSTALL_BROWSER=1; otherwise the tests skip when it is missing.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from container_app.reports.html.survey_page import write_html_report
from container_app.reports.rollup import build_rollup, write_rollup
from tests.helpers.reports import Dom, Element, expected_counts, make_demo, page_counts

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync")
WINDOW = (1280, 2000)


def _install_chromium() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900, check=False)
        if completed.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{completed.stdout[-2000:]}\n{completed.stderr[-2000:]}")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary; installed from Debian's packages in CI (or when XRS_INSTALL_BROWSER=1)."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true" or os.environ.get("XRS_INSTALL_BROWSER") == "1":
            if shutil.which("apt-get") is None:
                pytest.fail("chromium is missing and there is no apt-get to install it with")
            _install_chromium()
        else:
            pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium`, or run with XRS_INSTALL_BROWSER=1")
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is still missing after installing chromium"
    return CHROMIUM


def run_chromium(binary: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Chromium with a fresh profile folder, loading `page` from disk."""
    profile.mkdir(parents=True, exist_ok=False)
    command: Sequence[str] = [binary, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                               env={**os.environ, "HOME": str(profile)})
    assert completed.returncode == 0, f"chromium failed ({completed.returncode}):\n{completed.stderr[-3000:]}"
    return completed


def dump_dom(binary: str, page: Path, profile: Path) -> Element:
    completed = run_chromium(binary, page, profile, "--dump-dom")
    assert "<body" in completed.stdout, completed.stderr[-3000:]
    return Dom(completed.stdout).root


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    report = make_demo(out)
    write_html_report(str(out), report)
    return out, report


def test_browser_shows_the_demo_counts(chromium: str, demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, report = demo
    root = dump_dom(chromium, out / "report.html", tmp_path / "profile")
    assert page_counts(root) == expected_counts(report)
    assert root.find(id="overall-status").text.strip() == "DIVERGENT"
    assert not list(root.find_all(id="restore-command"))
    # the details of each resource needing attention are in the page, reachable from its row
    links = {e.attrs["href"] for e in root.find_all(href=None)}
    anchors = {e.attrs["id"] for e in root.find_all(data_resource=None) if e.tag == "details"}
    assert anchors and {f"#{a}" for a in anchors} <= links


def test_browser_screenshot_is_kept(chromium: str, demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    out, _ = demo
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    run_chromium(chromium, out / "report.html", tmp_path / "profile", f"--screenshot={screenshot}",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}")
    assert screenshot.is_file()
    assert png_size(screenshot) == WINDOW
    assert screenshot.stat().st_size > 50_000  # a rendered page, not a blank one


def test_browser_shows_the_restore_command_after_a_mitigation(chromium: str, tmp_path: Path) -> None:
    import json

    from container_app.cli.main import main

    out = tmp_path / "run"
    survey = make_demo(out)
    mitigation_out = out / "mitigation"
    assert main(["mitigate", str(out / "archive"), "--report", str(out / "survey-report.json"),
                 "--output", str(mitigation_out), "--log-format", "json"]) in (0, 1)
    mitigation = json.loads((mitigation_out / "mitigation-report.json").read_text("utf-8"))
    write_html_report(str(mitigation_out), survey, mitigation)
    root = dump_dom(chromium, mitigation_out / "report.html", tmp_path / "profile")
    command = root.find(id="restore-command").text.strip()
    assert command == f"xnat-resource-survey restore --report {(mitigation_out / 'mitigation-report.json').resolve()}"
    moved = int(root.find(data_mitigation_total="movedFiles").attrs["data-value"])
    assert moved == mitigation["totals"]["movedFiles"]
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report-mitigation.png"
    run_chromium(chromium, mitigation_out / "report.html", tmp_path / "profile-2", f"--screenshot={screenshot}",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}")
    assert png_size(screenshot) == WINDOW


def test_browser_shows_the_rollup(chromium: str, demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = demo
    rollup = build_rollup([report])
    paths = write_rollup(str(tmp_path / "rollup"), rollup)
    root = dump_dom(chromium, Path(paths["rollup.html"]), tmp_path / "profile")
    assert root.find(id="overall-status").attrs["data-status"] == rollup["totals"]["status"]
    shown = {e.attrs["data-total"]: int(e.attrs["data-value"]) for e in root.find_all(data_total=None)}
    assert shown["totalEntries"] == report["totals"]["files"]
    assert shown["totalMismatchedFiles"] == report["totals"]["mismatchedFiles"]
    assert shown["totalDuplicates"] == report["totals"]["duplicates"]
    assert shown["totalBadFiles"] == report["totals"]["badFiles"]
