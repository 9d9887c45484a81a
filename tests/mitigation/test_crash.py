"""Crash tests: the real CLI killed with SIGKILL at many points of a mitigation over a few thousand files.

After every kill, every original byte must be reachable (in place, renamed, or in BACKUP); rerunning
the same command must finish the job; restore must bring back the archive byte for byte.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from container_app.demo import synth
from container_app.demo.synth import CopyKind, CopySpec, FileSpec, InstanceSpec, Naming, ScanSpec
from tests.helpers.mitigation import assert_nothing_lost, mitigate, run_cli, snapshot, survey

SCANS, PER_SCAN = 3, 700


@pytest.fixture(scope="module")
def big_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = InstanceSpec(sop_instance_uid=synth.uid("crash"), patient_name="Roe^Richard")
    scans = []
    for scan in range(1, SCANS + 1):
        files = []
        for n, instance in enumerate(synth.series_instances(base, scan, PER_SCAN)):
            name = Naming.LEGACY if n % 3 == 0 else Naming.XNAT
            copies: tuple[CopySpec, ...] = ()
            if n % 25 == 0:
                kind = CopyKind.IDENTICAL if n % 50 else CopyKind.DIFFERENT
                copies = (CopySpec(name=f"copy-{scan}-{n}.dcm", kind=kind),)
            files.append(FileSpec(instance=instance, name=name, copies=copies))
        scans.append(ScanSpec(scan_id=str(scan), files=tuple(files)))
    return synth.build_session(tmp_path_factory.mktemp("crash") / "pristine", "S1", "P1", scans).root


def _copy(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


def _final_names(report: dict[str, object]) -> set[str]:
    names = set()
    for resource in report["resources"]:  # type: ignore[attr-defined]
        for file in resource["files"]:
            names.add(f"{resource['path']}/{file['expectedName']}")
    return names


def _names(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*.dcm")}


def test_sigkill_at_many_journal_points_then_rerun(big_session: Path, tmp_path: Path) -> None:
    root = _copy(big_session, tmp_path / "archive")
    out, backup = tmp_path / "out", tmp_path / "backup"
    report = survey(root, out)
    before = snapshot(root)
    kills = 0
    for _attempt in range(200):
        result = mitigate(root, out, backup, env={"XNAT_RESOURCE_SURVEY_FAULTS": "crash_after_journal=131"})
        if result.returncode != -signal.SIGKILL:
            break
        kills += 1
        assert_nothing_lost(before, root, backup)
    assert kills >= 10, "the crash points did not spread over the run"
    assert result.returncode == 0, result.stdout[-2000:]
    assert _names(root) == _final_names(report)
    final = json.loads((out / "mitigation" / "mitigation-report.json").read_text())
    assert final["totals"]["fileErrors"] == 0 and final["totals"]["mitigated"] == SCANS

    restored = run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json")
    assert restored.returncode == 0, restored.stdout[-2000:]
    assert snapshot(root) == before


def test_sigkill_at_random_moments(big_session: Path, tmp_path: Path) -> None:
    root = _copy(big_session, tmp_path / "archive")
    out, backup = tmp_path / "out", tmp_path / "backup"
    report = survey(root, out)
    before = snapshot(root)
    rng = random.Random(20261127)
    command = [sys.executable, "-m", "container_app", "mitigate", str(root),
               "--report", str(out / "survey-report.json"), "--backup-dir", str(backup),
               "--output", str(out / "mitigation"), "--log-format", "json"]
    for _ in range(6):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert_nothing_lost(before, root, backup)
    result = mitigate(root, out, backup)
    assert result.returncode == 0, result.stdout[-2000:]
    assert _names(root) == _final_names(report)
    assert run_cli("restore", "--report", out / "mitigation" / "mitigation-report.json").returncode == 0
    assert snapshot(root) == before
