"""Helpers for tests that use the XNAT stand-in: archive layouts and a pytest fixture.

Use the fixture in a test module with `from tests.xnat_standin.fixtures import standin_factory  # noqa: F401`
(and `# noqa: F811` on the test that takes it as an argument: ruff sees the import redefined).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.xnat_standin.server import StandIn, run_standin


def session_dir(archive_root: Path, project: str, session_label: str) -> Path:
    """`<archive>/<project>/arc001/<session>`: the folder XNAT mounts for a session."""
    return archive_root / project / "arc001" / session_label


def copy_scan_resource(source: Path, archive_root: Path, *, project: str = "PROJ", session_label: str = "SESS1",
                       scan_id: str = "5", label: str = "DICOM", exclude: frozenset[str] = frozenset()) -> Path:
    """Copy a resource folder (files and its catalog) into the archive as `SCANS/<scan_id>/<label>`."""
    target = session_dir(archive_root, project, session_label) / "SCANS" / scan_id / label
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        if entry.is_file() and entry.name not in exclude:
            shutil.copyfile(entry, target / entry.name)
    return target


StandInFactory = Callable[..., StandIn]


@pytest.fixture
def standin_factory() -> Iterator[StandInFactory]:
    """`standin_factory(archive_root, **run_standin_options)`: stand-ins stopped when the test ends."""
    started: list[StandIn] = []

    def start(archive_root: Path, **options: Any) -> StandIn:
        standin = run_standin(archive_root, **options)
        started.append(standin)
        return standin

    yield start
    for standin in started:
        standin.stop()
