"""Remake the README's screenshots of the demo's reports: `.venv/bin/python docs/screenshots/make.py`.

Builds the demo (`xnat-resource-survey demo`, synthetic data only) in a scratch folder of the temp dir, runs a dry run
and a mitigation of it with the CLI, and renders the three pages (survey, dry run, mitigation) with
headless Chromium (Debian's `chromium` package, as tests/e2e/test_browser.py drives it) at 1280x900 into
this folder as survey.png, dry-run.png and mitigation.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHROMIUM = "/usr/bin/chromium"
WINDOW = (1280, 900)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars")
MAX_BYTES = 300_000  # the README's images stay small in the repository
#: A fixed scratch folder, so the paths the pages show are the same at every rerun (and readable).
SCRATCH = Path(tempfile.gettempdir()) / "xnat-resource-survey-screenshots"
MARKER = ".made-by-docs-screenshots"


def cli(*args: str | Path) -> None:
    """`xnat-resource-survey ARGS` from this checkout; on failure its log is shown and the script stops."""
    command = [sys.executable, "-m", "container_app", *map(str, args), "--log-format", "json"]
    completed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        log = (completed.stdout + completed.stderr)[-3000:]  # JSON log lines go to stdout, errors to stderr
        sys.exit(f"{args[0]} failed ({completed.returncode}):\n{log}")


def screenshot(page: Path, png: Path, profile: Path) -> None:
    """The top 1280x900 of `page` as a person's browser window shows it."""
    profile.mkdir(parents=True)
    command = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
               f"--screenshot={png}", page.resolve().as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                               env={**os.environ, "HOME": str(profile)})
    if completed.returncode != 0 or not png.is_file():
        sys.exit(f"chromium failed ({completed.returncode}) on {page}:\n{completed.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=HERE, help="folder for the PNGs (default: docs/screenshots)")
    where = parser.parse_args().output
    if not os.path.exists(CHROMIUM):
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    where.mkdir(parents=True, exist_ok=True)
    if SCRATCH.exists() and not (SCRATCH / MARKER).exists():
        sys.exit(f"{SCRATCH} exists and was not made by this script: remove it or move it away")
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir()
    (SCRATCH / MARKER).touch()
    try:
        scratch = SCRATCH
        demo = scratch / "demo"
        cli("demo", "--output", demo, "--jobs", "1")
        archive, report = demo / "archive", demo / "survey-report.json"
        cli("mitigate", archive, "--report", report, "--output", demo / "dry-run", "--dry-run")
        cli("mitigate", archive, "--report", report, "--output", demo / "mitigation",
            "--backup-dir", scratch / "backup")
        pages = {"survey.png": demo / "report.html", "dry-run.png": demo / "dry-run" / "report.html",
                 "mitigation.png": demo / "mitigation" / "report.html"}
        for name, page in pages.items():
            png = where / name
            screenshot(page, png, scratch / f"profile-{png.stem}")
            size = png.stat().st_size
            print(f"{png} ({size // 1000} KB)")
            if size > MAX_BYTES:
                print(f"  larger than {MAX_BYTES // 1000} KB: keep the README's images small", file=sys.stderr)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
