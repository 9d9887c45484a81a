"""The OCI image, run as XNAT's Container Service runs it (podman + buildah, no Docker engine).

The image is built once per test session with container/build.sh (tests/e2e/conftest.py). Each run gets
the wrapper's command line resolved and split as XNAT does (container/xnat_launch.py), `/input` mounted
read-only with a realistic session, scan or project archive (catalogs included), `/output` writable, and
XNAT's environment set. Checked: exit codes, the files the output handler would upload (survey report
valid against its schema, CSV), logs as JSON lines, permissions, and that `/input` is untouched.

Skipped, with the reason, when podman and buildah cannot be set up on this machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.container_image import Engine, check_upload, run_as_xnat, snapshot, statuses_by_scan
from tests.helpers.xnat import CONFORMANCE, copy_conformance_scan

pytestmark = pytest.mark.container


def test_session_wrapper(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    before = snapshot(demo.session_root)
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-session", demo.session_root, out)
    assert run.returncode == 0, run.explain()
    report = check_upload(out, run)
    expected = demo.expected_totals()
    assert {key: report["totals"][key] for key in expected} == expected
    assert statuses_by_scan(report) == demo.resource_status
    assert snapshot(demo.session_root) == before  # the read-only mount was not written to


def test_scan_wrapper(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    scan_dir = demo.session_root / "SCANS" / "3"  # XNAT mounts the scan folder: DICOM/<files> + catalog
    before = snapshot(scan_dir)
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-scan", scan_dir, out)
    assert run.returncode == 0, run.explain()
    report = check_upload(out, run)
    assert len(report["resources"]) == 1
    assert report["resources"][0]["requestStatus"] == "DIVERGENT"
    assert report["totals"]["duplicates"] == 4
    assert report["totals"]["filesInDuplicates"] == 8
    assert snapshot(scan_dir) == before


def test_project_wrapper(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    synth = pytest.importorskip("container_app.demo.synth")
    project, second = demo.layout.project, "DEMO_MR2"
    study = synth.InstanceSpec(
        sop_instance_uid=synth.uid(project, second, "x"), study_instance_uid=synth.uid(project, second, "study")
    )
    synth.build_session(
        synth.session_root(demo.root, project, second),
        second,
        project,
        [synth.ScanSpec.conforming("1", synth.series_instances(study, 1, 3))],
    )
    # XNAT's project "directory" is the project's current arc folder: the mount holds <SESSION>/SCANS/...
    project_dir = demo.root / project / "arc001"
    before = snapshot(project_dir)
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-project", project_dir, out)
    assert run.returncode == 0, run.explain()
    report = check_upload(out, run)
    assert report["totals"]["files"] == demo.total_files + 3
    assert len(report["resources"]) == len(demo.resource_status) + 1
    paths = [resource["path"] for resource in report["resources"]]
    for session in (demo.layout.session_label, second):
        assert any(session in path.split("/") for path in paths), (session, paths)
    assert snapshot(project_dir) == before


# ---------------------------------------------------------------------------------------------------
# Exit codes and launch variants


def test_fail_on_divergent_exits_1_after_writing_reports(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-session", demo.session_root, out, {"fail_on_divergent": "true"})
    assert run.returncode == 1, run.explain()
    check_upload(out, run)


def test_invalid_template_is_a_usage_error(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    values = {"template": "${StudyInstanceUID}-${HashSOPInstanceUID}"}  # Hash without With: invalid in XNAT
    run = run_as_xnat(engine, image, "resource-survey-session", demo.session_root, out, values)
    assert run.returncode == 2, run.explain()


def test_works_when_xnat_overrides_the_entrypoint(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    # Through /bin/sh -c a ${...} template would be expanded by the shell, which is why the command sets
    # override-entrypoint false; with the template left blank (the CLI's default) the shell path works too.
    out = tmp_path / "out"
    run = run_as_xnat(
        engine, image, "resource-survey-session", demo.session_root, out, {"template": ""}, override_entrypoint=True
    )
    assert run.returncode == 0, run.explain()
    check_upload(out, run)


def test_runs_as_an_unprivileged_container_user(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    # XNAT's Container Service may be configured to run containers as XNAT's own uid:gid.
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    run = run_as_xnat(
        engine, image, "resource-survey-session", demo.session_root, out, podman_args=["--user", "4321:4321"]
    )
    assert run.returncode == 0, run.explain()
    check_upload(out, run)
    assert {p.stat().st_uid for p in out.iterdir()} == {4321}


def test_mitigate_dry_run_leaves_the_read_only_mount_alone(
    engine: Engine, image: str, demo: Any, tmp_path: Path
) -> None:
    before = snapshot(demo.session_root)
    out = tmp_path / "out"
    run = run_as_xnat(
        engine, image, "resource-survey-session", demo.session_root, out, {"mode": "mitigate", "dry_run": "true"}
    )
    assert run.returncode == 0, run.explain()
    assert (out / "mitigation-plan.json").is_file(), run.explain()
    assert snapshot(demo.session_root) == before


def test_mitigate_inside_xnat_through_the_standin(engine: Engine, image: str, tmp_path: Path) -> None:
    """Mitigate mode as XNAT launches it: the session read-only at /input, changes through XNAT's API.

    The XNAT stand-in (a local HTTP server playing XNAT 1.8.8+ with its mitigation API) serves the
    archive folder that is mounted; the container reaches it over the host's network.
    """
    standin = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
    if CONFORMANCE is None:
        pytest.skip("conformance data not found")
    archive = tmp_path / "archive"
    session = archive / "Test" / "arc001" / "SESS"
    resource = session / "SCANS" / "5" / "DICOM"
    expected = copy_conformance_scan(resource)  # with the files' times XNAT's test result implies
    out = tmp_path / "out"
    with standin.run_standin(archive, mitigation_api=True, users={"admin": "secret"}) as site:
        alias, secret = site.issue_token("admin")
        run = run_as_xnat(
            engine, image, "resource-survey-session", session, out,
            {"mode": "mitigate", "xnat_session": site.experiment_id("Test", "SESS")},
            podman_args=["--network", "host"],
            env={"XNAT_HOST": site.url, "XNAT_USER": alias, "XNAT_PASS": secret},
        )
    assert run.returncode == 0, run.explain()
    assert {p.name for p in resource.iterdir()} - {"scan_5_catalog.xml"} == expected
    catalog = (resource / "scan_5_catalog.xml").read_text("utf-8")
    assert catalog.count('xsi:type="cat:dcmEntry"') == 60
    report = json.loads((out / "mitigation-report.json").read_text("utf-8"))
    (mitigated,) = report["resources"]
    assert report["executor"] == "xnat" and mitigated["way"] == "api", run.explain()
    assert mitigated["xnat"]["totalMovedFiles"] == 31 and mitigated["xnat"]["totalRemovedFiles"] == 36
    assert secret not in run.stdout + run.stderr + json.dumps(report)


