"""report.html whatever the archive: hostile names render as text, and the page stays small for
100,000 files or thousands of resources."""

from __future__ import annotations

from pathlib import Path

import pytest

from container_app.reports.html.survey_page import MAX_ROWS
from tests.helpers.reports import page_counts, render, synthetic_report, without_page_script

# --- escaping ----------------------------------------------------------------------------------------

HOSTILE = "<script>alert('x')</script> & \"quoted\".dcm"


def test_hostile_names_render_as_text(tmp_path: Path) -> None:
    report = synthetic_report(20, name=lambda i: f"{i}{HOSTILE}",
                              resource_path=lambda r: f"P1/arc001/S1/SCANS/<b>{r}</b>&\"x\"/DICOM")
    report["resources"][0]["files"][0]["detail"] = "<img src=x onerror=alert(1)>"
    html, root = render(tmp_path, report)
    data = without_page_script(html)
    assert "<script" not in data.lower() and "<img" not in html.lower() and "<b>0</b>" not in html
    assert "&lt;script&gt;" in html and "&amp;" in html and "&#34;quoted&#34;" in html
    # the parsed page gives the names back exactly as they are
    texts = [e.text for e in root.find_all() if e.tag == "code"]
    assert f"1{HOSTILE}" in texts and f"0{HOSTILE}" in texts
    assert "<img src=x onerror=alert(1)>" in root.find(data_table="bad").text
    path = report["resources"][0]["path"]
    assert any(e.attrs["data-resource"] == path for e in root.find_all(data_resource=None))


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
