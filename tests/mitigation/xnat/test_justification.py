"""Sites and projects that require a justification for every change (site preferences
`requireChangeJustification` with `showChangeJustification`, and `requireEventName`): XDAT's
`PersistentWorkflowUtils.buildOpenWorkflow` refuses a change whose `event_reason` or `event_action` is blank,
and FileList / CatalogResource answer 500 with "Justification required." or "Event name required.".

The stand-in imitates it (tests/xnat_standin/data_routes.py `_require_justification`). Every change this tool
makes carries event_reason, event_action and event_comment (naming the run); a change without one gets a
clear XnatJustificationError, never a traceback nor "XNAT failed".
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest

from container_app.mitigation.xnat.client import XnatClient
from container_app.mitigation.xnat.errors import XnatJustificationError
from container_app.mitigation.xnat.justification import Justification
from tests.helpers.xnat import Site, assert_end_state, clean, files, mitigate, requires_conformance, run_cli, xnat_env

pytestmark = requires_conformance

RESOURCE = "/data/experiments/Test_E00001/scans/5/resources/DICOM"


def changes(server: Any) -> list[Any]:
    """Every request that changes something in XNAT's data (uploads, deletes, resource creation, refresh)."""
    return [r for r in server.requests_log if r.method in ("PUT", "POST", "DELETE") and r.path.startswith("/data/")
            and r.path != "/data/JSESSION" and not r.path.startswith("/data/services/tokens")]


def justification_of(request: Any) -> dict[str, str]:
    query = parse_qs(request.query, keep_blank_values=True)
    return {k: query[k][0] for k in ("event_reason", "event_action", "event_comment") if k in query}


@pytest.fixture
def strict(old_standin: Any) -> Any:
    """The stand-in before 1.8.7 on a site that requires a justification and an event name for every change."""
    old_standin.require_justification = True
    old_standin.require_event_name = True
    return old_standin


def test_file_operations_and_restore_carry_the_run_s_justification(site: Site, strict: Any) -> None:
    env = xnat_env(strict)
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 0, run.text[-3000:]
    assert_end_state(site)
    run_id = run.report()["runId"]
    made = changes(strict)
    assert any(r.method == "DELETE" for r in made) and any(r.method == "PUT" for r in made)
    assert all(r.status == 200 for r in made if r.path.startswith(RESOURCE))
    for request in made:
        sent = justification_of(request)
        assert set(sent) == {"event_reason", "event_action", "event_comment"}, request
        assert sent["event_reason"].strip() and "mitigation" in sent["event_action"]
        assert run_id in sent["event_comment"]

    strict.clear_log()
    restored = run_cli("restore", "--report", run.out / "mitigation-report.json", env=env)
    clean(restored, env["XNAT_PASS"])
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert files(site.resource) == site.originals
    restore_report = json.loads((run.out / "restore-report.json").read_text("utf-8"))
    assert restore_report["totals"]["RESTORED"] == 36 and restore_report["totals"]["REFUSED"] == 0
    made = changes(strict)
    assert any(r.method == "DELETE" for r in made) and any(r.method == "PUT" for r in made)
    for request in made:
        sent = justification_of(request)
        assert "restore" in sent["event_action"] and sent["event_reason"].strip()
        assert run_id in sent["event_comment"]


def _client(server: Any) -> XnatClient:
    env = xnat_env(server)
    return XnatClient.connect(env["XNAT_HOST"], env["XNAT_USER"], env["XNAT_PASS"])


def test_a_change_without_a_justification_is_a_clear_error(site: Site, strict: Any) -> None:
    name = sorted(site.originals)[0]
    with _client(strict) as client:
        assert client.justification is None  # nothing sent until a caller justifies
        with pytest.raises(XnatJustificationError) as refused:
            client.request("DELETE", f"{RESOURCE}/files/{name}", accept=(200, 204))
    message = str(refused.value)
    assert "requires a justification" in message and "none was sent" in message
    assert "(500)" in message  # what XNAT answered (FileList's catch of Exception)
    assert "Nothing was changed" in message
    assert files(site.resource) == site.originals  # and indeed nothing was
    # refused once: the rule of the site is no transient failure to retry
    assert sum(1 for r in strict.requests_log if r.method == "DELETE" and r.path.startswith(RESOURCE)) == 1


def test_an_event_name_is_required_too(site: Site, strict: Any) -> None:
    name = sorted(site.originals)[0]
    with _client(strict) as client:
        client.justify(Justification(reason="a reason", action="", comment="a comment"))
        with pytest.raises(XnatJustificationError) as refused:
            client.request("DELETE", f"{RESOURCE}/files/{name}", accept=(200, 204))
    assert "requires a justification" in str(refused.value) and "although this run sent one" in str(refused.value)
    assert files(site.resource) == site.originals


def test_the_standin_refuses_only_changes(site: Site, strict: Any) -> None:
    """The switch is real (the test above can fail) and reads do not need a justification."""
    with _client(strict) as client:
        listing = client.request("GET", f"{RESOURCE}/files", accept=(200,))
        assert listing.status_code == 200
        client.justify(Justification.for_run("run-1"))
        client.request("DELETE", f"{RESOURCE}/files/{sorted(site.originals)[0]}", accept=(200, 204))
    assert len(files(site.resource)) == len(site.originals) - 1
