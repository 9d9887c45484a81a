"""The stand-in's authentication: xnatpy connects (password or alias token), bad credentials, roles, the log.

Tests of the stand-in itself (tests/xnat_standin/), over real HTTP, with `requests` and with `xnat.connect`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
import xnat
import xnat.exceptions

from tests.helpers.standin import AUTH, PROJECT, SESSION, Site, build_archive, md5_of
from tests.xnat_standin import run_standin

# --- connecting, credentials and rights -----------------------------------------------------------


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
        assert one.digest == md5_of(site.resource_dir / one.path)
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
    build_archive(archive, conformance)
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


def test_the_log_never_holds_credentials(site: Site) -> None:
    alias, secret = site.standin.issue_token("admin")
    site.get("/data/projects", auth=(alias, secret))
    requests.put(f"{site.url}/data/services/auth", data={"username": "admin", "password": "secret"}, timeout=10)
    site.get("/data/projects", params={"password": "secret", "token": secret})
    text = repr(site.standin.requests_log)
    assert "secret" not in text and secret not in text and alias not in text
    assert "JSESSIONID" not in text

