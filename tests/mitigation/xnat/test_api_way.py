"""Mitigation with XNAT's own survey and mitigation API (the `api` way): in place, confirmed by a re-survey,
refused when XNAT's survey disagrees with ours, resumed by a relaunch.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.helpers.xnat import (
    PROJECT,
    SESSION,
    Site,
    assert_end_state,
    assert_nothing_lost,
    attribute,
    catalog_entries,
    clean,
    mitigate,
    no_secret_in,
    requires_conformance,
    run_cli,
    tree,
    xnat_env,
)

standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
run_standin = standin_package.run_standin
pytestmark = requires_conformance


def test_api_way_mitigates_in_place_and_confirms(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    run = mitigate(site, env)
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 0, run.text[-3000:]

    assert_end_state(site)
    entries = catalog_entries(site.resource)
    assert len(entries) == 60
    assert all('xsi:type="cat:dcmEntry"' in e and attribute(e, "UID") for e in entries)

    report = run.report()
    assert report["executor"] == "xnat"
    assert report["xnatServer"]["way"] == "api" and report["xnatServer"]["mitigationApi"] is True
    (resource,) = report["resources"]
    assert resource["way"] == "api" and "own resource survey and mitigation API" in resource["wayReason"]
    assert resource["status"] == "MITIGATED"
    assert resource["xnatSurvey"]["verdict"] == "agree"
    assert resource["resurveyStatus"] == "CONFORMING" == resource["requestStatus"]
    xnat = resource["xnat"]  # XNAT's own report, fetched, with paths relative to ROOT
    assert xnat["resourceSurveyRequestId"] == resource["xnatRequestId"] > 0
    assert (xnat["totalMovedFiles"], xnat["totalRemovedFiles"], xnat["totalFileErrors"]) == (31, 36, 0)
    assert all(p.startswith("SCANS/5/DICOM/") for p in xnat["movedFiles"])
    assert {v.rsplit("/", 1)[-1] for v in xnat["movedFiles"].values()} <= site.expected
    assert all(a["catalogEntryDowngraded"] is False for a in resource["actions"] if a["outcome"] == "DONE"
               and a["action"] != "RETAIN")
    assert (run.out / "resurvey" / "survey-report.json").is_file()
    assert resource["catalogEntries"] == {"downgraded": 0, "dcmEntries": 60, "plainEntries": 0}
    no_secret_in(run.out, env["XNAT_PASS"], env["XNAT_USER"])

    calls = {(r.method, re.sub(r"/\d+", "/N", r.path)) for r in standin.requests_log}
    assert ("POST", "/xapi/resources/survey/resource/N") in calls
    assert ("POST", "/xapi/resources/mitigate/request/N") in calls
    assert ("GET", "/xapi/resources/mitigate/request/N/report") in calls
    assert not any(r.method in ("PUT", "DELETE") and "/files/" in r.path for r in standin.requests_log)

    # a relaunch finds nothing to do
    before = tree(site.session)
    again = mitigate(site, env, out="out2")
    clean(again)
    assert again.returncode == 0 and tree(site.session) == before

    # restore cannot undo XNAT's own mitigation: it says where XNAT keeps the originals
    restored = run_cli("restore", "--report", run.out / "mitigation-report.json", env=env)
    clean(restored)
    assert restored.returncode == 1
    restore_report = json.loads((run.out / "restore-report.json").read_text("utf-8"))
    reasons = {f.get("reason", "") for r in restore_report["resources"] for f in r["files"]}
    assert any("XNAT's own mitigation API" in r for r in reasons)


def test_project_mount_finds_sessions_by_label(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    output = site.tmp / "out"
    result = run_cli("mitigate", site.archive / PROJECT / "arc001", "--output", output, "--executor", "xnat",
                     f"--xnat-project={PROJECT}", "--jobs", "1", env=env)
    clean(result)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_end_state(site)
    (resource,) = json.loads((output / "mitigation-report.json").read_text())["resources"]
    assert resource["xnatTarget"]["experimentId"] == standin.experiment_id(PROJECT, SESSION)


def test_another_naming_template_at_xnat_is_refused(site: Site) -> None:
    with run_standin(site.archive, template="${SOPInstanceUID}") as server:
        env = xnat_env(server)
        before = tree(site.session)
        run = mitigate(site, env)
        clean(run)
        assert run.returncode == 1
        (resource,) = run.report()["resources"]
        assert resource["status"] == "FAILED" and resource["xnatSurvey"]["verdict"] == "template"
        assert "dicomFileNameTemplate" in resource["statusReason"]
        assert tree(site.session) == before
        # our own survey request is not left open
        assert server.requests_log and any(r.method == "DELETE" and "/survey/request/" in r.path
                                           for r in server.requests_log)


def test_a_resource_changed_since_the_survey_is_refused(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    out = site.tmp / "first"
    surveyed = run_cli("survey", site.mount, "--output", out, "--jobs", "1", env={})
    assert surveyed.returncode == 0
    (site.resource / "late-arrival.dcm").write_bytes(b"x")
    before = tree(site.session)
    run = mitigate(site, env, "--report", str(out / "survey-report.json"))
    clean(run)
    assert run.returncode == 1
    (resource,) = run.report()["resources"]
    assert resource["status"] == "STALE" and "added since the survey" in resource["statusReason"]
    assert tree(site.session) == before


def test_bounded_wait_then_a_relaunch_collects_xnats_work(site: Site) -> None:
    with run_standin(site.archive, mitigation_delay=0.4) as server:
        env = xnat_env(server)
        first = mitigate(site, env, "--xnat-timeout=1")
        clean(first)
        assert first.returncode == 1
        (resource,) = first.report()["resources"]
        assert resource["status"] in ("FAILED", "PARTIAL")
        assert "within 1 s" in resource["statusReason"]
        # XNAT carries on; a relaunch picks up from XNAT's state and waits for it
        second = mitigate(site, env, "--xnat-timeout=120", out="out2")
        clean(second)
        assert second.returncode == 0, second.text[-3000:]
        assert_end_state(site)


def test_mitigation_failing_inside_xnat_is_reported_per_file(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    standin.faults.set("mitigate", "mitigation_error", times=1)
    run = mitigate(site, env)
    clean(run)
    assert run.returncode == 1
    (resource,) = run.report()["resources"]
    assert resource["status"] in ("PARTIAL", "FAILED")
    assert "ERROR" in resource["statusReason"]
    xnat = resource["xnat"]
    assert xnat["totalFileErrors"] > 0 or xnat["catalogWriteError"]
    assert any(a["outcome"] == "FAILED" for a in resource["actions"]) or xnat["catalogWriteError"]
    assert_nothing_lost(site, standin.cache_root)
