"""Fixtures of the page tests: the demo surveyed, and the demo mitigated, once per test module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.reports import make_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    return out, make_demo(out)


@pytest.fixture(scope="module")
def mitigated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    from container_app.cli.main import main

    out = tmp_path_factory.mktemp("mitigated")
    survey = make_demo(out)
    mitigation_out = out / "mitigation"
    code = main(["mitigate", str(out / "archive"), "--report", str(out / "survey-report.json"),
                 "--output", str(mitigation_out), "--log-format", "json"])
    assert code in (0, 1)
    mitigation = json.loads((mitigation_out / "mitigation-report.json").read_text("utf-8"))
    return mitigation_out, survey, mitigation
