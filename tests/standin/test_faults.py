"""The stand-in's fault switches: each kind does what API.md says, as often as it was told to.

Tests of the stand-in itself (tests/xnat_standin/), over real HTTP.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.helpers.standin import AUTH, TERMINAL, Site, catalog_entries, catalog_path, poll_until

# --- fault switches --------------------------------------------------------------------------------


def test_status_faults_fire_the_given_number_of_times(site: Site) -> None:
    site.standin.faults.set("files", "500", times=1)
    assert requests.get(site.files_url, auth=AUTH, timeout=10).status_code == 500
    assert requests.get(site.files_url, auth=AUTH, timeout=10).status_code == 200
    site.standin.faults.set("files", "401", times=1)
    site.standin.faults.set(r"^GET /data/experiments/[^/]+$", "403", times=2)
    assert requests.get(site.files_url, auth=AUTH, timeout=10).status_code == 401
    assert [site.get(f"/data/experiments/{site.experiment}").status_code for _ in range(3)] == [403, 403, 200]
    statuses = [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in site.standin.requests_log]
    assert statuses[:3] == [("GET", "files", 500), ("GET", "files", 200), ("GET", "files", 401)]


def test_random_faults_are_reproducible_with_a_seed(site: Site) -> None:
    def run() -> list[int]:
        site.standin.faults.clear()
        site.standin.faults.set("any", "503", probability=0.5, seed=7)
        return [site.get("/data/version").status_code for _ in range(12)]

    first = run()
    assert first == run()
    assert set(first) == {200, 503}
    site.standin.faults.clear()


def test_slow_answers_and_dropped_connections(site: Site) -> None:
    site.standin.faults.set("files", "slow", times=1, delay=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(site.files_url, auth=AUTH, timeout=0.2)
    site.standin.faults.set("files", "slow", times=1, delay=0.2)
    start = time.monotonic()
    assert requests.get(site.files_url, auth=AUTH, timeout=5).status_code == 200
    assert time.monotonic() - start >= 0.2
    site.standin.faults.set("upload", "drop", times=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.put(f"{site.files_url}/dropped.txt?inbody=true", data=b"abc", auth=AUTH, timeout=5)
    assert not (site.resource_dir / "dropped.txt").exists()
    assert ("PUT", 0) in {(r.method, r.status) for r in site.standin.requests_log}
    assert requests.put(f"{site.files_url}/dropped.txt?inbody=true", data=b"abc", auth=AUTH, timeout=5).ok


def test_a_failed_upload_leaves_a_partial_file(site: Site) -> None:
    site.standin.faults.set("upload", "partial_upload", times=1)
    site.standin.faults.set("files", "partial_upload")  # wrong request kind: never fires, never counts
    data = bytes(range(256)) * 4
    url = f"{site.files_url}/partial.bin?inbody=true"
    assert requests.put(url, data=data, auth=AUTH, timeout=5).status_code == 500
    assert (site.resource_dir / "partial.bin").read_bytes() == data[:512]
    assert "partial.bin" not in {e.get("URI") for e in catalog_entries(catalog_path(site.resource_dir))}
    taken = requests.put(url, data=data, auth=AUTH, timeout=5)  # the leftover is in the way: XNAT writes nothing
    assert taken.status_code == 200 and taken.json() == {"duplicates": ["partial.bin"]}
    assert (site.resource_dir / "partial.bin").read_bytes() == data[:512]
    assert requests.put(url + "&overwrite=true", data=data, auth=AUTH, timeout=5).status_code == 200
    assert (site.resource_dir / "partial.bin").read_bytes() == data
    assert [f.kind for f in site.standin.faults.fired] == ["partial_upload"]


def test_a_mitigation_can_end_in_error(site: Site) -> None:
    rid = site.resource_id
    api = f"{site.url}/xapi/resources"
    request_id = requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10).json()
    assert poll_until(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "DIVERGENT"
    catalog_before = catalog_path(site.resource_dir).read_bytes()
    site.standin.faults.set("mitigate", "mitigation_error", times=1)
    assert requests.post(f"{api}/mitigate/resource/{rid}", auth=AUTH, timeout=10).status_code == 200
    assert poll_until(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "ERROR"
    assert site.get(f"/xapi/resources/mitigate/resource/{rid}/report").status_code == 409  # as XNAT: not CONFORMING
    report = site.json(f"/xapi/resources/survey/request/{request_id}")["mitigationReport"]
    assert report["totalFileErrors"] > 0 and report["moveErrors"] and report["catalogWriteError"]
    assert catalog_path(site.resource_dir).read_bytes() == catalog_before  # files moved, catalog not rewritten

