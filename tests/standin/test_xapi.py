"""The stand-in's /xapi routes: XNAT's resource survey and mitigation API, on XNAT's own conformance data.

Tests of the stand-in itself (tests/xnat_standin/), over real HTTP.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.conftest import SCAN5, SCAN5_EXPECTED
from tests.helpers.standin import (
    AUTH,
    PROJECT,
    SESSION,
    TERMINAL,
    XSI_TYPE,
    Site,
    catalog_entries,
    catalog_path,
    poll_until,
)
from tests.xnat_standin.fixtures import StandInFactory, copy_scan_resource, standin_factory  # noqa: F401

# --- the resource survey and mitigation API ------------------------------------------------------------


def test_survey_and_mitigation_reproduce_xnats_conformance_result(site: Site) -> None:
    rid = site.resource_id
    api = f"{site.url}/xapi/resources"
    assert site.get(f"/xapi/resources/survey/resource/{rid}").status_code == 404
    queued = requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10)
    assert queued.status_code == 200
    request_id = queued.json()
    assert isinstance(request_id, int)
    seen = poll_until(site, f"/xapi/resources/survey/resource/{rid}/status", until=TERMINAL)
    assert seen[-1] == "DIVERGENT"
    order = ["CREATED", "QUEUED_FOR_SURVEY", "SURVEYING", "DIVERGENT"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    report = site.json(f"/xapi/resources/survey/resource/{rid}/report")
    assert report["resourceSurveyRequestId"] == request_id
    assert (report["totalEntries"], report["totalUids"], report["totalBadFiles"], report["totalDuplicates"],
            report["totalMismatchedFiles"]) == (65, 60, 0, 5, 26)
    # As a running XNAT answers (NRG's fixtures in ../shared/conformance/xnat-rest-tests/): empty is null.
    assert report["badFiles"] is None and "nonActionableDuplicates" not in report
    assert all(Path(p).is_absolute() and Path(p).parent == site.resource_dir for p in report["mismatchedFiles"])
    assert site.json(f"/xapi/resources/survey/request/{request_id}/report") == report
    request_json = site.json(f"/xapi/resources/survey/request/{request_id}")
    assert request_json | {"rsnStatus": "DIVERGENT", "resourceId": rid, "experimentId": site.experiment,
                           "scanLabel": "5", "resourceLabel": "DICOM", "projectId": PROJECT} == request_json
    scans = site.json(f"/data/experiments/{site.experiment}/scans")["ResultSet"]["Result"]
    (scan_pk,) = [int(r["xnat_imagescandata_id"]) for r in scans if r["ID"] == "5"]
    assert request_json["scanId"] == scan_pk  # XNAT's entity: the scan's database key, not its ID
    assert requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10).status_code == 409  # still open
    assert site.get(f"/xapi/resources/mitigate/resource/{rid}/report").status_code == 409

    assert requests.post(f"{api}/mitigate/resource/{rid}", auth=AUTH, timeout=10).json() == request_id
    seen = poll_until(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)
    assert seen[-1] == "CONFORMING", seen
    mitigation = site.json(f"/xapi/resources/mitigate/resource/{rid}/report")
    totals = (mitigation["totalMovedFiles"], mitigation["totalRemovedFiles"], mitigation["totalFileErrors"])
    assert totals == (31, 36, 0)
    cache = Path(mitigation["cachePath"])
    # $CACHE/$PROJECT/$SESSION_ID/$TIMESTAMP/$SCAN_PK, as in XNAT's fixtures and ResourceMitigationHelper
    assert cache.relative_to(site.standin.cache_root).parts == (PROJECT, site.experiment, request_json["requestTime"],
                                                              str(scan_pk))
    assert "retainedFiles" not in mitigation  # nothing was already at its name
    assert set(mitigation["movedFiles"]) <= set(mitigation["removedFiles"])  # every moved file is backed up
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".dcm") == sorted(
        Path(p).name for p in mitigation["removedFiles"])
    assert all(Path(b).is_file() for b in mitigation["removedFiles"].values())

    entries = catalog_entries(catalog_path(site.resource_dir))
    assert len(entries) == 60
    assert {e.get("URI") for e in entries} == set(site.expected_names)
    assert {e.get("ID") for e in entries} == set(site.expected_names)
    assert all(e.get(XSI_TYPE) == "cat:dcmEntry" and e.get("UID") and e.get("instanceNumber") for e in entries)
    on_disk = {p.name for p in site.resource_dir.iterdir() if not p.name.endswith("catalog.xml")}
    assert on_disk == set(site.expected_names)

    again = requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10).json()
    assert again != request_id
    assert poll_until(site, f"/xapi/resources/survey/request/{again}/status", until=TERMINAL)[-1] == "CONFORMING"
    assert site.json(f"/xapi/resources/survey/request/{again}/report")["totalMismatchedFiles"] == 0


def test_project_level_survey_and_cancel(site: Site) -> None:
    api = f"{site.url}/xapi/resources"
    ids = requests.post(f"{api}/survey/project/{PROJECT}", auth=AUTH, timeout=10).json()
    assert len(ids) == 1
    poll_until(site, f"/xapi/resources/survey/request/{ids[0]}/status", until=TERMINAL)
    assert site.json(f"/xapi/resources/survey/project/{PROJECT}/status") == {str(site.resource_id): "DIVERGENT"}
    assert [r["id"] for r in site.json(f"/xapi/resources/survey/project/{PROJECT}")] == ids
    assert requests.delete(f"{api}/survey/resource/{site.resource_id}", auth=AUTH, timeout=10).json() == ids[0]
    assert site.json(f"/xapi/resources/survey/request/{ids[0]}/status") == "CANCELED"
    assert requests.post(f"{api}/survey/resource/{site.resource_id}", auth=AUTH, timeout=10).json() != ids[0]


def test_an_older_xnat_has_no_mitigation_api(tmp_path: Path, conformance: Path,
                                             standin_factory: StandInFactory) -> None:  # noqa: F811
    archive = tmp_path / "archive"
    copy_scan_resource(conformance / SCAN5, archive, exclude=frozenset({SCAN5_EXPECTED}))
    standin = standin_factory(archive, mitigation_api=False)
    assert requests.get(f"{standin.url}/data/version", auth=AUTH, timeout=10).text == "1.8.6"
    assert requests.head(f"{standin.url}/data/version", auth=AUTH, timeout=10).status_code == 200
    build = requests.get(f"{standin.url}/xapi/siteConfig/buildInfo", auth=AUTH, timeout=10).json()
    assert build["version"] == "1.8.6"
    rid = standin.resource_id(PROJECT, SESSION, "5", "DICOM")
    answer = requests.post(f"{standin.url}/xapi/resources/survey/resource/{rid}", auth=AUTH, timeout=10)
    assert answer.status_code == 404


def test_a_catalogued_file_that_is_not_dicom_is_a_bad_file_left_alone(site: Site) -> None:
    victim = site.resource_dir / sorted(site.expected_names)[0]
    victim.write_bytes(b"not DICOM at all\n" * 16)
    rid = site.resource_id
    request_id = requests.post(f"{site.url}/xapi/resources/survey/resource/{rid}", auth=AUTH, timeout=10).json()
    assert poll_until(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "DIVERGENT"
    report = site.json(f"/xapi/resources/survey/request/{request_id}/report")
    assert report["badFiles"] == [str(victim)]
    assert report["totalUids"] == 59
    requests.post(f"{site.url}/xapi/resources/mitigate/request/{request_id}", auth=AUTH, timeout=10)
    assert poll_until(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "CONFORMING"
    assert victim.read_bytes() == b"not DICOM at all\n" * 16
    assert victim.name in {e.get("URI") for e in catalog_entries(catalog_path(site.resource_dir))}

