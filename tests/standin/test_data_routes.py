"""The stand-in's /data routes: XNAT's listing shapes, uploads and deletes, new resources, catalog refresh.

Tests of the stand-in itself (tests/xnat_standin/), over real HTTP: it serves XNAT's shapes and updates
its catalogs as XNAT does.
"""

from __future__ import annotations

import hashlib
import io
import threading

import requests
import xnat

from tests.helpers.standin import AUTH, PROJECT, SESSION, XSI_TYPE, Site, catalog_entries, catalog_path, md5_of

# --- listings and changes -------------------------------------------------------------------------


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
    assert first["digest"] == md5_of(path)
    assert first["file_format"] == "DICOM"
    assert first["URI"] == f"/data/experiments/{site.experiment}/scans/5/resources/{site.resource_id}/files/" \
                           f"{first['Name']}"
    download = site.get(first["URI"])
    assert download.content == path.read_bytes()


def test_upload_adds_a_plain_entry_and_delete_removes_it(site: Site) -> None:
    name = "uploaded.dcm"
    data = (site.resource_dir / sorted(site.expected_names)[0]).read_bytes()
    put = requests.put(f"{site.files_url}/{name}", params={"inbody": "true", "format": "DICOM"}, data=data,
                       auth=AUTH, timeout=10)
    assert put.status_code == 200, put.text
    entry = next(e for e in catalog_entries(catalog_path(site.resource_dir)) if e.get("URI") == name)
    assert entry.get(XSI_TYPE) is None  # a plain cat:entry, as XNAT makes for REST uploads
    assert entry.get("UID") is None and entry.get("instanceNumber") is None
    assert entry.get("digest") == hashlib.md5(data).hexdigest()
    assert (site.resource_dir / name).read_bytes() == data
    # The name is taken: as XNAT (FileList.handlePut), 200 with the duplicates and nothing written; never 409.
    again = requests.put(f"{site.files_url}/{name}?inbody=true", data=b"other", auth=AUTH, timeout=10)
    assert again.status_code == 200 and again.json() == {"duplicates": [name]}
    assert again.headers["Content-Type"].startswith("text/html")
    assert (site.resource_dir / name).read_bytes() == data
    over = requests.put(f"{site.files_url}/{name}?inbody=true&overwrite=true", data=b"other", auth=AUTH, timeout=10)
    assert over.status_code == 200
    assert (site.resource_dir / name).read_bytes() == b"other"
    assert next(e for e in catalog_entries(catalog_path(site.resource_dir)) if e.get("URI") == name).get("digest") == \
        hashlib.md5(b"other").hexdigest()
    assert requests.delete(f"{site.files_url}/{name}", auth=AUTH, timeout=10).status_code == 200
    assert not (site.resource_dir / name).exists()
    assert name not in {e.get("URI") for e in catalog_entries(catalog_path(site.resource_dir))}
    assert len(catalog_entries(catalog_path(site.resource_dir))) == 65
    assert requests.delete(f"{site.files_url}/{name}", auth=AUTH, timeout=10).status_code == 404


def test_resources_are_created_and_xnatpy_uploads_and_downloads(site: Site) -> None:
    session2 = site.standin.experiment_id(PROJECT, "SESS2")
    base = f"/data/experiments/{session2}/resources/RESOURCE_SURVEY_BACKUP"
    assert requests.put(site.url + base, params={"format": "MISC"}, auth=AUTH, timeout=10).status_code == 200
    assert requests.put(site.url + base, auth=AUTH, timeout=10).status_code == 409
    folder = site.archive / PROJECT / "arc001" / "SESS2" / "RESOURCES" / "RESOURCE_SURVEY_BACKUP"
    assert catalog_entries(catalog_path(folder)) == []
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
    catalog = catalog_path(site.resource_dir)
    gone = sorted(site.expected_names)[0]
    (site.resource_dir / gone).unlink()
    (site.resource_dir / "untracked.dcm").write_bytes(b"not in the catalog")
    archive_uri = (f"/archive/projects/{PROJECT}/subjects/{SESSION}/experiments/{site.experiment}"
                   "/scans/5/resources/DICOM")
    refresh = f"{site.url}/data/services/refresh/catalog"
    assert requests.post(refresh, params={"resource": archive_uri}, auth=AUTH, timeout=10).status_code == 200
    uris = [e.get("URI") for e in catalog_entries(catalog)]
    assert gone in uris and "untracked.dcm" not in uris  # no options: nothing changes
    answer = requests.post(refresh, params={"resource": archive_uri, "options": "populateStats,checksum,delete,append"},
                           auth=AUTH, timeout=10)
    assert answer.status_code == 200
    entries = {e.get("URI"): e for e in catalog_entries(catalog)}
    assert gone not in entries
    added = entries["untracked.dcm"]
    assert added.get(XSI_TYPE) is None and added.get("digest") == hashlib.md5(b"not in the catalog").hexdigest()
    assert sum(1 for e in entries.values() if e.get(XSI_TYPE) == "cat:dcmEntry") == 64
    bad = requests.post(refresh, params={"resource": "/archive/experiments/NOPE"}, auth=AUTH, timeout=10)
    assert bad.status_code == 404


def test_concurrent_uploads_keep_the_catalog_whole(site: Site) -> None:
    def upload(i: int) -> None:
        answer = requests.put(f"{site.files_url}/c{i}.txt?inbody=true", data=str(i).encode(), auth=AUTH, timeout=10)
        assert answer.status_code == 200

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    uris = {e.get("URI") for e in catalog_entries(catalog_path(site.resource_dir))}
    assert {f"c{i}.txt" for i in range(12)} <= uris
    assert len(uris) == 77

