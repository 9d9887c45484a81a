"""report.html of a survey: the counts of the real demo report, what would change, the duplicate
preview (the plan's own choice of the copy to keep), identifying names, self-containment, and the page
built as resources arrive."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from container_app.core.plan import plan_resource
from container_app.core.vocabulary import KeepPolicy
from container_app.demo.archive import DEMO_PATIENT_NAME
from container_app.demo.builder import build_resource
from container_app.demo.damage import TruncateAt
from container_app.demo.specs import FileSpec, Naming, series_instances
from container_app.reports.html.survey_page import HTML_REPORT, HtmlReportWriter, write_html_report
from container_app.reports.html.templating import environment
from container_app.reports.schemas import validate
from container_app.reports.survey import RenderedResource, resource_summary
from tests.conftest import SurveyLib
from tests.helpers.reports import expected_counts, page_counts, render, synthetic_report, without_page_script
from tests.helpers.survey import STUDY


def test_synthetic_report_is_a_valid_survey_report() -> None:
    validate(synthetic_report(40, resources=2), "survey-report.schema.json")


def test_demo_counts_match_the_json_report(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = demo
    _, root = render(tmp_path, report)
    assert page_counts(root) == expected_counts(report)
    assert root.find(id="overall-status").text == "DIVERGENT"
    assert root.attrs == {} and root.find(data_report_type="survey")


def test_demo_tables_show_what_would_change(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = demo
    _, root = render(tmp_path, report)
    for resource in report["resources"]:
        xnat = resource["xnat"]
        if resource["requestStatus"] == "CONFORMING":
            assert not any(e.tag == "details" for e in root.find_all(data_resource=resource["path"]))
            continue
        sections = [e for e in root.find_all(data_resource=resource["path"]) if e.tag == "details"]
        assert len(sections) == 1
        section = sections[0]
        changes = [row for row in section.find_all(data_action=None) if row.tag == "tr"]
        renames = [row for row in changes if row.attrs["data-action"] == "RENAME"]
        removes = [row for row in changes if row.attrs["data-action"] == "REMOVE"]
        # every mismatched file is renamed to its expected name; one copy per duplicate group stays
        assert len(renames) >= xnat["totalMismatchedFiles"]
        assert len(removes) == xnat["totalFilesInDuplicates"] - xnat["totalDuplicates"]
        for old, new in xnat["mismatchedFiles"].items():
            assert any(old.rsplit("/", 1)[-1] in row.text and new in row.text for row in renames)
        if not xnat["totalBadFiles"]:
            assert not list(section.find_all(data_table="bad"))
            continue
        bad_table = section.find(data_table="bad")
        assert len([row for row in bad_table.find_all() if row.tag == "tr"][1:]) == xnat["totalBadFiles"]
        for bad in resource["files"]:
            if bad["status"] == "BAD":
                assert bad["path"].rsplit("/", 1)[-1] in bad_table.text
                assert all(reason in bad_table.text for reason in bad["reasons"])


def test_duplicate_preview_keeps_the_identical_copy_at_its_name_else_the_newest_more_deidentified(
        demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = demo
    _, root = render(tmp_path, report)
    [resource] = [r for r in report["resources"] if r["duplicateGroups"]]
    files = {f["path"]: f for f in resource["files"]}
    section = next(e for e in root.find_all(data_resource=resource["path"]) if e.tag == "details")
    kept = {e.attrs.get("data-kept") for e in section.find_all(data_kept=None)}
    assert kept == {"1"}
    table = section.find(data_table="duplicates")
    assert "preview; mitigation decides" in table.text
    kept_names = {row.attrs["data-member"] for row in table.find_all(data_member=None)
                  if any(True for _ in row.find_all(data_kept=None))}
    previews = set()
    for group in resource["duplicateGroups"]:
        members = group["members"]
        at_name = [m for m in members if m.rsplit("/", 1)[-1] == members[m]]
        if group["identical"] and at_name:
            previews.add(at_name[0].rsplit("/", 1)[-1])
        else:  # the de-identification guard first (issue 15), then the newest
            candidates = [m for m in members if "LESS_DEIDENTIFIED" not in files[m]["reasons"]]
            previews.add(max(candidates, key=lambda m: files[m]["mtimeNs"]).rsplit("/", 1)[-1])
    assert kept_names == previews and len(previews) == len(resource["duplicateGroups"])
    # the demo's commented re-send is newer and less de-identified: its older twin is the one kept
    assert sum("LESS_DEIDENTIFIED" in f["reasons"] for f in files.values()) == 1


def test_duplicate_preview_keeps_the_intact_copy_as_the_plan_does_when_the_newest_is_damaged(
        tmp_path: Path, survey_lib: SurveyLib) -> None:
    """The preview names the copy the plan keeps: never a damaged copy while an intact one exists."""
    instance = series_instances(STUDY, 1, 1)[0]
    root = tmp_path / "root"
    build_resource(root, [
        FileSpec(instance=instance, name=Naming.LEGACY, mtime=1_700_000_000),  # intact, older
        FileSpec(instance=instance, truncate_to=TruncateAt.PIXEL_DATA, mtime=1_700_000_100),  # damaged, newest
    ])
    report = survey_lib(root)
    [resource] = report["resources"]
    [group] = resource["duplicateGroups"]
    files = {f["path"]: f for f in resource["files"]}
    newest = max(group["members"], key=lambda m: files[m]["mtimeNs"])
    assert group["actionable"] and files[newest]["intact"] is False
    [intact] = [m for m in group["members"] if files[m]["intact"] is True]
    [kept_by_plan] = [a.source.path for a in plan_resource(resource, KeepPolicy.NEWEST).actions
                      if a.reason.startswith("DUPLICATE_KEPT:")]
    assert kept_by_plan == intact

    _, page = render(tmp_path / "page", report)
    section = next(e for e in page.find_all(data_resource=resource["path"]) if e.tag == "details")
    table = section.find(data_table="duplicates")
    kept = [row.attrs["data-member"] for row in table.find_all(data_member=None)
            if any(True for _ in row.find_all(data_kept=None))]
    assert kept == [intact.rsplit("/", 1)[-1]]
    assert "preview: the only intact copy" in table.text


def test_identifying_names_are_marked_with_the_tag_names_only(demo: tuple[Path, dict[str, Any]],
                                                               tmp_path: Path) -> None:
    _, report = demo
    html, root = render(tmp_path, report)
    badges = list(root.find_all(data_identifying=None))
    assert badges and {b.attrs["data-identifying"] for b in badges} == {"PatientName"}
    flagged = {f["path"].rsplit("/", 1)[-1] for r in report["resources"] for f in r["files"]
               if f.get("identifyingTags")}
    rows = [row for row in root.find_all()
            if row.tag == "tr" and any(True for _ in row.find_all(data_identifying=None))]
    assert flagged == {name for name in flagged if any(name in row.text for row in rows)}
    # the page never spells out a header value (file names carry them as the archive has them)
    assert DEMO_PATIENT_NAME not in html and "PatientName:" not in html


def test_page_is_self_contained(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = demo
    html, root = render(tmp_path, report)
    lowered = without_page_script(html).lower()  # the page's one script is inline, nothing is fetched
    assert "<script" not in lowered and "<link" not in lowered and "<iframe" not in lowered
    assert "@import" not in lowered and "url(" not in lowered and "@font-face" not in lowered
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", lowered)
    assert all(e.attrs["href"].startswith("#") for e in root.find_all(href=None))
    assert html.startswith("<!DOCTYPE html>") and lowered.count("<style>") == 1
    assert not [p for p in os.listdir(tmp_path) if p != HTML_REPORT]  # no temporary files left behind


def test_templates_are_autoescaped() -> None:
    assert environment().autoescape is True
    template = environment().from_string("{{ value }}")
    assert template.render(value="<b>") == "&lt;b&gt;"


def test_the_survey_writes_the_page_of_its_report(demo: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """The page the survey wrote as resources arrived is the page of the finished report."""
    out, report = demo
    whole = Path(write_html_report(str(tmp_path / "whole"), report)).read_text("utf-8")
    assert (out / "report.html").read_text("utf-8") == whole


def fed_as_surveyed(out: Path, report: dict[str, Any]) -> str:
    """The page as the survey builds it: resources handed over as workers render them, parsed only if shown."""
    writer = HtmlReportWriter(str(out))
    for resource in report["resources"]:
        writer.add_rendered(RenderedResource((json.dumps(resource),), resource_summary(resource), "2026-01-01"))
    return Path(writer.finish({**report, "resources": []})).read_text("utf-8")


@pytest.mark.parametrize("resources", [3, 600], ids=["few", "more-than-the-page-shows"])
def test_resources_fed_as_surveyed_give_the_same_page(tmp_path: Path, resources: int) -> None:
    report = synthetic_report(40, resources=resources)
    expected = Path(write_html_report(str(tmp_path / "whole"), report)).read_text("utf-8")
    assert fed_as_surveyed(tmp_path / "fed", report) == expected
