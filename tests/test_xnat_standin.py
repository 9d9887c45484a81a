"""Tests of the XNAT stand-in server itself, over real HTTP, with `requests` and with `xnat.connect`.

The stand-in (tests/xnat_standin/) is test infrastructure: these tests pin down that it serves XNAT's
shapes, updates its catalogs as XNAT does, runs XNAT's survey and mitigation on XNAT's own conformance
data, and that every fault switch does what it says.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import xnat
import xnat.exceptions

from tests.conftest import SCAN5, SCAN5_EXPECTED
from tests.xnat_standin import StandIn, run_standin
from tests.xnat_standin.fixtures import StandInFactory, copy_scan_resource, standin_factory  # noqa: F401

PROJECT = "PROJ"
SESSION = "SESS1"
CAT = "{http://nrg.wustl.edu/catalog}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
AUTH = ("admin", "secret")
TERMINAL = {"DIVERGENT", "CONFORMING", "NONCOMPLIANT", "ERROR", "CANCELED"}


@dataclass(frozen=True)
class Site:
    standin: StandIn
    archive: Path
    resource_dir: Path  # PROJ/arc001/SESS1/SCANS/5/DICOM
    expected_names: frozenset[str]

    @property
    def url(self) -> str:
        return self.standin.url

    @property
    def experiment(self) -> str:
        return self.standin.experiment_id(PROJECT, SESSION)

    @property
    def resource_id(self) -> int:
        return self.standin.resource_id(PROJECT, SESSION, "5", "DICOM")

    @property
    def files_url(self) -> str:
        return f"{self.url}/data/experiments/{self.experiment}/scans/5/resources/DICOM/files"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("auth", AUTH)
        kwargs.setdefault("timeout", 10)
        return requests.get(self.url + path, **kwargs)

    def json(self, path: str) -> Any:
        answer = self.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()


def _build_archive(root: Path, conformance: Path) -> tuple[Path, frozenset[str]]:
    source = conformance / SCAN5
    if not source.is_dir():
        pytest.skip(f"{source} is missing")
    resource = root / PROJECT / "arc001" / SESSION / "SCANS" / "5" / "DICOM"
    resource.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name != SCAN5_EXPECTED:
            shutil.copyfile(entry, resource / entry.name)
    # A second session with a small session-level resource, for uploads that must not touch scan 5.
    (root / PROJECT / "arc001" / "SESS2" / "SCANS" / "1" / "DICOM").mkdir(parents=True)
    return resource, frozenset((source / SCAN5_EXPECTED).read_text("utf-8").split())


@pytest.fixture
def site(tmp_path: Path, conformance: Path) -> Iterator[Site]:
    archive = tmp_path / "archive"
    resource, expected = _build_archive(archive, conformance)
    with run_standin(archive, mitigation_delay=0.01) as standin:
        yield Site(standin, archive, resource, expected)


def _entries(catalog: Path) -> list[ET.Element]:
    return list(ET.parse(catalog).getroot().iter(f"{CAT}entry"))


def _catalog(resource: Path) -> Path:
    (catalog,) = sorted(resource.glob("*_catalog.xml"))
    return catalog


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _poll(site: Site, path: str, *, until: set[str], timeout: float = 15.0) -> list[str]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = site.json(path)
        if not seen or seen[-1] != status:
            seen.append(status)
        if status in until:
            return seen
        time.sleep(0.005)
    raise AssertionError(f"no status in {until} after {timeout}s: saw {seen}")


# --- connecting -----------------------------------------------------------------------------------


def test_xnatpy_connects_and_walks_the_archive(site: Site) -> None:
    with xnat.connect(site.url, user="admin", password="secret", loglevel="ERROR") as session:
        assert session.logged_in_user == "admin"
        assert session.xnat_version == "1.8.10"
        assert list(session.projects.keys()) == [PROJECT]
        experiment = session.projects[PROJECT].experiments[SESSION]
        assert experiment.id == site.experiment
        assert experiment.label == SESSION
        scan = session.experiments[site.experiment].scans["5"]
        resource = scan.resources["DICOM"]
        assert resource.id == str(site.resource_id)
        files = resource.files
        assert len(files) == 65
        one = sorted(files.values(), key=lambda f: f.path)[0]
        assert one.digest == _md5(site.resource_dir / one.path)
        # The plain calls an executor uses work over the same endpoints.
        assert session.get_json(f"/data/experiments/{site.experiment}")["items"][0]["data_fields"]["label"] == SESSION


def test_xnatpy_connects_with_an_alias_token_from_the_environment(site: Site,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    issued = site.json("/data/services/tokens/issue")
    assert set(issued) >= {"alias", "secret", "xdatUserId", "estimatedExpirationTime"}
    assert issued["xdatUserId"] == "admin"
    monkeypatch.setenv("XNAT_HOST", site.url)
    monkeypatch.setenv("XNAT_USER", issued["alias"])
    monkeypatch.setenv("XNAT_PASS", issued["secret"])
    # xnatpy 0.8 hashes `server` before reading XNAT_HOST, so `xnat.connect()` without a server fails;
    # user and password do come from XNAT_USER / XNAT_PASS.
    with pytest.raises(AttributeError):
        xnat.connect(loglevel="ERROR")
    with xnat.connect(os.environ["XNAT_HOST"], loglevel="ERROR") as session:
        assert session.logged_in_user == "admin"
        assert session.get_json("/data/projects")["ResultSet"]["totalRecords"] == "1"
    site.standin.invalidate_token(issued["alias"])
    assert site.get("/data/projects", auth=(issued["alias"], issued["secret"])).status_code == 401


def test_bad_credentials_are_refused(site: Site) -> None:
    assert site.get("/data/projects", auth=("admin", "wrong")).status_code == 401
    assert site.get("/data/projects", auth=None).status_code == 401
    with pytest.raises(xnat.exceptions.XNATLoginFailedError):
        xnat.connect(site.url, user="admin", password="wrong", loglevel="CRITICAL")


def test_roles_give_403_without_owner_rights(tmp_path: Path, conformance: Path) -> None:
    archive = tmp_path / "archive"
    _build_archive(archive, conformance)
    users = {"admin": "secret", "bob": "pw", "carol": "pw", "dave": "pw"}
    roles = {"bob": {PROJECT: "member"}, "carol": {PROJECT: "collaborator"}, "dave": {}}
    with run_standin(archive, users=users, roles=roles) as standin:
        experiment = standin.experiment_id(PROJECT, SESSION)
        base = f"{standin.url}/data/experiments/{experiment}/scans/5/resources/DICOM/files"
        rid = standin.resource_id(PROJECT, SESSION, "5", "DICOM")
        survey = f"{standin.url}/xapi/resources/survey/resource/{rid}"
        assert requests.get(base, auth=("carol", "pw"), timeout=10).status_code == 200
        assert requests.put(base + "/x.txt", data=b"x", auth=("carol", "pw"), timeout=10).status_code == 403
        assert requests.put(base + "/x.txt", data=b"x", auth=("bob", "pw"), timeout=10).status_code == 200
        assert requests.delete(base + "/x.txt", auth=("bob", "pw"), timeout=10).status_code == 403
        assert requests.post(survey, auth=("bob", "pw"), timeout=10).status_code == 403
        assert requests.get(base, auth=("dave", "pw"), timeout=10).status_code == 403
        listing = requests.get(f"{standin.url}/data/projects", auth=("dave", "pw"), timeout=10).json()
        assert listing["ResultSet"]["Result"] == []
        assert requests.delete(base + "/x.txt", auth=AUTH, timeout=10).status_code == 200
        assert ("PUT", 403, "carol") in {(r.method, r.status, r.user) for r in standin.requests_log}


# --- listings ---------------------------------------------------------------------------------------


def test_listings_use_xnat_result_set_shapes(site: Site) -> None:
    experiments = site.json(f"/data/projects/{PROJECT}/experiments")["ResultSet"]
    assert experiments["totalRecords"] == "2"
    row = next(r for r in experiments["Result"] if r["label"] == SESSION)
    assert row == row | {"ID": site.experiment, "project": PROJECT, "xsiType": "xnat:mrSessionData",
                         "URI": f"/data/experiments/{site.experiment}"}
    by_label = site.json(f"/data/projects/{PROJECT}/experiments/{SESSION}")["items"][0]
    assert by_label["data_fields"]["ID"] == site.experiment
    assert by_label["meta"]["xsi:type"] == "xnat:mrSessionData"
    scans = site.json(f"/data/experiments/{site.experiment}/scans")["ResultSet"]["Result"]
    assert [s["ID"] for s in scans] == ["5"]
    resources = site.json(f"/REST/experiments/{site.experiment}/scans/5/resources")["ResultSet"]["Result"]
    assert resources == [resources[0] | {"xnat_abstractresource_id": str(site.resource_id), "label": "DICOM",
                                         "format": "DICOM", "file_count": "65"}]
    assert "URI" not in resources[0]  # as XNAT: xnatpy builds resource URIs from the ID
    files = requests.get(site.files_url, params={"format": "json"}, auth=AUTH, timeout=10).json()["ResultSet"]
    assert files["totalRecords"] == "65"
    first = files["Result"][0]
    assert set(first) == {"Name", "Size", "URI", "collection", "file_tags", "file_format", "file_content", "cat_ID",
                          "digest"}
    path = site.resource_dir / first["Name"]
    assert first["Size"] == str(path.stat().st_size)
    assert first["digest"] == _md5(path)
    assert first["file_format"] == "DICOM"
    assert first["URI"] == f"/data/experiments/{site.experiment}/scans/5/resources/{site.resource_id}/files/" \
                           f"{first['Name']}"
    download = site.get(first["URI"])
    assert download.content == path.read_bytes()


# --- changes ---------------------------------------------------------------------------------------


def test_upload_adds_a_plain_entry_and_delete_removes_it(site: Site) -> None:
    name = "uploaded.dcm"
    data = (site.resource_dir / sorted(site.expected_names)[0]).read_bytes()
    put = requests.put(f"{site.files_url}/{name}", params={"inbody": "true", "format": "DICOM"}, data=data,
                       auth=AUTH, timeout=10)
    assert put.status_code == 200, put.text
    entry = next(e for e in _entries(_catalog(site.resource_dir)) if e.get("URI") == name)
    assert entry.get(XSI_TYPE) is None  # a plain cat:entry, as XNAT makes for REST uploads
    assert entry.get("UID") is None and entry.get("instanceNumber") is None
    assert entry.get("digest") == hashlib.md5(data).hexdigest()
    assert (site.resource_dir / name).read_bytes() == data
    again = requests.put(f"{site.files_url}/{name}?inbody=true", data=b"other", auth=AUTH, timeout=10)
    assert again.status_code == 409
    over = requests.put(f"{site.files_url}/{name}?inbody=true&overwrite=true", data=b"other", auth=AUTH, timeout=10)
    assert over.status_code == 200
    assert (site.resource_dir / name).read_bytes() == b"other"
    assert next(e for e in _entries(_catalog(site.resource_dir)) if e.get("URI") == name).get("digest") == \
        hashlib.md5(b"other").hexdigest()
    assert requests.delete(f"{site.files_url}/{name}", auth=AUTH, timeout=10).status_code == 200
    assert not (site.resource_dir / name).exists()
    assert name not in {e.get("URI") for e in _entries(_catalog(site.resource_dir))}
    assert len(_entries(_catalog(site.resource_dir))) == 65
    assert requests.delete(f"{site.files_url}/{name}", auth=AUTH, timeout=10).status_code == 404


def test_resources_are_created_and_xnatpy_uploads_and_downloads(site: Site) -> None:
    session2 = site.standin.experiment_id(PROJECT, "SESS2")
    base = f"/data/experiments/{session2}/resources/RESOURCE_SURVEY_BACKUP"
    assert requests.put(site.url + base, params={"format": "MISC"}, auth=AUTH, timeout=10).status_code == 200
    assert requests.put(site.url + base, auth=AUTH, timeout=10).status_code == 409
    folder = site.archive / PROJECT / "arc001" / "SESS2" / "RESOURCES" / "RESOURCE_SURVEY_BACKUP"
    assert _entries(_catalog(folder)) == []
    with xnat.connect(site.url, user="admin", password="secret", loglevel="ERROR") as session:
        session.upload_string(f"{base}/files/manifest.json", b'{"a": 1}', query={"inbody": "true"})
        listing = session.get_json(f"{base}/files")["ResultSet"]["Result"]
        assert [(r["Name"], r["Size"]) for r in listing] == [("manifest.json", "8")]
        target = io.BytesIO()
        session.download_stream(listing[0]["URI"], target, expected_md5_digest=listing[0]["digest"])
        assert target.getvalue() == b'{"a": 1}'
        scan_resource = session.experiments[session2].scans["1"].create_resource("EXTRA", format="MISC")
        assert scan_resource.label == "EXTRA"
    rows = site.json(f"/data/experiments/{session2}/resources")["ResultSet"]["Result"]
    assert [(r["label"], r["format"], r["file_count"]) for r in rows] == [("RESOURCE_SURVEY_BACKUP", "MISC", "1")]


def test_catalog_refresh_has_xnat_semantics(site: Site) -> None:
    catalog = _catalog(site.resource_dir)
    gone = sorted(site.expected_names)[0]
    (site.resource_dir / gone).unlink()
    (site.resource_dir / "untracked.dcm").write_bytes(b"not in the catalog")
    archive_uri = (f"/archive/projects/{PROJECT}/subjects/{SESSION}/experiments/{site.experiment}"
                   "/scans/5/resources/DICOM")
    refresh = f"{site.url}/data/services/refresh/catalog"
    assert requests.post(refresh, params={"resource": archive_uri}, auth=AUTH, timeout=10).status_code == 200
    uris = [e.get("URI") for e in _entries(catalog)]
    assert gone in uris and "untracked.dcm" not in uris  # no options: nothing changes
    answer = requests.post(refresh, params={"resource": archive_uri, "options": "populateStats,checksum,delete,append"},
                           auth=AUTH, timeout=10)
    assert answer.status_code == 200
    entries = {e.get("URI"): e for e in _entries(catalog)}
    assert gone not in entries
    added = entries["untracked.dcm"]
    assert added.get(XSI_TYPE) is None and added.get("digest") == hashlib.md5(b"not in the catalog").hexdigest()
    assert sum(1 for e in entries.values() if e.get(XSI_TYPE) == "cat:dcmEntry") == 64
    bad = requests.post(refresh, params={"resource": "/archive/experiments/NOPE"}, auth=AUTH, timeout=10)
    assert bad.status_code == 404


# --- the resource survey and mitigation API ------------------------------------------------------------


def test_survey_and_mitigation_reproduce_xnats_conformance_result(site: Site) -> None:
    rid = site.resource_id
    api = f"{site.url}/xapi/resources"
    assert site.get(f"/xapi/resources/survey/resource/{rid}").status_code == 404
    queued = requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10)
    assert queued.status_code == 200
    request_id = queued.json()
    assert isinstance(request_id, int)
    seen = _poll(site, f"/xapi/resources/survey/resource/{rid}/status", until=TERMINAL)
    assert seen[-1] == "DIVERGENT"
    order = ["CREATED", "QUEUED_FOR_SURVEY", "SURVEYING", "DIVERGENT"]
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    report = site.json(f"/xapi/resources/survey/resource/{rid}/report")
    assert report["resourceSurveyRequestId"] == request_id
    assert (report["totalEntries"], report["totalUids"], report["totalBadFiles"], report["totalDuplicates"],
            report["totalMismatchedFiles"]) == (65, 60, 0, 5, 26)
    assert "badFiles" not in report  # XNAT's NON_EMPTY: empty collections are left out
    assert all(Path(p).is_absolute() and Path(p).parent == site.resource_dir for p in report["mismatchedFiles"])
    assert site.json(f"/xapi/resources/survey/request/{request_id}/report") == report
    request_json = site.json(f"/xapi/resources/survey/request/{request_id}")
    assert request_json | {"rsnStatus": "DIVERGENT", "resourceId": rid, "experimentId": site.experiment,
                           "scanId": 5, "resourceLabel": "DICOM", "projectId": PROJECT} == request_json
    assert requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10).status_code == 409  # still open
    assert site.get(f"/xapi/resources/mitigate/resource/{rid}/report").status_code == 409

    assert requests.post(f"{api}/mitigate/resource/{rid}", auth=AUTH, timeout=10).json() == request_id
    seen = _poll(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)
    assert seen[-1] == "CONFORMING", seen
    mitigation = site.json(f"/xapi/resources/mitigate/resource/{rid}/report")
    totals = (mitigation["totalMovedFiles"], mitigation["totalRemovedFiles"], mitigation["totalFileErrors"])
    assert totals == (31, 36, 0)
    cache = Path(mitigation["cachePath"])
    assert sorted(p.name for p in cache.iterdir() if p.suffix == ".dcm") == sorted(
        Path(p).name for p in mitigation["removedFiles"])
    assert all(Path(b).is_file() for b in mitigation["removedFiles"].values())

    entries = _entries(_catalog(site.resource_dir))
    assert len(entries) == 60
    assert {e.get("URI") for e in entries} == set(site.expected_names)
    assert {e.get("ID") for e in entries} == set(site.expected_names)
    assert all(e.get(XSI_TYPE) == "cat:dcmEntry" and e.get("UID") and e.get("instanceNumber") for e in entries)
    on_disk = {p.name for p in site.resource_dir.iterdir() if not p.name.endswith("_catalog.xml")}
    assert on_disk == set(site.expected_names)

    again = requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10).json()
    assert again != request_id
    assert _poll(site, f"/xapi/resources/survey/request/{again}/status", until=TERMINAL)[-1] == "CONFORMING"
    assert site.json(f"/xapi/resources/survey/request/{again}/report")["totalMismatchedFiles"] == 0


def test_project_level_survey_and_cancel(site: Site) -> None:
    api = f"{site.url}/xapi/resources"
    ids = requests.post(f"{api}/survey/project/{PROJECT}", auth=AUTH, timeout=10).json()
    assert len(ids) == 1
    _poll(site, f"/xapi/resources/survey/request/{ids[0]}/status", until=TERMINAL)
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
    assert requests.get(f"{standin.url}/data/version", auth=AUTH, timeout=10).text == "1.8.7"
    assert requests.head(f"{standin.url}/data/version", auth=AUTH, timeout=10).status_code == 200
    build = requests.get(f"{standin.url}/xapi/siteConfig/buildInfo", auth=AUTH, timeout=10).json()
    assert build["version"] == "1.8.7"
    rid = standin.resource_id(PROJECT, SESSION, "5", "DICOM")
    answer = requests.post(f"{standin.url}/xapi/resources/survey/resource/{rid}", auth=AUTH, timeout=10)
    assert answer.status_code == 404


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
    assert "partial.bin" not in {e.get("URI") for e in _entries(_catalog(site.resource_dir))}
    assert requests.put(url, data=data, auth=AUTH, timeout=5).status_code == 409  # the leftover is in the way
    assert requests.put(url + "&overwrite=true", data=data, auth=AUTH, timeout=5).status_code == 200
    assert (site.resource_dir / "partial.bin").read_bytes() == data
    assert [f.kind for f in site.standin.faults.fired] == ["partial_upload"]


def test_a_mitigation_can_end_in_error(site: Site) -> None:
    rid = site.resource_id
    api = f"{site.url}/xapi/resources"
    request_id = requests.post(f"{api}/survey/resource/{rid}", auth=AUTH, timeout=10).json()
    assert _poll(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "DIVERGENT"
    catalog_before = _catalog(site.resource_dir).read_bytes()
    site.standin.faults.set("mitigate", "mitigation_error", times=1)
    assert requests.post(f"{api}/mitigate/resource/{rid}", auth=AUTH, timeout=10).status_code == 200
    assert _poll(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "ERROR"
    assert site.get(f"/xapi/resources/mitigate/resource/{rid}/report").status_code == 409  # as XNAT: not CONFORMING
    report = site.json(f"/xapi/resources/survey/request/{request_id}")["mitigationReport"]
    assert report["totalFileErrors"] > 0 and report["moveErrors"] and report["catalogWriteError"]
    assert _catalog(site.resource_dir).read_bytes() == catalog_before  # files moved, catalog not rewritten


def test_the_log_never_holds_credentials(site: Site) -> None:
    alias, secret = site.standin.issue_token("admin")
    site.get("/data/projects", auth=(alias, secret))
    requests.put(f"{site.url}/data/services/auth", data={"username": "admin", "password": "secret"}, timeout=10)
    site.get("/data/projects", params={"password": "secret", "token": secret})
    text = repr(site.standin.requests_log)
    assert "secret" not in text and secret not in text and alias not in text
    assert "JSESSIONID" not in text


def test_concurrent_uploads_keep_the_catalog_whole(site: Site) -> None:
    def upload(i: int) -> None:
        answer = requests.put(f"{site.files_url}/c{i}.txt?inbody=true", data=str(i).encode(), auth=AUTH, timeout=10)
        assert answer.status_code == 200

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uris = {e.get("URI") for e in _entries(_catalog(site.resource_dir))}
    assert {f"c{i}.txt" for i in range(12)} <= uris
    assert len(uris) == 77


def test_a_catalogued_file_that_is_not_dicom_is_a_bad_file_left_alone(site: Site) -> None:
    victim = site.resource_dir / sorted(site.expected_names)[0]
    victim.write_bytes(b"not DICOM at all\n" * 16)
    rid = site.resource_id
    request_id = requests.post(f"{site.url}/xapi/resources/survey/resource/{rid}", auth=AUTH, timeout=10).json()
    assert _poll(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "DIVERGENT"
    report = site.json(f"/xapi/resources/survey/request/{request_id}/report")
    assert report["badFiles"] == [str(victim)]
    assert report["totalUids"] == 59
    requests.post(f"{site.url}/xapi/resources/mitigate/request/{request_id}", auth=AUTH, timeout=10)
    assert _poll(site, f"/xapi/resources/survey/request/{request_id}/status", until=TERMINAL)[-1] == "CONFORMING"
    assert victim.read_bytes() == b"not DICOM at all\n" * 16
    assert victim.name in {e.get("URI") for e in _entries(_catalog(site.resource_dir))}
