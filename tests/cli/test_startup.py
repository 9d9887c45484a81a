"""Start-up cost (issue 17), guarded by what a run imports rather than by timing it (a timed test is flaky).

A survey with nothing to read imports no pydicom and starts no worker; a command line is parsed without
pydicom, structlog, rich or jinja2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

def _python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=cwd, check=False)


_SURVEY_THEN_LIST_MODULES = """
import json, sys
from container_app.cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "heavy": sorted(m for m in sys.modules if m.split(".")[0] == "pydicom"
      or m == "multiprocessing.pool")}), file=sys.stderr)
"""


@pytest.mark.parametrize("log_format", [None, "json"], ids=["auto", "json"])
def test_a_survey_of_an_empty_folder_imports_nothing_heavy(tmp_path: Path, log_format: str | None) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    args = ["survey", str(root), "--output", str(tmp_path / "out"), "--jobs", "2"]
    if log_format is not None:
        args += ["--log-format", log_format]
    done = _python(_SURVEY_THEN_LIST_MODULES, *args, cwd=tmp_path)  # stderr a pipe: auto is JSON
    result = json.loads(done.stderr.splitlines()[-1])
    assert result == {"rc": 0, "heavy": []}, done.stderr
    events = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    assert events == ["survey started", "survey finished"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"survey-report.json", "survey-summary.csv",
                                                             "report.html"}


def test_parsing_a_command_line_imports_nothing_heavy(tmp_path: Path) -> None:
    code = ("import sys\nfrom container_app.cli.main import parse_settings\n"
            "parse_settings(['survey', 'r', '--output', 'o', '--template', '${PatientID}-${SOPInstanceUID}'])\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydicom', 'structlog', 'rich', 'jinja2')))")
    done = _python(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
