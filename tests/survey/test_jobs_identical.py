"""Issue 17: a big resource is shared out file by file to the workers; the reports do not depend on it.

One resource of about 5,000 files (over the 2,048 that make it "big"), with every kind of file whose
finding the rest of its resource decides or that the workers judge alone: conforming, legacy-named
(the patient's name in it) and client-named files, identical, differing and less de-identified
copies, a copy whose original sits at its expected name, truncated pixel data, bad files, files left
out of the catalog, a catalog UID that disagrees.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from container_app.core.classify import FileFinding, ResourceFindings
from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.core.records import HeaderValues
from container_app.demo import synth
from container_app.demo.synth import CopyKind, CopySpec, ExtraFile, ExtraKind, FileSpec, Naming, TruncateAt
from container_app.reports.survey import RenderedResource, ResourceRenderer
from container_app.survey import pipeline
from container_app.survey.discover import Selection
from container_app.survey.pipeline import SurveyRequest, resources_to_survey, run
from tests.helpers.mitigation import no_traceback, run_cli
from tests.helpers.survey import STUDY

FILES = 4_800
DATE = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def _spec(n: int, instance: synth.InstanceSpec) -> FileSpec:
    """File n's plants: the mix a legacy archive has, every kind several times, in no pattern a chunk follows."""
    name: str | Naming = Naming.LEGACY if n % 3 else f"client_{n:05d}.dcm"
    if n % 11 == 0:
        name = Naming.XNAT
    copies: tuple[CopySpec, ...] = ()
    if n % 10 == 1:
        kind = (CopyKind.IDENTICAL, CopyKind.DIFFERENT, CopyKind.COMMENTED)[n % 3]
        copies = (CopySpec(name=f"copy_{n:05d}.dcm", kind=kind),)
    if n % 11 == 0 and n % 2 == 0:  # the original at its expected name: only the join knows to check it
        copies = (CopySpec(name=f"again_{n:05d}.dcm"),)
    return FileSpec(
        instance=instance, name=name, copies=copies,
        truncate_to=TruncateAt.PIXEL_DATA if n % 97 == 5 else TruncateAt.HEADER if n % 89 == 7 else None,
        in_catalog=n % 53 != 3,
        catalog_uid=synth.uid("other", n) if n % 61 == 9 else None,
    )


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "DICOM"
    instances = synth.series_instances(STUDY, 7, FILES)
    extras = [ExtraFile(name=f"notes_{i}.txt", kind=ExtraKind.TEXT) for i in range(7)]
    synth.build_resource(root, [_spec(n, i) for n, i in enumerate(instances)], extras=extras, scan_id="7")
    return root


# Fields that say when and how the run was made, not what it found.
_RUN_FIELDS = ("runId", "startedAt", "finishedAt")


def _comparable(out: Path) -> tuple[dict[str, Any], list[list[str]]]:
    report = json.loads((out / "survey-report.json").read_text(encoding="utf-8"))
    for key in _RUN_FIELDS:
        assert report.pop(key)
    assert report["options"].pop("jobs") in (1, 2)
    for resource in report["resources"]:
        assert resource["xnat"].pop("surveyDate") > 0
    with open(out / "survey-summary.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    date_column = rows[0].index("surveyDate")
    return report, [row[:date_column] + row[date_column + 1:] for row in rows]


def test_reports_are_identical_for_every_jobs(archive: Path, tmp_path: Path) -> None:
    outs = []
    for jobs in (1, 2):
        out = tmp_path / f"jobs{jobs}"
        result = run_cli("survey", archive, "--output", out, "--jobs", str(jobs))
        no_traceback(result)
        assert result.returncode == 0, result.stderr
        outs.append(_comparable(out))
    (report_1, csv_1), (report_2, csv_2) = outs
    assert report_1 == report_2
    assert csv_1 == csv_2
    # The archive holds what it is meant to: else identical reports would prove little.
    totals = report_1["totals"]
    assert totals["files"] > FILES + FILES // 10
    assert totals["duplicates"] > 400 and totals["mismatchedFiles"] > 2_500 and totals["badFiles"] > 50
    assert totals["identifyingNames"] > 2_000 and totals["lessDeidentified"] > 50
    counts = report_1["resources"][0]["counts"]
    assert counts["pixelDataTruncated"] > 40 and counts["notInCatalog"] > 80 and counts["catalogUidMismatch"] > 60


class _FixedDate(ResourceRenderer):
    """The CLI's render with one survey date, so two runs' texts can be compared byte for byte."""

    def __call__(self, findings: ResourceFindings, survey_date: dt.datetime | None = None) -> RenderedResource:
        return super().__call__(findings, DATE)

    def assemble(self, findings: ResourceFindings, file_texts: Any,
                 survey_date: dt.datetime | None = None) -> RenderedResource:
        return super().assemble(findings, file_texts, DATE)


FIXED = _FixedDate()


def _identity(findings: ResourceFindings) -> ResourceFindings:
    return findings


@pytest.mark.parametrize("jobs", [1, 2])
def test_big_resource_path_equals_whole_resource_path(archive: Path, jobs: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The sharded path (workers classify, check and render file by file) against one worker doing it all."""
    request = SurveyRequest(root=str(archive), template=parse_template(DEFAULT_TEMPLATE), selection=Selection(),
                            jobs=jobs)
    resources = resources_to_survey(request)
    assert len(resources) == 1 and len(resources[0].files) > 2 * 2048
    sharded = list(run(request, resources, render=FIXED))
    sharded_findings = list(run(request, resources, render=_identity))
    monkeypatch.setattr(pipeline, "_BIG_RESOURCE", 10**9)
    whole = list(run(request, resources, render=FIXED))
    whole_findings = list(run(request, resources, render=_identity))
    assert [r.text for r in sharded] == [r.text for r in whole]
    assert [r.summary for r in sharded] == [r.summary for r in whole]
    # The sharded path hands the main process only the UIDs of each header (`big_resource.for_join`).
    assert sharded_findings == [_uids_only(f) for f in whole_findings]


def _uids_only(findings: ResourceFindings) -> ResourceFindings:
    def slim(finding: FileFinding) -> FileFinding:
        header = finding.record.header
        if header is None:
            return finding
        uids = {k: v for k, v in header.values.items() if k in ("SOPClassUID", "SOPInstanceUID")}
        return dataclasses.replace(finding, record=dataclasses.replace(finding.record, header=HeaderValues(uids)))

    return dataclasses.replace(findings, files=tuple(slim(f) for f in findings.files))


def test_workers_from_a_fork_server_give_the_same_reports(archive: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A survey of very many files starts its workers from a fork server (so they do not carry this process's
    discovered names); the texts are those of workers forked from here."""
    request = SurveyRequest(root=str(archive), template=parse_template(DEFAULT_TEMPLATE), selection=Selection(),
                            jobs=2)
    resources = resources_to_survey(request)
    forked = list(run(request, resources, render=FIXED))
    monkeypatch.setattr(pipeline, "_FORK_SERVER_FILES", 1)
    started: list[str] = []
    original = multiprocessing.get_context

    def spying(method: str | None = None) -> Any:
        started.append(str(method))
        return original(method)

    monkeypatch.setattr(multiprocessing, "get_context", spying)
    served = list(run(request, resources, render=FIXED))
    assert started == ["forkserver"]
    assert [r.text for r in served] == [r.text for r in forked]
    assert [r.summary for r in served] == [r.summary for r in forked]
