"""report.html: the counts of the real demo report, escaping, self-containment, size on 100,000 files,
and the mitigation part (from a real mitigation of the demo, and from a report missing fields)."""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from container_app.cli.settings import Common, DemoSettings
from container_app.cli.workflows import run_demo
from container_app.demo.archive import DEMO_PATIENT_NAME
from container_app.reports.html.writer import (
    HTML_REPORT,
    MAX_ROWS,
    HtmlReportWriter,
    environment,
    worst_status,
    write_html_report,
)
from container_app.reports.survey import RenderedResource, resource_summary, validate

# --- reading the page back -------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parts: list[str] = []
        self.children: list[Element] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def find_all(self, **attrs: str | None) -> Iterator[Element]:
        """Descendants having every attribute given (None: any value); `data_x` stands for `data-x`."""
        wanted = {k.replace("_", "-"): v for k, v in attrs.items()}
        for child in self.children:
            if all(k in child.attrs and (v is None or child.attrs[k] == v) for k, v in wanted.items()):
                yield child
            yield from child.find_all(**attrs)

    def find(self, **attrs: str | None) -> Element:
        found = next(self.find_all(**attrs), None)
        assert found is not None, f"no element with {attrs}"
        return found


class Dom(HTMLParser):
    """A small DOM: elements with attributes, children and their whole text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.parts.append(data)


def page_counts(root: Element) -> dict[str, Any]:
    """What a reader sees: overall status, totals, and the count columns per resource."""
    resources: dict[str, dict[str, int]] = {}
    for table_id in ("attention-resources", "conforming-resources"):
        for table in root.find_all(id=table_id):
            for row in table.find_all(data_resource=None):
                resources[row.attrs["data-resource"]] = {
                    cell.attrs["data-count"]: int(cell.text.replace(",", "")) for cell in row.find_all(data_count=None)
                }
    return {
        "status": root.find(id="overall-status").attrs["data-status"],
        "totals": {e.attrs["data-total"]: int(e.attrs["data-value"]) for e in root.find_all(data_total=None)},
        "resources": resources,
        "scans": {e.attrs["data-scan"]: int(e.attrs["data-problems"]) for e in root.find_all(data_scan=None)},
    }


def expected_counts(report: dict[str, Any]) -> dict[str, Any]:
    """The same numbers straight from survey-report.json."""
    totals = report["totals"]
    resources = {}
    scans: dict[str, int] = {}
    for r in report["resources"]:
        x = r["xnat"]
        resources[r["path"]] = {
            "totalEntries": x["totalEntries"], "totalUids": x["totalUids"],
            "totalMismatchedFiles": x["totalMismatchedFiles"], "totalDuplicates": x["totalDuplicates"],
            "totalNonActionableDuplicates": x["totalNonActionableDuplicates"], "totalBadFiles": x["totalBadFiles"],
            "identifyingNames": r["counts"]["identifyingName"],
        }
        problems = (x["totalMismatchedFiles"] + x["totalFilesInDuplicates"] + x["totalFilesInNonActionableDuplicates"]
                    + x["totalBadFiles"])
        if problems:
            identity = r["identity"]
            key = "/".join(identity[k] or "" for k in ("project", "session", "scanId"))
            scans[key] = scans.get(key, 0) + problems
    status = "DIVERGENT" if totals["divergent"] else "NONCOMPLIANT" if totals["noncompliant"] else "CONFORMING"
    return {"status": status, "resources": resources, "scans": scans, "totals": {
        "resources": totals["resources"], "files": totals["files"], "conforming": totals["conforming"],
        "divergent": totals["divergent"], "noncompliant": totals["noncompliant"],
        "mismatchedFiles": totals["mismatchedFiles"], "duplicates": totals["duplicates"],
        "filesInDuplicates": totals["filesInDuplicates"], "nonActionableDuplicates": totals["nonActionableDuplicates"],
        "badFiles": totals["badFiles"], "identifyingNames": totals["identifyingNames"],
        "catalogEntriesMissingFile": totals["catalogEntriesMissingFile"],
        "uids": sum(r["xnat"]["totalUids"] for r in report["resources"]),
    }}


# --- reports to render -----------------------------------------------------------------------------


def make_demo(out: Path) -> dict[str, Any]:
    outcome = run_demo(DemoSettings(common=Common(log_format="json", verbose=False), output=str(out), jobs=1))
    report: dict[str, Any] = json.loads(Path(outcome.report_path).read_text("utf-8"))
    return report


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    return out, make_demo(out)


def synthetic_report(files: int, resources: int = 1, name: Callable[[int], str] = lambda i: f"IM{i:06d}",
                     resource_path: Callable[[int], str] | None = None) -> dict[str, Any]:
    """A survey report built as data: in each resource, every tenth file bad, two in ten a duplicate pair
    (identical, the second one under its expected name), the rest mismatched."""
    docs = []
    totals = dict.fromkeys(("resources", "files", "conforming", "divergent", "noncompliant", "badFiles",
                            "mismatchedFiles", "duplicates", "filesInDuplicates", "nonActionableDuplicates",
                            "filesInNonActionableDuplicates", "identifyingNames", "catalogEntriesMissingFile"), 0)
    sop_class = "1.2.840.10008.5.1.4.1.1.4"
    for r in range(resources):
        path = resource_path(r) if resource_path else f"P1/arc001/S1/SCANS/{r + 1}/DICOM"
        file_docs: list[dict[str, Any]] = []
        groups: list[dict[str, Any]] = []
        uids: list[str] = []
        bad: list[str] = []
        mismatched: dict[str, str] = {}
        duplicates: dict[str, dict[str, str]] = {}
        identifying = 0
        for i in range(files):
            kind = i % 10
            file_path = f"{path}/{name(i)}"
            base = {"path": file_path, "size": 1000 + i, "mtimeNs": 1_700_000_000_000_000_000 + i * 1_000_000_000,
                    "sha256": None}
            if kind == 0:
                file_docs.append({**base, "status": "BAD", "expectedName": None, "reasons": ["NOT_DICOM"],
                                  "detail": "not a DICOM dataset"})
                bad.append(file_path)
            elif kind in (1, 2):
                uid = f"1.2.3.{i // 10}"
                expected = f"expected-{i // 10}.dcm"
                if kind == 2:  # the second copy already carries its expected name
                    file_path = f"{path}/{expected}"
                    base["path"] = file_path
                reasons = ["DUPLICATE", "IDENTIFYING_NAME", "DUPLICATE_IDENTICAL"] if kind == 1 else [
                    "DUPLICATE", "DUPLICATE_IDENTICAL"]
                document = {**base, "status": "DUPLICATE", "expectedName": expected, "reasons": reasons,
                            "sopClassUID": sop_class, "sopInstanceUID": uid}
                if kind == 1:
                    document["identifyingTags"] = ["PatientName"]
                    identifying += 1
                file_docs.append(document)
                duplicates.setdefault(uid, {})[file_path] = expected
                if kind == 2:
                    uids.append(uid)
                    groups.append({"sopClassUID": sop_class, "sopInstanceUID": uid, "actionable": True,
                                   "identical": True, "members": duplicates[uid]})
            else:
                uid = f"1.2.4.{i}"
                expected = f"expected-m{i}.dcm"
                file_docs.append({**base, "status": "MISMATCHED", "expectedName": expected,
                                  "reasons": ["NAME_MISMATCH"], "sopClassUID": sop_class, "sopInstanceUID": uid})
                mismatched[file_path] = expected
                uids.append(uid)
        status = "DIVERGENT" if bad or mismatched or duplicates else "CONFORMING"
        xnat = {"resourceSurveyRequestId": 0, "surveyDate": 1_700_000_000_000, "totalEntries": files,
                "totalUids": len(uids), "totalBadFiles": len(bad), "totalMismatchedFiles": len(mismatched),
                "totalDuplicates": len(duplicates), "totalFilesInDuplicates": 2 * len(duplicates),
                "totalNonActionableDuplicates": 0, "totalFilesInNonActionableDuplicates": 0,
                "uids": {sop_class: uids} if uids else {}, "badFiles": bad, "mismatchedFiles": mismatched,
                "duplicates": {sop_class: duplicates} if duplicates else {}, "nonActionableDuplicates": {}}
        docs.append({
            "path": path,
            "identity": {"project": "P1", "subject": None, "session": "S1", "scanId": str(r + 1),
                         "resourceLabel": "DICOM", "catalogPath": None},
            "requestStatus": status, "xnat": xnat,
            "catalog": {"present": False, "entries": 0, "dcmEntries": 0, "error": None, "missingFiles": []},
            "duplicateGroups": groups, "files": file_docs,
            "counts": {"identifyingName": identifying, "legacyName": 0},
        })
        totals["resources"] += 1
        totals["files"] += files
        totals["divergent" if status == "DIVERGENT" else "conforming"] += 1
        totals["badFiles"] += len(bad)
        totals["mismatchedFiles"] += len(mismatched)
        totals["duplicates"] += len(duplicates)
        totals["filesInDuplicates"] += 2 * len(duplicates)
        totals["identifyingNames"] += identifying
    return {
        "reportType": "survey", "schemaVersion": "1.0", "tool": {"name": "xnat-resource-survey", "version": "0"},
        "runId": "20240101T000000Z-0badc0de", "root": "/input", "template": "${SOPInstanceUID}",
        "options": {"resourceLabels": ["DICOM"], "allResources": False, "since": None, "jobs": 1},
        "startedAt": "2024-01-01T00:00:00.000Z", "finishedAt": "2024-01-01T00:01:00.000Z",
        "resources": docs, "totals": totals,
    }


def render(out: Path, survey: dict[str, Any], mitigation: dict[str, Any] | None = None) -> tuple[str, Element]:
    path = write_html_report(str(out), survey, mitigation)
    assert path == os.path.join(str(out), HTML_REPORT)
    html = Path(path).read_text("utf-8")
    return html, Dom(html).root


# --- the demo ----------------------------------------------------------------------------------------


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


def test_duplicate_preview_keeps_the_identical_copy_at_its_name_else_the_newest(
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
        else:
            previews.add(max(members, key=lambda m: files[m]["mtimeNs"]).rsplit("/", 1)[-1])
    assert kept_names == previews and len(previews) == len(resource["duplicateGroups"])


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
    lowered = html.lower()
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
        writer.add_rendered(RenderedResource(json.dumps(resource), resource_summary(resource), "2026-01-01"))
    return Path(writer.finish({**report, "resources": []})).read_text("utf-8")


@pytest.mark.parametrize("resources", [3, 600], ids=["few", "more-than-the-page-shows"])
def test_resources_fed_as_surveyed_give_the_same_page(tmp_path: Path, resources: int) -> None:
    report = synthetic_report(40, resources=resources)
    expected = Path(write_html_report(str(tmp_path / "whole"), report)).read_text("utf-8")
    assert fed_as_surveyed(tmp_path / "fed", report) == expected


# --- escaping ----------------------------------------------------------------------------------------

HOSTILE = "<script>alert('x')</script> & \"quoted\".dcm"


def test_hostile_names_render_as_text(tmp_path: Path) -> None:
    report = synthetic_report(20, name=lambda i: f"{i}{HOSTILE}",
                              resource_path=lambda r: f"P1/arc001/S1/SCANS/<b>{r}</b>&\"x\"/DICOM")
    report["resources"][0]["files"][0]["detail"] = "<img src=x onerror=alert(1)>"
    html, root = render(tmp_path, report)
    assert "<script" not in html.lower() and "<img" not in html.lower() and "<b>0</b>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html and "&#34;quoted&#34;" in html
    # the parsed page gives the names back exactly as they are
    texts = [e.text for e in root.find_all() if e.tag == "code"]
    assert f"1{HOSTILE}" in texts and f"0{HOSTILE}" in texts
    assert "<img src=x onerror=alert(1)>" in root.find(data_table="bad").text
    path = report["resources"][0]["path"]
    assert any(e.attrs["data-resource"] == path for e in root.find_all(data_resource=None))


# --- size --------------------------------------------------------------------------------------------


LONG_NAME = "1.2.826.0.1.3680043.8.498.18491807726623730061782850373508751056-{i}-{i}-abcdefgh.MR.Brain_MRI.dcm"


@pytest.mark.parametrize("long_names", [False, True], ids=["short-names", "long-names"])
def test_page_stays_small_for_100000_files(tmp_path: Path, long_names: bool) -> None:
    report = synthetic_report(100_000, name=(lambda i: LONG_NAME.format(i=i)) if long_names else lambda i: f"IM{i:06d}")
    html, root = render(tmp_path, report)
    size = len(html.encode("utf-8"))
    assert size < 2_000_000, size
    counts = page_counts(root)
    assert counts["totals"]["files"] == 100_000
    assert counts["totals"]["badFiles"] == 10_000 and counts["totals"]["mismatchedFiles"] == 70_000
    assert counts["totals"]["duplicates"] == 10_000
    section = next(e for e in root.find_all(data_resource=report["resources"][0]["path"]) if e.tag == "details")
    for table in ("changes", "duplicates", "bad"):
        shown = sum(1 for row in section.find(data_table=table).find_all() if row.tag == "tr") - 1
        assert 0 < shown <= MAX_ROWS * 2  # a duplicate group takes a row per copy
    notes = {int(e.attrs["data-more"]) for e in section.find_all(data_more=None)}
    # changes: 70,000 renames + 10,000 removals; 10,000 groups; 10,000 bad files
    assert notes == {80_000 - MAX_ROWS, 10_000 - MAX_ROWS}
    assert "more in survey-report.json" in html


@pytest.mark.parametrize("long_names", [False, True], ids=["short-names", "long-names"])
def test_page_stays_small_for_many_resources(tmp_path: Path, long_names: bool) -> None:
    report = synthetic_report(50, resources=2_000, name=(lambda i: LONG_NAME.format(i=i)) if long_names
                              else lambda i: f"IM{i:06d}",
                              resource_path=lambda r: f"PROJECT_{'X' * 40}/arc001/SESSION_{'Y' * 40}/SCANS/{r}/DICOM")
    html, root = render(tmp_path, report)
    assert len(html.encode("utf-8")) < 2_000_000
    assert page_counts(root)["totals"]["resources"] == 2_000
    assert root.find(id="details").find(data_more=None)  # not every resource gets its section


# --- after a mitigation ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mitigated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    from container_app.cli.main import main

    out = tmp_path_factory.mktemp("mitigated")
    survey = make_demo(out)
    mitigation_out = out / "mitigation"
    code = main(["mitigate", str(out / "archive"), "--report", str(out / "survey-report.json"),
                 "--output", str(mitigation_out), "--log-format", "json"])
    assert code in (0, 1)
    mitigation = json.loads((mitigation_out / "mitigation-report.json").read_text("utf-8"))
    return mitigation_out, survey, mitigation


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
