"""The `site` fixture of the stand-in's own tests: scan 5 of XNAT's conformance data, served by a stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.standin import Site, build_archive
from tests.xnat_standin import run_standin


@pytest.fixture
def site(tmp_path: Path, conformance: Path) -> Iterator[Site]:
    archive = tmp_path / "archive"
    resource, expected = build_archive(archive, conformance)
    with run_standin(archive, mitigation_delay=0.01) as standin:
        yield Site(standin, archive, resource, expected)
