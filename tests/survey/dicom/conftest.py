"""Fixtures shared by the DICOM reader's tests."""

from __future__ import annotations

from typing import Any

import pytest

from container_app.survey.dicom import fallback
from container_app.survey.dicom.read_plan import ReadPlan


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the pydicom fallback was asked to read (the fast path gave up on them)."""
    calls: list[str] = []
    real = fallback.read_with_pydicom

    def spy(path: str, plan: ReadPlan) -> Any:
        calls.append(path)
        return real(path, plan)

    monkeypatch.setattr(fallback, "read_with_pydicom", spy)
    return calls
