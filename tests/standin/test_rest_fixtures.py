"""The stand-in's survey and mitigation API answers as NRG's REST fixtures show a running XNAT answering.

Each fixture's situation (conforming, misnamed, byte-identical and custom duplicates, non-actionable
duplicates, a bad file, instance numbers, a private SOP class, PET) is rebuilt from synthesized DICOM
(rest_fixtures.py), surveyed and, where the fixture has a mitigation, mitigated by the stand-in over real
HTTP; the request, its survey report and its mitigation report must have the fixture's shapes (null where
the fixture has null, absent where it is absent, the same kinds of collections) and totals.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.standin.rest_fixtures import (
    MAY_ADD_TO_MITIGATION,
    MAY_ADD_TO_SURVEY,
    PROJECT,
    SESSION,
    Situation,
    build_situation,
    fixture_names,
    kind_of,
    load,
)
from tests.xnat_standin.fixtures import StandInFactory, standin_factory  # noqa: F401

AUTH = ("admin", "secret")
TERMINAL = {"DIVERGENT", "CONFORMING", "NONCOMPLIANT", "ERROR", "CANCELED"}
NAMES = fixture_names()
pytestmark = pytest.mark.skipif(not NAMES, reason="NRG's REST fixtures (xnat-rest-tests) not found")


def _wait(url: str, until: set[str] = TERMINAL) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status = requests.get(url, auth=AUTH, timeout=10).json()
        if status in until:
            return str(status)
        time.sleep(0.01)
    raise AssertionError(f"{url} never reached {until}")


def _same_shape(ours: dict[str, Any], theirs: dict[str, Any], may_add: frozenset[str], what: str) -> None:
    for key, value in theirs.items():
        assert key in ours, f"{what}: {key} is missing (the fixture has {kind_of(value)})"
        assert kind_of(ours[key]) == kind_of(value), f"{what}: {key} is {kind_of(ours[key])}, not {kind_of(value)}"
        if key.startswith("total"):
            assert ours[key] == value, f"{what}: {key} is {ours[key]}, the fixture {value}"
    extra = set(ours) - set(theirs)
    assert extra <= may_add, f"{what}: fields the fixture does not have: {sorted(extra - may_add)}"
    if "movedFiles" in extra:
        assert ours["movedFiles"] is None, f"{what}: movedFiles the fixture leaves out must be empty (null)"


def _compare_request(ours: dict[str, Any], theirs: dict[str, Any], what: str) -> None:
    assert ours["rsnStatus"] == theirs["rsnStatus"], what
    for key in ("resourceLabel", "scanLabel", "scanDescription", "xsiType"):
        assert ours[key] == theirs[key], f"{what}: {key}"
    tail = theirs["resourceUri"].split("/SCANS/", 1)[1]
    assert ours["resourceUri"].endswith("/SCANS/" + tail), what
    assert isinstance(ours["scanId"], int) and str(ours["scanId"]) != ours["scanLabel"]  # the scan's database key


@pytest.mark.parametrize("name", NAMES)
def test_the_standin_answers_as_the_fixture_shows(name: str, tmp_path: Path,
                                                  standin_factory: StandInFactory) -> None:  # noqa: F811
    surveyed, mitigated = load("survey", name), load("survey_with_mitigation", name)
    document = surveyed or mitigated
    assert document is not None
    situation = Situation.of(document["surveyReport"])
    archive = tmp_path / "archive"
    built = build_situation(archive, document, situation)
    standin = standin_factory(archive, mitigation_delay=0.005)
    rid = standin.resource_id(PROJECT, SESSION, built.scan, built.label)
    api = f"{standin.url}/xapi/resources"

    request_id = requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10).json()
    status = _wait(f"{api}/survey/request/{request_id}/status")
    request = requests.get(f"{api}/survey/request/{request_id}", auth=AUTH, timeout=10).json()
    expected_status = surveyed["rsnStatus"] if surveyed is not None else "DIVERGENT"
    assert status == expected_status
    if surveyed is not None:
        _compare_request(request, surveyed, f"{name} (survey)")
        assert request["mitigationReport"] is None
    _same_shape(request["surveyReport"], document["surveyReport"], MAY_ADD_TO_SURVEY, f"{name}: surveyReport")
    folder = str(built.folder)
    report = request["surveyReport"]
    assert all(p.startswith(folder + "/") for p in report["mismatchedFiles"] or {})
    assert all(p.startswith(folder + "/") for p in report["badFiles"] or [])

    if mitigated is None:
        return
    requests.post(f"{api}/mitigate/request/{request_id}", auth=AUTH, timeout=10).raise_for_status()
    _wait(f"{api}/survey/request/{request_id}/status", {"CONFORMING", "NONCOMPLIANT", "ERROR"})
    request = requests.get(f"{api}/survey/request/{request_id}", auth=AUTH, timeout=10).json()
    _compare_request(request, mitigated, f"{name} (mitigation)")
    ours = request["mitigationReport"]
    _same_shape(ours, mitigated["mitigationReport"], MAY_ADD_TO_MITIGATION, f"{name}: mitigationReport")

    # The semantics behind the shapes (ResourceMitigationHelper): backups under
    # $CACHE/$PROJECT/$SESSION_ID/$TIMESTAMP/$SCAN_PK, every moved file backed up, a kept duplicate already at
    # its name retained and not backed up, and the archive as the report says.
    cache = standin.cache_root / PROJECT / request["experimentId"] / request["requestTime"] / str(request["scanId"])
    assert ours["cachePath"] == str(cache)
    removed, moved = ours["removedFiles"] or {}, ours["movedFiles"] or {}
    for original, backup in removed.items():
        assert backup == str(cache / Path(original).relative_to(built.folder)) and Path(backup).is_file()
    assert set(moved) <= set(removed)
    retained = ours.get("retainedFiles") or []
    assert {Path(p).name for p in retained} == built.at_name
    assert not set(retained) & set(removed)
    assert all(Path(p).is_file() for p in [*retained, *moved.values()])
    assert not any(Path(p).exists() for p in set(removed) - set(moved.values()))
