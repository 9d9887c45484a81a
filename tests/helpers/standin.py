"""What the stand-in's own tests share: the scan-5 site, catalog readers and a status poller.

The `site` fixture that builds a `Site` is in conftest.py beside this file.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import SCAN5, SCAN5_EXPECTED
from tests.xnat_standin import StandIn

PROJECT = "PROJ"
SESSION = "SESS1"
CAT = "{http://nrg.wustl.edu/catalog}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
AUTH = ("admin", "secret")
TERMINAL = {"DIVERGENT", "CONFORMING", "NONCOMPLIANT", "ERROR", "CANCELED"}


@dataclass(frozen=True)
class Site:
    standin: StandIn
    archive: Path
    resource_dir: Path  # PROJ/arc001/SESS1/SCANS/5/DICOM
    expected_names: frozenset[str]

    @property
    def url(self) -> str:
        return self.standin.url

    @property
    def experiment(self) -> str:
        return self.standin.experiment_id(PROJECT, SESSION)

    @property
    def resource_id(self) -> int:
        return self.standin.resource_id(PROJECT, SESSION, "5", "DICOM")

    @property
    def files_url(self) -> str:
        return f"{self.url}/data/experiments/{self.experiment}/scans/5/resources/DICOM/files"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("auth", AUTH)
        kwargs.setdefault("timeout", 10)
        return requests.get(self.url + path, **kwargs)

    def json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


def build_archive(root: Path, conformance: Path) -> tuple[Path, frozenset[str]]:
    source = conformance / SCAN5
    if not source.is_dir():
        pytest.skip(f"{source} is missing")
    resource = root / PROJECT / "arc001" / SESSION / "SCANS" / "5" / "DICOM"
    resource.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name != SCAN5_EXPECTED:
            shutil.copyfile(entry, resource / entry.name)
    # A second session with a small session-level resource, for uploads that must not touch scan 5.
    (root / PROJECT / "arc001" / "SESS2" / "SCANS" / "1" / "DICOM").mkdir(parents=True)
    return resource, frozenset((source / SCAN5_EXPECTED).read_text("utf-8").split())


def catalog_entries(catalog: Path) -> list[ET.Element]:
    return list(ET.parse(catalog).getroot().iter(f"{CAT}entry"))


def catalog_path(resource: Path) -> Path:
    (catalog,) = sorted(resource.glob("*catalog.xml"))
    return catalog


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def poll_until(site: Site, path: str, *, until: set[str], timeout: float = 15.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = site.json(path)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in until:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"no status in {until} after {timeout}s: saw {seen}")
