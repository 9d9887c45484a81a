"""Issue 15 inside XNAT: XNAT's own mitigation keeps the newest copy of a duplicate and never looks inside it, so a
resource where that copy is less de-identified than another is not handed to XNAT's mitigation API: refused with
the keywords to look at, or done by file operations (which keep the more de-identified copy) where allowed.

The stand-in has XNAT's survey and mitigation API (1.8.7+); the pair is the demo's commented re-send: the newer
copy carries ImageComments (PS3.15 table E.1-1), its older twin does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from container_app.demo import synth
from container_app.demo.synth import CopyKind, CopySpec, FileSpec
from tests.helpers.survey import STUDY
from tests.helpers.xnat import (
    PROJECT,
    SESSION,
    Site,
    assert_nothing_lost,
    clean,
    files,
    mitigate,
    xnat_env,
)

INSTANCE = synth.series_instances(STUDY, 5, 1)[0]
SENT_AGAIN = "IM1-resent"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    """Scan 5: `IM1` (older, no comment) and its re-send `IM1-resent` (newer, with ImageComments)."""
    archive = tmp_path / "archive"
    session = archive / PROJECT / "arc001" / SESSION
    resource = session / "SCANS" / "5" / "DICOM"
    synth.build_resource(resource, [FileSpec(instance=INSTANCE, name="IM1",
                                             copies=(CopySpec(name=SENT_AGAIN, kind=CopyKind.COMMENTED),))],
                         project=PROJECT, scan_id="5")
    mount = tmp_path / "input"
    mount.symlink_to(session, target_is_directory=True)
    assert (resource / SENT_AGAIN).stat().st_mtime_ns > (resource / "IM1").stat().st_mtime_ns
    return Site(tmp_path, archive, session, resource, mount, frozenset(), files(resource))


@pytest.fixture
def server(site: Site) -> Iterator[Any]:
    standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
    with standin_package.run_standin(site.archive) as standin:  # with XNAT's mitigation API
        yield standin


def test_not_handed_to_xnats_mitigation_when_it_would_keep_the_less_deidentified(site: Site, server: Any) -> None:
    env = xnat_env(server)
    run = mitigate(site, env)
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 1, run.text[-3000:]
    assert files(site.resource) == site.originals  # nothing changed
    (resource,) = run.report()["resources"]
    assert resource["status"] == "FAILED"
    reason = resource["statusReason"]
    assert "not handed to XNAT's mitigation" in reason and "ImageComments" in reason
    assert "re-sent by the scanner" not in run.text  # the comment's value is never written
    assert not any(r.path.startswith("/xapi/resources/mitigate") for r in server.requests_log)
    assert not any(r.method in ("PUT", "POST", "DELETE") and "/files/" in r.path for r in server.requests_log)


def test_with_file_operations_allowed_the_more_deidentified_copy_stays(site: Site, server: Any) -> None:
    env = xnat_env(server)
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 0, run.text[-3000:]
    assert_nothing_lost(site)
    expected = synth.xnat_name(INSTANCE)
    assert files(site.resource) == {expected: site.originals["IM1"]}  # the older, uncommented copy, renamed
    (resource,) = run.report()["resources"]
    assert resource["way"] == "file-operations" and resource["status"] == "MITIGATED"
    kept = [a for a in resource["actions"] if a["reason"].startswith("DUPLICATE_KEPT")]
    assert [a["reason"] for a in kept] == ["DUPLICATE_KEPT:MORE_DEIDENTIFIED"]
    assert not any(r.path.startswith("/xapi/resources/mitigate") for r in server.requests_log)
