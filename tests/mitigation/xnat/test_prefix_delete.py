"""XNAT deletes by name prefix: a DELETE of `.../files/IM1` also deletes `IM10` (xnat-web through 1.8.10.1,
`FileList.handleDelete` -> `CatalogUtils.findCatEntriesWithinPath`: `key.equals(path) || key.startsWith(path)`).

The stand-in imitates it (tests/xnat_standin/catalogs.py `files_deleted_by`, on while `files_api_version` is
1.8.10.1 or older). The file-operations way and the restore must never delete a name another listed file
begins with: such deletes wait until the other file is gone, or are refused per file with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from container_app.demo import synth
from container_app.demo.synth import CopySpec, ExtraFile, ExtraKind, FileSpec
from tests.helpers.survey import STUDY
from tests.helpers.xnat import (
    PROJECT,
    SESSION,
    Site,
    assert_nothing_lost,
    attribute,
    catalog_entries,
    clean,
    files,
    mitigate,
    run_cli,
    xnat_env,
)

EXPERIMENT = "Test_E00001"
FILES_URL = f"/data/experiments/{EXPERIMENT}/scans/5/resources/DICOM/files"
INSTANCES = synth.series_instances(STUDY, 5, 10)  # instance numbers 1 to 10
FIRST, TENTH = INSTANCES[0], INSTANCES[9]


def synth_site(tmp_path: Path, dicom_files: list[FileSpec], extras: list[ExtraFile]) -> Site:
    """A session SESS of project Test whose scan 5 DICOM resource holds `dicom_files` and `extras`, as make_site
    lays out the conformance scan; `expected` is left empty (each test says what it expects)."""
    archive = tmp_path / "archive"
    session = archive / PROJECT / "arc001" / SESSION
    resource = session / "SCANS" / "5" / "DICOM"
    synth.build_resource(resource, dicom_files, extras=extras, project=PROJECT, scan_id="5")
    mount = tmp_path / "input"
    mount.symlink_to(session, target_is_directory=True)
    return Site(tmp_path, archive, session, resource, mount, frozenset(), files(resource))


@pytest.fixture
def both_dicom(tmp_path: Path) -> Site:
    """`IM1` and `IM10`, both misnamed DICOM files: renaming IM1 first would take IM10 with it."""
    return synth_site(tmp_path, [FileSpec(instance=FIRST, name="IM1"), FileSpec(instance=TENTH, name="IM10")], [])


@pytest.fixture
def im10_a_duplicate(tmp_path: Path) -> Site:
    """`IM10` an identical copy of `IM1`: one is renamed, the other removed, whichever the delete order needs."""
    return synth_site(tmp_path, [FileSpec(instance=FIRST, name="IM1", copies=(CopySpec(name="IM10"),))], [])


@pytest.fixture
def im10_not_dicom(tmp_path: Path) -> Site:
    """`IM1` a misnamed DICOM file, `IM10` a text file the mitigation leaves alone: IM1 can never be deleted."""
    return synth_site(tmp_path, [FileSpec(instance=FIRST, name="IM1")],
                      [ExtraFile(name="IM10", kind=ExtraKind.TEXT, content=b"not DICOM: notes of scan 5\n")])


@pytest.fixture
def copy_name_is_a_prefix(tmp_path: Path) -> Site:
    """`IM1` misnamed, and a text file whose name begins with IM1's new name: the restore cannot delete the copy."""
    return synth_site(tmp_path, [FileSpec(instance=FIRST, name="IM1")],
                      [ExtraFile(name=synth.xnat_name(FIRST) + ".txt", kind=ExtraKind.TEXT, content=b"notes\n")])


def serve(site: Site) -> Any:
    """The stand-in without XNAT's mitigation API (before 1.8.7), deleting by prefix as 1.8.10.1 does."""
    standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
    return standin_package.run_standin(site.archive, mitigation_api=False)


@pytest.fixture
def old_xnat(request: pytest.FixtureRequest) -> Iterator[tuple[Site, Any]]:
    site: Site = request.getfixturevalue(request.param)
    with serve(site) as server:
        assert server.files_api_version == "1.8.10.1"  # the default: deletes by prefix
        yield site, server


def deletes(server: Any) -> list[str]:
    """The names of the files the run deleted in the scan resource (as the stand-in logged them)."""
    return [r.path.rsplit("/files/", 1)[1] for r in server.requests_log
            if r.method == "DELETE" and r.path.startswith(FILES_URL + "/")]


def restore(run_out: Path, env: dict[str, str]) -> dict[str, Any]:
    restored = run_cli("restore", "--report", run_out / "mitigation-report.json", env=env)
    clean(restored, env["XNAT_PASS"])
    assert restored.returncode == 0, restored.stdout[-3000:]
    return json.loads((run_out / "restore-report.json").read_text("utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("old_xnat", ["both_dicom"], indirect=True)
def test_the_standin_deletes_by_prefix(old_xnat: tuple[Site, Any]) -> None:
    """Without this, the tests below could not fail: a plain DELETE of IM1 takes IM10 with it."""
    site, server = old_xnat
    env = xnat_env(server)
    answer = requests.delete(server.url + FILES_URL + "/IM1", auth=(env["XNAT_USER"], env["XNAT_PASS"]), timeout=30)
    assert answer.status_code == 200
    assert files(site.resource) == {}
    assert catalog_entries(site.resource) == []


@pytest.mark.parametrize("old_xnat", ["both_dicom"], indirect=True)
def test_im1_waits_for_im10_and_restore_takes_nothing_along(old_xnat: tuple[Site, Any]) -> None:
    site, server = old_xnat
    env = xnat_env(server)
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 0, run.text[-3000:]
    assert_nothing_lost(site)
    expected = {synth.xnat_name(FIRST), synth.xnat_name(TENTH)}
    assert set(files(site.resource)) == expected
    assert sorted(attribute(e, "URI") or "" for e in catalog_entries(site.resource)) == sorted(expected)
    # the renamed files hold the originals' bytes
    assert sorted(files(site.resource).values()) == sorted(site.originals.values())
    (resource,) = run.report()["resources"]
    assert resource["status"] == "MITIGATED" and resource["way"] == "file-operations"
    assert all(a["outcome"] == "DONE" for a in resource["actions"])
    # IM1 was deleted only once IM10 was gone, each once, by its own name
    assert deletes(server) == ["IM10", "IM1"]

    server.clear_log()
    restored = restore(run.out, env)
    assert restored["totals"]["RESTORED"] == 2 and restored["totals"]["REFUSED"] == 0
    assert files(site.resource) == site.originals
    assert sorted(deletes(server)) == sorted(expected)  # the renamed copies, nothing by an original's name


@pytest.mark.parametrize("old_xnat", ["im10_not_dicom"], indirect=True)
def test_im1_is_refused_while_im10_stays(old_xnat: tuple[Site, Any]) -> None:
    site, server = old_xnat
    env = xnat_env(server)
    before = dict(site.originals)
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode != 0  # a file could not be mitigated
    assert files(site.resource) == before  # IM1 left as it is, IM10 byte-identical, no renamed copy
    assert sorted(attribute(e, "URI") or "" for e in catalog_entries(site.resource)) == ["IM1", "IM10"]
    assert_nothing_lost(site)
    assert deletes(server) == []
    assert not any(r.method in ("PUT", "POST") and r.path.startswith(FILES_URL) for r in server.requests_log)
    (resource,) = run.report()["resources"]
    assert resource["status"] != "MITIGATED"
    im1 = [a for a in resource["actions"] if a["path"].endswith("/IM1") or a["path"] == "IM1"]
    assert len(im1) == 1 and im1[0]["outcome"] == "FAILED"
    assert "prefix" in im1[0]["error"] and "1 other file(s)" in im1[0]["error"]
    assert "IM10" not in im1[0]["error"]  # the reason counts files, it names none
    assert not any(a["path"].endswith("IM10") for a in resource["actions"])  # the mitigation never planned IM10
    # its verified backup is in RESOURCE_SURVEY_BACKUP all the same
    assert site.originals["IM1"] in files(site.backup)

    restored = restore(run.out, env)
    assert restored["totals"]["RESTORED"] == 0 and restored["totals"]["REFUSED"] == 0
    assert files(site.resource) == before


@pytest.mark.parametrize("old_xnat", ["copy_name_is_a_prefix"], indirect=True)
def test_restore_leaves_the_copy_whose_delete_would_take_another_file(old_xnat: tuple[Site, Any]) -> None:
    site, server = old_xnat
    env = xnat_env(server)
    new_name, notes = synth.xnat_name(FIRST), synth.xnat_name(FIRST) + ".txt"
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    (resource,) = run.report()["resources"]
    assert [a["outcome"] for a in resource["actions"]] == ["DONE"], run.text[-3000:]
    assert resource["status"] == "PARTIAL" and run.returncode == 1  # the text file keeps the resource DIVERGENT
    assert set(files(site.resource)) == {new_name, notes}
    assert_nothing_lost(site)

    server.clear_log()
    restored = restore(run.out, env)
    assert restored["totals"]["RESTORED"] == 1
    (document,) = restored["resources"]
    (im1,) = [f for f in document["files"] if f["outcome"] == "RESTORED"]
    assert "left in place" in im1["reason"] and "prefix" in im1["reason"]
    now = files(site.resource)
    assert now["IM1"] == site.originals["IM1"] and now[notes] == site.originals[notes]  # nothing taken along
    assert now[new_name] == site.originals["IM1"]  # the copy stays, for an administrator
    assert deletes(server) == []


def test_a_later_xnat_deleting_exact_names_is_still_not_trusted(tmp_path: Path) -> None:
    """No release is known to have fixed the prefix match: the check does not depend on XNAT's version."""
    site = synth_site(tmp_path, [FileSpec(instance=FIRST, name="IM1")],
                      [ExtraFile(name="IM10", kind=ExtraKind.TEXT, content=b"notes\n")])
    with serve(site) as server:
        server.files_api_version = "1.9.0"  # a hypothetical fixed XNAT (catalogs.deletes_by_prefix)
        env = xnat_env(server)
        run = mitigate(site, env, "--rest-file-operations=allow")
        clean(run, env["XNAT_PASS"])
        assert files(site.resource) == site.originals and deletes(server) == []


@pytest.mark.parametrize("old_xnat", ["im10_a_duplicate"], indirect=True)
def test_a_duplicate_im10_is_removed_without_taking_along_or_being_taken(old_xnat: tuple[Site, Any]) -> None:
    site, server = old_xnat
    env = xnat_env(server)
    assert set(site.originals) == {"IM1", "IM10"} and len(set(site.originals.values())) == 1
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 0, run.text[-3000:]
    assert files(site.resource) == {synth.xnat_name(FIRST): site.originals["IM1"]}
    assert_nothing_lost(site)
    (resource,) = run.report()["resources"]
    assert sorted(a["action"] for a in resource["actions"]) == ["REMOVE", "RENAME"]
    assert deletes(server) == ["IM10", "IM1"]  # never IM1 while IM10 was listed

    restored = restore(run.out, env)
    assert restored["totals"]["REFUSED"] == 0
    assert files(site.resource) == site.originals
