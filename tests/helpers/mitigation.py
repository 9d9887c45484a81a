"""Shared by the mitigation tests (tests/mitigation/): the CLI as a subprocess, snapshots of a tree,
a legacy-named session to mitigate, and the check that no byte was lost."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from container_app.demo import synth
from container_app.demo.synth import CopyKind, CopySpec, FileSpec, InstanceSpec, Naming, ScanSpec

TESTS = Path(__file__).resolve().parents[1]
CONFORMANCE = next((p for p in (TESTS / "data" / "conformance", TESTS.parent.parent / "shared" / "conformance")
                    if (p / "xnat-scan5-duplicates").is_dir()), None)
needs_conformance = pytest.mark.skipif(CONFORMANCE is None, reason="conformance data not found")


def run_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "container_app", *map(str, args), "--log-format", "json"],
                          capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def survey(root: Path, out: Path) -> dict[str, Any]:
    result = run_cli("survey", root, "--output", out)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "survey-report.json").read_text())  # type: ignore[no-any-return]


def mitigate(root: Path, out: Path, backup: Path, *extra: str,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli("mitigate", root, "--report", out / "survey-report.json", "--backup-dir", backup,
                   "--output", out / "mitigation", *extra, env=env)


def mitigation_report(out: Path) -> dict[str, Any]:
    return json.loads((out / "mitigation" / "mitigation-report.json").read_text())  # type: ignore[no-any-return]


BASE = InstanceSpec(sop_instance_uid=synth.uid("base"), patient_name="Doe^Jane")


def legacy_session(root: Path, scans: int = 2, per_scan: int = 20, *, duplicates: int = 3,
                   differing: int = 1) -> Path:
    """Scans of legacy-named files, some stored twice (identical or not)."""
    specs = []
    for scan in range(1, scans + 1):
        files = []
        for n, instance in enumerate(synth.series_instances(BASE, scan, per_scan)):
            copies: tuple[CopySpec, ...] = ()
            if n < duplicates:
                kind = CopyKind.DIFFERENT if n < differing else CopyKind.IDENTICAL
                copies = (CopySpec(name=Naming.XNAT, kind=kind),)
            files.append(FileSpec(instance=instance, name=Naming.LEGACY, copies=copies))
        specs.append(ScanSpec(scan_id=str(scan), files=tuple(files)))
    layout = synth.build_session(root, "S1", "P1", specs)
    return layout.root


def assert_nothing_lost(before: dict[str, str], root: Path, backup: Path) -> None:
    """Every original file's bytes are somewhere: in place, renamed, or in BACKUP."""
    present = set(snapshot(root).values()) | (set(snapshot(backup).values()) if backup.exists() else set())
    missing = [path for path, digest in before.items() if digest not in present]
    assert not missing, f"lost: {missing[:5]}"
