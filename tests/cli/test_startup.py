"""Start-up cost (issue 17), guarded by what a run imports rather than by timing it (a timed test is flaky).

A survey with nothing to read imports neither pydicom nor structlog nor rich, and starts no worker; its JSON
log lines, written without structlog, are the lines structlog writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from container_app.demo import synth
from container_app.demo.synth import InstanceSpec, ScanSpec, SessionSpec

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
print(json.dumps({"rc": rc, "heavy": sorted(m for m in sys.modules if m.split(".")[0] in ("pydicom", "structlog",
      "rich") or m == "multiprocessing.pool")}), file=sys.stderr)
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


def _comparable(stdout: str) -> list[dict[str, Any]]:
    """The log lines without what differs from run to run (when, how fast), keys in their order."""
    lines = []
    for line in stdout.splitlines():
        event = json.loads(line)
        for key in ("timestamp", "seconds", "files_per_second", "eta_seconds"):
            if key in event:
                event[key] = "*"
        lines.append(event)
    return lines


def test_json_lines_without_structlog_are_structlogs(tmp_path: Path) -> None:
    """The same survey of a project (two sessions: the roll-up logs too), lightweight and with structlog
    loaded first (so that structlog writes every line): the same lines, keys in the same order."""
    study = InstanceSpec(sop_instance_uid=synth.uid("startup", "x"), study_instance_uid=synth.uid("startup", "s"))
    scan = ScanSpec.conforming("1", synth.series_instances(study, 1, 2))
    root = synth.build_project(tmp_path / "archive", "P1", [SessionSpec(label="S1", scans=(scan,)),
                                                            SessionSpec(label="S2", scans=(scan,))]).root
    args = ["survey", str(root), "--output", str(tmp_path / "out"), "--jobs", "1", "--log-format", "json"]
    light = _python(_SURVEY_THEN_LIST_MODULES, *args, cwd=tmp_path)
    assert json.loads(light.stderr.splitlines()[-1])["rc"] == 0, light.stderr
    assert "structlog" not in light.stderr
    full = _python("import structlog\n" + _SURVEY_THEN_LIST_MODULES, *args, cwd=tmp_path)
    assert json.loads(full.stderr.splitlines()[-1])["rc"] == 0, full.stderr
    assert "structlog" in full.stderr
    light_lines, full_lines = _comparable(light.stdout), _comparable(full.stdout)
    assert light_lines == full_lines
    assert [list(e) for e in light_lines] == [list(e) for e in full_lines]  # the keys' order too
    assert "roll-up written" in [e["event"] for e in light_lines]


def test_an_event_with_an_exception_goes_through_structlog_configured_alike(tmp_path: Path) -> None:
    """exc_info needs structlog's formatting: it is imported then, and configured as for every other line."""
    code = ("import json, sys\nfrom container_app.support import logs\n"
            "logs.configure('json', lightweight=True)\nlog = logs.get_logger('t')\n"
            "log.info('before', n=1)\nassert 'structlog' not in sys.modules\n"
            "try:\n    raise ValueError('boom')\nexcept ValueError:\n    log.error('failed', exc_info=True)\n"
            "log.warning('after', exc_info=False)\nlog.debug('not shown')\n")
    done = _python(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before, failed, after = (json.loads(line) for line in done.stdout.splitlines())
    assert list(before) == ["n", "event", "level", "timestamp"] and before["level"] == "info"
    assert list(failed) == ["event", "level", "timestamp", "exception"]
    assert "ValueError: boom" in failed["exception"] and failed["level"] == "error"
    assert list(after) == ["event", "level", "timestamp"] and after["level"] == "warning"
