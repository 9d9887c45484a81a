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


# --- pages that fit a 1280 px window, and the filter -------------------------------------------------

MEASURE = ("<script>document.body.setAttribute('data-scroll-width', "
           "String(document.documentElement.scrollWidth));</script>")


def with_script(page: Path, script: str) -> Path:
    """A copy of `page` beside it with `script` run after the page's own scripts (the DOM dump shows its effect)."""
    probe = page.with_name(f"{page.stem}-probe-{len(list(page.parent.glob('*-probe-*')))}.html")
    probe.write_text(page.read_text("utf-8").replace("</body>", script + "</body>"), "utf-8")
    return probe


def scroll_width(binary: str, page: Path, profile: Path) -> int:
    completed = run_chromium(binary, with_script(page, MEASURE), profile, "--dump-dom",
                             f"--window-size={WINDOW[0]},{WINDOW[1]}")
    body = next(e for e in Dom(completed.stdout).root.find_all() if e.tag == "body")
    return int(body.attrs["data-scroll-width"])


@pytest.fixture(scope="module")
def demo_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's survey page, its dry run's and its mitigation's, a roll-up of it, and a 100,000-file survey."""
    import json

    from container_app.cli.main import main
    from tests.helpers.reports import synthetic_report

    out = tmp_path_factory.mktemp("pages")
    survey = make_demo(out / "demo")
    write_html_report(str(out / "demo"), survey)
    for name, extra in (("dry-run", ["--dry-run"]), ("mitigation", [])):
        assert main(["mitigate", str(out / "demo" / "archive"), "--report", str(out / "demo" / "survey-report.json"),
                     "--output", str(out / name), "--log-format", "json", *extra]) in (0, 1)
    paths = write_rollup(str(out / "rollup"), build_rollup([survey, json.loads(
        (out / "mitigation" / "mitigation-report.json").read_text("utf-8"))]))
    big = synthetic_report(100_000, name=lambda i: f"1.2.826.0.1.3680043.8.498.1849180772662373006178285037350875"
                                                   f"1056-{i}-{i}-abcdefgh.MR.Brain_MRI.dcm")
    write_html_report(str(out / "big"), big)
    return {"survey": out / "demo" / "report.html", "dry-run": out / "dry-run" / "report.html",
            "mitigation": out / "mitigation" / "report.html", "rollup": Path(paths["rollup.html"]),
            "100000 files": out / "big" / "report.html"}


@pytest.mark.parametrize("page", ["survey", "dry-run", "mitigation", "rollup", "100000 files"])
def test_the_page_fits_a_1280_px_window(chromium: str, demo_pages: dict[str, Path], page: str,
                                        tmp_path: Path) -> None:
    assert scroll_width(chromium, demo_pages[page], tmp_path / "profile") <= WINDOW[0]


FILTER = """<script>
function choose(id, value) { var box = document.getElementById(id); box.value = value;
  box.dispatchEvent(new Event("change")); }
choose("filter-reason", "TRUNCATED");
</script>"""


def test_the_filter_shows_the_resources_and_files_with_a_reason(chromium: str, demo_pages: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    page = demo_pages["survey"]
    before = Dom(run_chromium(chromium, page, tmp_path / "p1", "--dump-dom").stdout).root
    form = before.find(id="filter")
    assert "hidden" not in form.attrs  # the script shows the form it can serve
    reasons = [o.text for o in before.find(id="filter-reason").find_all() if o.tag == "option"]
    assert "TRUNCATED" in reasons and "NAME_MISMATCH" in reasons
    after = Dom(run_chromium(chromium, with_script(page, FILTER), tmp_path / "p2", "--dump-dom").stdout).root
    rows = [r for r in after.find(id="attention-resources").find_all(data_resource=None) if r.tag == "tr"]
    visible = [r.attrs["data-resource"] for r in rows if "hidden" not in r.attrs]
    assert visible == ["DEMO/arc001/DEMO_MR1/SCANS/4/DICOM"], visible  # the only scan with a truncated file
    every = [r for r in after.find_all(data_resource=None) if r.tag == "tr"]  # both tables: 4 resources
    assert after.find(id="filter-count").text.strip() == f"1 of {len(every)} resources shown"
    assert all("hidden" in r.attrs for r in every if r.attrs["data-resource"] != visible[0])
    section = next(e for e in after.find_all(data_resource=visible[0]) if e.tag == "details")
    with_reasons = [tr for tr in section.find_all() if tr.tag == "tr" and list(tr.find_all(**{"class": "reason"}))]
    shown = [tr for tr in with_reasons if "hidden" not in tr.attrs]
    assert shown and all("TRUNCATED" in tr.text for tr in shown)
    assert len(shown) < len(with_reasons)  # the section's other rows (NAME_MISMATCH) are hidden
