"""report.html after a mitigation: moves, backups and the restore command (from a real mitigation of the
demo), a dry run, a mitigation report missing fields, and the overall status."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from container_app.reports.html.survey_page import HtmlReportWriter
from container_app.reports.html.view import worst_status
from tests.helpers.reports import render, synthetic_report


def test_mitigation_shows_moves_backup_and_restore(mitigated: tuple[Path, dict[str, Any], dict[str, Any]],
                                                   tmp_path: Path) -> None:
    out, survey, mitigation = mitigated
    _, root = render(out, survey, mitigation)
    assert root.find(data_report_type="mitigation")
    command = root.find(id="restore-command")
    report_path = os.path.abspath(out / "mitigation-report.json")
    assert command.text == f"xnat-resource-survey restore --report {report_path}"
    assert root.find(id="backup-root").text == mitigation["backupRoot"]
    totals = {e.attrs["data-mitigation-total"]: int(e.attrs["data-value"])
              for e in root.find_all(data_mitigation_total=None)}
    assert totals["movedFiles"] == mitigation["totals"]["movedFiles"]
    assert totals["removedFiles"] == mitigation["totals"]["removedFiles"]
    assert totals["fileErrors"] == mitigation["totals"]["fileErrors"]
    for resource in mitigation["resources"]:
        section = next(e for e in root.find_all(data_resource=resource["path"]) if e.tag == "details")
        assert resource["backupFolder"] in section.text
        for action in resource["actions"]:
            assert action["path"].rsplit("/", 1)[-1] in section.text
            if action["newPath"]:
                assert action["newPath"].rsplit("/", 1)[-1] in section.text
    afterwards = [r["requestStatus"] for r in mitigation["resources"]]
    untouched = [r["requestStatus"] for r in survey["resources"]
                 if r["path"] not in {m["path"] for m in mitigation["resources"]}]
    assert root.find(id="overall-status").attrs["data-status"] == worst_status(afterwards + untouched)


def test_dry_run_offers_no_restore(mitigated: tuple[Path, dict[str, Any], dict[str, Any]], tmp_path: Path) -> None:
    _, survey, mitigation = mitigated
    planned = copy.deepcopy(mitigation)
    planned["dryRun"] = True
    _, root = render(tmp_path, survey, planned)
    assert root.find(id="dry-run")
    assert not list(root.find_all(id="restore-command"))
    assert root.find(id="overall-status").attrs["data-status"] == "DIVERGENT"


def test_mitigation_report_with_missing_fields_still_renders(demo: tuple[Path, dict[str, Any]],
                                                             tmp_path: Path) -> None:
    _, survey = demo
    resource = next(r for r in survey["resources"] if r["xnat"]["totalMismatchedFiles"])
    old, new = next(iter(resource["xnat"]["mismatchedFiles"].items()))
    folder = old.rsplit("/", 1)[0]
    sparse: dict[str, Any] = {"reportType": "mitigation", "resources": [
        {"path": resource["path"], "xnat": {"movedFiles": {old: f"{folder}/{new}"},
                                             "moveErrors": {"x.dcm": {"file": "x.dcm", "message": "disk <full>"}},
                                             "catalogWriteError": "catalog & co"}},
        {"path": "somewhere/else", "status": "SOMETHING_NEW", "actions": [None, {"action": "rename"}]},
    ]}
    html, root = render(tmp_path, survey, sparse)
    assert "disk &lt;full&gt;" in html and "catalog &amp; co" in html
    # the XNAT executor's extras, partly there
    sparse.update(executor="xnat", xnatServer={"host": "https://xnat.example", "way": None})
    sparse["resources"][0].update(way="file-operations", actions=[
        {"action": "RENAME", "path": old, "newPath": f"{folder}/{new}", "catalogEntryDowngraded": True}])
    html, root = render(tmp_path, survey, sparse)
    assert "https://xnat.example" in html and "files API" in html
    assert root.find(data_downgraded="1")
    totals = {e.attrs["data-mitigation-total"]: int(e.attrs["data-value"])
              for e in root.find_all(data_mitigation_total=None)}
    assert totals["movedFiles"] == 1 and totals["fileErrors"] == 1 and totals["resources"] == 2
    assert root.find(id="overall-status").attrs["data-status"] == "ERROR"
    assert any(e.tag == "details" for e in root.find_all(data_resource="somewhere/else"))


def test_writer_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = HtmlReportWriter(str(tmp_path))
    writer.add(synthetic_report(10)["resources"][0])
    writer.abort()
    assert os.listdir(tmp_path) == []


def test_worst_status_orders_xnat_statuses() -> None:
    assert worst_status(["CONFORMING", "NONCOMPLIANT"]) == "NONCOMPLIANT"
    assert worst_status(["NONCOMPLIANT", "DIVERGENT", "CONFORMING"]) == "DIVERGENT"
    assert worst_status(["DIVERGENT", "ERROR"]) == "ERROR"
    assert worst_status([]) == "CONFORMING"


def test_the_page_says_what_is_left_and_what_to_do(mitigated: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    """The demo keeps two bad files no mitigation can fix: the page says so instead of a bare DIVERGENT."""
    out, survey, mitigation = mitigated
    _, root = render(out, survey, mitigation)
    assert root.find(id="overall-status").attrs["data-status"] == "DIVERGENT"
    assert "What is left, and what to do with it, is listed below" in root.find(id="overview").text
    left = {e.attrs["data-left"]: e for e in root.find(id="what-is-left").find_all(data_left=None)}
    assert set(left) == {"badFiles"} and left["badFiles"].attrs["data-value"] == str(survey["totals"]["badFiles"])
    assert "No mitigation renames or removes a bad file" in left["badFiles"].text


def test_the_page_warns_that_uploaded_reports_keep_identifying_names(
        mitigated: tuple[Path, dict[str, Any], dict[str, Any]]) -> None:
    out, survey, mitigation = mitigated
    _, root = render(out, survey, mitigation)
    note = root.find(id="uploaded-names").text
    assert f"{survey['totals']['identifyingNames']} of those names carry identifying values" in note
    assert "RESOURCE_SURVEY" in note and "restore can no longer run from XNAT" in note


def test_a_dry_run_lists_nothing_left(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _out, survey = demo
    dry = {"reportType": "mitigation", "dryRun": True, "totals": {"conflicts": 0}, "resources": []}
    _, root = render(tmp_path, survey, dry)
    assert not list(root.find_all(id="what-is-left")) and not list(root.find_all(id="uploaded-names"))
