"""Fixtures of the XNAT tests: a fresh archive per test, served by the stand-in with or without XNAT's
survey and mitigation API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.xnat import Site, make_site


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def standin(site: Site) -> Iterator[Any]:
    """An XNAT with the survey and mitigation API (1.8.7+)."""
    standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
    with standin_package.run_standin(site.archive, mitigation_api=True) as server:
        yield server


@pytest.fixture
def old_standin(site: Site) -> Iterator[Any]:
    """An XNAT without the survey and mitigation API (before 1.8.7)."""
    standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
    with standin_package.run_standin(site.archive, mitigation_api=False) as server:
        yield server
