"""Shared by the tests of mitigation through XNAT's REST API (tests/mitigation/xnat/): an archive served by the
stand-in, the CLI run as a subprocess with XNAT_HOST / XNAT_USER / XNAT_PASS and `--executor xnat`, as the
Container Service runs it, and what its end state must be.

The archive holds XNAT's conformance scan as scan 5 of session SESS in project Test. The CLI's ROOT is a
link to the session folder, so (as inside a container, where the session is mounted at /input) the
mount shows neither project nor session: `--xnat-session` names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from container_app.mitigation.xnat.archive import BACKUP_RESOURCE

REPO = Path(__file__).resolve().parents[2]
_FIXTURE_TIME_NS = 1_615_766_400 * 1_000_000_000  # 2021-03-15, the day the fixture's files carry in their names
CONFORMANCE = next((p / "xnat-scan5-duplicates" for p in (REPO / "tests" / "data" / "conformance",
                                                           REPO.parent / "shared" / "conformance")
                    if (p / "xnat-scan5-duplicates").is_dir()), None)
#: Every module of these tests is marked with it (as `pytestmark`): without the conformance data, all skip.
requires_conformance = pytest.mark.skipif(CONFORMANCE is None, reason="conformance data not found")

PROJECT, SESSION = "Test", "SESS"
CATALOG = "scan_5_catalog.xml"


@dataclass(frozen=True)
class Site:
    tmp: Path
    archive: Path  # the stand-in's archive root
    session: Path  # archive/Test/arc001/SESS
    resource: Path  # .../SCANS/5/DICOM
    mount: Path  # a link to the session folder: what the container sees at /input
    expected: frozenset[str]
    originals: dict[str, str]  # name -> sha256 of the 65 files as archived

    @property
    def backup(self) -> Path:
        return self.session / "RESOURCES" / BACKUP_RESOURCE


def make_site(tmp_path: Path) -> Site:
    """The conformance scan copied into a fresh archive, and the mount a container would see."""
    assert CONFORMANCE is not None
    archive = tmp_path / "archive"
    session = archive / PROJECT / "arc001" / SESSION
    resource = session / "SCANS" / "5" / "DICOM"
    expected = copy_conformance_scan(resource)
    mount = tmp_path / "input"
    mount.symlink_to(session, target_is_directory=True)
    return Site(tmp_path, archive, session, resource, mount, expected, files(resource))


def copy_conformance_scan(resource: Path) -> frozenset[str]:
    """The conformance scan's files (and catalog) copied into `resource` (made here); the names XNAT's test
    expects after its mitigation."""
    assert CONFORMANCE is not None
    resource.mkdir(parents=True)
    expected = frozenset((CONFORMANCE / "expectedNames.txt").read_text("utf-8").split())
    for entry in sorted(CONFORMANCE.iterdir()):
        if entry.name != "expectedNames.txt":
            shutil.copy2(entry, resource / entry.name)
            # XNAT keeps the newest copy of a duplicate; its test's result (31 moved, 36 removed) means the
            # misnamed copies were the newer ones. The checkout's times are whatever the clone wrote (ties
            # within the file system's tick), so they are set here, never inherited.
            newer = entry.name not in expected and entry.suffix == ".dcm"
            stamp = _FIXTURE_TIME_NS + (1_000_000_000 if newer else 0)
            os.utime(resource / entry.name, ns=(stamp, stamp))
    return expected


def files(folder: Path) -> dict[str, str]:
    """sha256 of every file in a resource folder, catalogs left out."""
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith("_catalog.xml") and not p.name.startswith(".")}


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    out: Path

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "mitigation-report.json").read_text("utf-8"))  # type: ignore[no-any-return]


def xnat_env(server: Any, user: str = "admin") -> dict[str, str]:
    alias, secret = server.issue_token(user)
    return {"XNAT_HOST": server.url, "XNAT_USER": alias, "XNAT_PASS": secret}


def run_cli(*args: str | Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "XNAT_RESOURCE_SURVEY_HTTP_BACKOFF": "0.02", **env}
    for name in ("XNAT_HOST", "XNAT_USER", "XNAT_PASS"):
        if name not in env:
            full_env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "container_app", *map(str, args), "--log-format", "json"],
                          capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO)


def mitigate(site: Site, env: dict[str, str], *extra: str, out: str = "out", session: str | None = "Test_E00001",
             timeout: float = 300) -> Run:
    output = site.tmp / out
    shutil.rmtree(output, ignore_errors=True)  # each launch gets a fresh /output, as in XNAT
    args: list[str | Path] = ["mitigate", site.mount, "--output", output, "--executor", "xnat", "--jobs", "1"]
    if session is not None:
        args.append(f"--xnat-session={session}")
    result = run_cli(*args, *extra, env=env, timeout=timeout)
    return Run(result.returncode, result.stdout, result.stderr, output)


def clean(run: Run | subprocess.CompletedProcess[str], *secrets: str) -> None:
    """No traceback, no secret, every stdout line JSON (the container's log)."""
    text = run.stdout + run.stderr
    assert "Traceback" not in text, text[-3000:]
    for secret in secrets:
        assert secret not in text
    for line in run.stdout.splitlines():
        json.loads(line)


def no_secret_in(folder: Path, *secrets: str) -> None:
    """Reports, journal, re-survey: no file the run wrote holds a secret."""
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), path


def catalog_entries(resource: Path) -> list[str]:
    return re.findall(r"<cat:entry\b[^>]*/>", (resource / CATALOG).read_text("utf-8"))


def attribute(entry: str, name: str) -> str | None:
    match = re.search(rf'\s{name}="([^"]*)"', entry)
    return None if match is None else match.group(1)


def assert_nothing_lost(site: Site, *more: Path) -> None:
    """Every original's bytes are somewhere: in the resource, in RESOURCE_SURVEY_BACKUP or XNAT's cache."""
    present = set(files(site.resource).values())
    for folder in (site.backup, *more):
        if folder.exists():
            present |= set(tree(folder).values())
    missing = [name for name, digest in site.originals.items() if digest not in present]
    assert not missing, f"lost {len(missing)} original(s), e.g. {missing[:3]}"


def assert_end_state(site: Site) -> None:
    assert set(files(site.resource)) == site.expected
    entries = catalog_entries(site.resource)
    assert sorted(attribute(e, "URI") or "" for e in entries) == sorted(site.expected)
