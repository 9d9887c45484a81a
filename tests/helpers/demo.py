"""Shared by the synthesizer's tests: a base instance and the conformance data they compare against."""

from __future__ import annotations

from pathlib import Path

import pytest

from container_app.demo import synth
from container_app.demo.synth import InstanceSpec

_TESTS = Path(__file__).resolve().parents[1]
# tests/data/conformance is a copy of ../shared/conformance, so a clean clone has it; the shared
# folder is only a fallback.
CONFORMANCE = next((p for p in (_TESTS / "data" / "conformance", _TESTS.parents[1] / "shared" / "conformance")
                    if p.is_dir()), _TESTS / "data" / "conformance")

BASE = InstanceSpec(sop_instance_uid=synth.uid("test", "instance", 1), series_number="4", instance_number="2")


def conformance_file(name: str) -> Path:
    """`name` in the conformance data; skips the test when it is not there."""
    path = CONFORMANCE / name
    if not path.exists():
        pytest.skip(f"conformance data not available at {path}")
    return path
