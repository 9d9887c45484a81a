"""Fixtures of the end-to-end tests: podman, the image (built once per test session), a demo archive."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.container_image import LOCAL_IMAGE_SH, ROOT, TAG, Engine, container_env


@pytest.fixture(scope="session")
def engine() -> Engine:
    env, builder, reason = container_env()
    if env is None:
        pytest.skip(reason)
    return Engine(env, builder)


@pytest.fixture(scope="session")
def image(engine: Engine) -> Iterator[str]:
    """Build the image once for the test session with container/build.sh; remove it afterwards."""
    env = {**engine.env, "BUILDER": engine.builder, "PYTHON": sys.executable, "LOCAL_IMAGE_SH": str(LOCAL_IMAGE_SH)}
    proc = subprocess.run(
        [str(ROOT / "container" / "build.sh"), TAG], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"container/build.sh failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    yield TAG
    engine.podman("rmi", "-f", TAG)


@pytest.fixture
def demo(tmp_path: Path) -> Any:
    demo_archive = pytest.importorskip("container_app.demo.archive")
    return demo_archive.build_demo_archive(tmp_path / "archive")
