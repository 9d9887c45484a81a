"""Reading the HTML pages back, and the reports they are rendered from: shared by the page tests, the
roll-up tests and the browser tests."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from container_app.cli.commands.demo import run_demo
from container_app.cli.settings import Common, DemoSettings
from container_app.reports.html.survey_page import HTML_REPORT, write_html_report

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
    status = ("ERROR" if totals.get("unreadableFolders") else "DIVERGENT" if totals["divergent"]
              else "NONCOMPLIANT" if totals["noncompliant"] else "CONFORMING")
    return {"status": status, "resources": resources, "scans": scans, "totals": {
        "resources": totals["resources"], "files": totals["files"], "conforming": totals["conforming"],
        "divergent": totals["divergent"], "noncompliant": totals["noncompliant"],
        "mismatchedFiles": totals["mismatchedFiles"], "duplicates": totals["duplicates"],
        "filesInDuplicates": totals["filesInDuplicates"], "nonActionableDuplicates": totals["nonActionableDuplicates"],
        "badFiles": totals["badFiles"], "identifyingNames": totals["identifyingNames"],
        "catalogEntriesMissingFile": totals["catalogEntriesMissingFile"],
        "unreadableFolders": totals.get("unreadableFolders", 0),
        "uids": sum(r["xnat"]["totalUids"] for r in report["resources"]),
    }}


# --- reports to render -----------------------------------------------------------------------------


def make_demo(out: Path) -> dict[str, Any]:
    outcome = run_demo(DemoSettings(common=Common(log_format="json", verbose=False), output=str(out), jobs=1))
    report: dict[str, Any] = json.loads(Path(outcome.report_path).read_text("utf-8"))
    return report


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


def without_page_script(html: str) -> str:
    """The page with its own script taken out, after checking that it has exactly one, inline (no src=),
    just before </body>: whatever `<script` is left came from the report's data and was not escaped."""
    lowered = html.lower()
    start, end = lowered.rfind("<script>"), lowered.rfind("</script>")
    assert start != -1 and end > start, "the page's filter script is missing"
    assert lowered[end:].replace("</script>", "", 1).strip().startswith("</body>")
    rest = html[:start] + html[end + len("</script>"):]
    return rest
