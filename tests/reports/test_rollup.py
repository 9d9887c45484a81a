"""The project roll-up: sums per session and project from real demo reports, sessions launched in bulk
(all mounted at /input), mitigations joined to their surveys, the CLI, and clear errors."""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from container_app.core.errors import ReportError
from container_app.reports.rollup import CSV_COLUMNS, SUMMARY_FIELDS, build_rollup, write_rollup
from container_app.reports.rollup_inputs import find_reports, load_report
from container_app.reports.schemas import ROLLUP_SCHEMA, validate
from tests.conftest import CliRunner
from tests.helpers.reports import Dom, make_demo, synthetic_report

SURVEY_FIELDS = ("totalEntries", "totalUids", "totalDuplicates", "totalBadFiles", "totalMismatchedFiles")


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_demo(tmp_path_factory.mktemp("demo"))


def as_session(report: dict[str, Any], session: str | None, run: int, root: str | None = None,
               project: str | None = "DEMO") -> dict[str, Any]:
    """The demo's report as if it came from another session's run."""
    other = copy.deepcopy(report)
    other["runId"] = f"20240101T00000{run}Z-0000000{run}"
    if root is not None:
        other["root"] = root
    for resource in other["resources"]:
        resource["identity"]["session"] = session
        resource["identity"]["project"] = project
    return other


def sums(report: dict[str, Any]) -> dict[str, int]:
    return {k: sum(r["xnat"][k] for r in report["resources"]) for k in SURVEY_FIELDS}


def test_three_sessions_sum_per_session_and_project(demo_report: dict[str, Any]) -> None:
    reports = [as_session(demo_report, s, i) for i, s in enumerate(("MR1", "MR2", "MR3"))]
    rollup = build_rollup(reports)
    validate(rollup, ROLLUP_SCHEMA)
    one = sums(demo_report)
    [project] = rollup["projects"]
    assert project["project"] == "DEMO" and project["sessionCount"] == 3
    assert [s["session"] for s in project["sessions"]] == ["MR1", "MR2", "MR3"]
    for session in project["sessions"]:
        assert {k: session[k] for k in SURVEY_FIELDS} == one
        assert session["resources"] == len(demo_report["resources"]) and session["status"] == "DIVERGENT"
        assert session["identifiedBy"] == "identity"
    assert {k: project[k] for k in SURVEY_FIELDS} == {k: 3 * v for k, v in one.items()}
    totals = rollup["totals"]
    assert {k: totals[k] for k in SURVEY_FIELDS} == {k: 3 * v for k, v in one.items()}
    assert totals["totalMovedFiles"] == totals["totalRemovedFiles"] == totals["totalFileErrors"] == 0
    assert totals["projects"] == 1 and totals["sessions"] == 3 and totals["status"] == "DIVERGENT"
    assert totals["statusCounts"] == {"CONFORMING": 3, "DIVERGENT": 9}


def test_bulk_launch_sessions_on_one_mount_are_kept_apart(demo_report: dict[str, Any]) -> None:
    """Each container of a bulk launch surveys its session at /input: same root, same paths, no session name."""
    reports = [as_session(demo_report, None, i, root="/input", project="P") for i in range(3)]
    rollup = build_rollup(reports)
    validate(rollup, ROLLUP_SCHEMA)
    [project] = rollup["projects"]
    assert project["sessionCount"] == 3
    assert all(s["identifiedBy"] == "root" and s["session"].startswith("/input (run ") for s in project["sessions"])
    assert rollup["totals"]["totalEntries"] == 3 * sums(demo_report)["totalEntries"]
    assert rollup["totals"]["resources"] == 3 * len(demo_report["resources"])


def test_unknown_project_and_session_fall_back_to_the_root() -> None:
    report = synthetic_report(20, resources=2)
    for resource in report["resources"]:
        resource["identity"]["project"] = resource["identity"]["session"] = None
    rollup = build_rollup([report])
    [project] = rollup["projects"]
    assert project["project"] == "/input" and project["identifiedBy"] == "root"
    assert [s["session"] for s in project["sessions"]] == ["/input"]


def test_a_later_survey_of_the_same_session_replaces_the_earlier(demo_report: dict[str, Any]) -> None:
    earlier = as_session(demo_report, "MR1", 1, root="/mnt/a")
    later = as_session(demo_report, "MR1", 2, root="/mnt/b")
    later["finishedAt"] = "2099-01-01T00:00:00.000Z"
    for resource in later["resources"]:
        resource["xnat"]["totalEntries"] += 1
    rollup = build_rollup([earlier, later])
    assert rollup["totals"]["resources"] == len(demo_report["resources"])
    assert rollup["totals"]["totalEntries"] == sums(demo_report)["totalEntries"] + len(demo_report["resources"])
    assert any("latest run" in w for w in rollup["warnings"])


@pytest.fixture(scope="module")
def mitigated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo surveyed into OUT and mitigated into OUT/mitigation, as the CLI does it."""
    from container_app.cli.main import main

    out = tmp_path_factory.mktemp("mitigated")
    make_demo(out)
    code = main(["mitigate", str(out / "archive"), "--report", str(out / "survey-report.json"),
                 "--output", str(out / "mitigation"), "--log-format", "json"])
    assert code in (0, 1)
    return out


def test_mitigation_totals_join_their_survey(mitigated: Path) -> None:
    survey = load_report(str(mitigated / "survey-report.json"))
    mitigation = load_report(str(mitigated / "mitigation" / "mitigation-report.json"))
    rollup = build_rollup([mitigation, survey])
    validate(rollup, ROLLUP_SCHEMA)
    totals = rollup["totals"]
    assert totals["resources"] == len(survey["resources"])
    assert totals["mitigatedResources"] == len(mitigation["resources"])
    assert totals["totalMovedFiles"] == sum(r["xnat"]["totalMovedFiles"] for r in mitigation["resources"])
    assert totals["totalRemovedFiles"] == sum(r["xnat"]["totalRemovedFiles"] for r in mitigation["resources"])
    assert totals["totalFileErrors"] == sum(r["xnat"]["totalFileErrors"] for r in mitigation["resources"])
    assert {k: totals[k] for k in SURVEY_FIELDS} == sums(survey)
    # statuses afterwards: the mitigated resources' requestStatus, the others' survey status
    mitigated_paths = {r["path"]: r["requestStatus"] for r in mitigation["resources"]}
    expected: dict[str, int] = {}
    for resource in survey["resources"]:
        status = mitigated_paths.get(resource["path"], resource["requestStatus"])
        expected[status] = expected.get(status, 0) + 1
    assert totals["statusCounts"] == expected


def test_dry_run_mitigation_is_listed_not_counted(mitigated: Path) -> None:
    survey = load_report(str(mitigated / "survey-report.json"))
    mitigation = load_report(str(mitigated / "mitigation" / "mitigation-report.json"))
    mitigation["dryRun"] = True
    rollup = build_rollup([survey, mitigation])
    assert rollup["totals"]["mitigatedResources"] == 0 and rollup["totals"]["totalMovedFiles"] == 0
    assert rollup["inputs"][1]["dryRun"] is True
    assert any("dry run" in w for w in rollup["warnings"])


def test_outputs_agree(demo_report: dict[str, Any], tmp_path: Path) -> None:
    rollup = build_rollup([as_session(demo_report, s, i) for i, s in enumerate(("MR1", "MR2"))])
    paths = write_rollup(str(tmp_path), rollup)
    assert json.loads(Path(paths["rollup.json"]).read_text("utf-8")) == rollup
    with open(paths["rollup.csv"], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(r["level"], r["session"]) for r in rows] == [("all", ""), ("project", ""), ("session", "MR1"),
                                                          ("session", "MR2")]
    assert all(int(rows[0][k]) == rollup["totals"][k] for k in SUMMARY_FIELDS)
    root = Dom(Path(paths["rollup.html"]).read_text("utf-8")).root
    assert root.find(id="overall-status").attrs["data-status"] == rollup["totals"]["status"]
    shown = {e.attrs["data-total"]: int(e.attrs["data-value"]) for e in root.find_all(data_total=None)}
    assert all(shown[k] == rollup["totals"][k] for k in (*SUMMARY_FIELDS, "projects", "sessions", "resources"))
    sessions = {e.attrs["data-session"]: e for e in root.find_all(data_session=None)}
    assert set(sessions) == {"MR1", "MR2"}
    cell = sessions["MR1"].find(data_count="totalEntries")
    assert int(cell.text) == rollup["projects"][0]["sessions"][0]["totalEntries"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rollup.csv", "rollup.html", "rollup.json"]


def test_rollup_html_escapes_names(tmp_path: Path) -> None:
    report = synthetic_report(10)
    for resource in report["resources"]:
        resource["identity"]["session"] = "<script>alert(1)</script>&\"s\""
    paths = write_rollup(str(tmp_path), build_rollup([report]))
    html = Path(paths["rollup.html"]).read_text("utf-8")
    assert "<script" not in html.lower() and "&lt;script&gt;" in html


# --- finding and loading reports ---------------------------------------------------------------------


def test_folders_are_searched_for_reports(mitigated: Path) -> None:
    found = find_reports([str(mitigated)])
    assert sorted(Path(p).name for p in found) == ["mitigation-report.json", "survey-report.json"]
    assert find_reports([str(mitigated / "survey-report.json"), str(mitigated)]) == [
        str(mitigated / "survey-report.json"), str(mitigated / "mitigation" / "mitigation-report.json")]


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not a JSON report"),
    ("[1, 2]", "its JSON is not an object"),
    ('{"reportType": "restore"}', "is not a survey or mitigation report"),
    ('{"reportType": "survey", "resources": []}', "is not a valid survey report"),
    ('{"reportType": "mitigation", "resources": []}', "is not a valid mitigation report"),
])
def test_unusable_reports_raise_report_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(content, "utf-8")
    with pytest.raises(ReportError, match=message):
        load_report(find_reports([str(path)])[0])


def test_missing_reports_and_empty_folders_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="does not exist"):
        find_reports([str(tmp_path / "missing.json")])
    with pytest.raises(ReportError, match="cannot read report"):
        load_report(str(tmp_path / "missing.json"))
    with pytest.raises(ReportError, match=r"holds no survey-report\.json or mitigation-report\.json"):
        find_reports([str(tmp_path)])


# --- the command ---------------------------------------------------------------------------------------


def test_cli_rollup_of_two_sessions(cli: CliRunner, tmp_path: Path, demo_report: dict[str, Any]) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, session, run in ((a, "MR1", 1), (b, "MR2", 2)):
        folder.mkdir()
        (folder / "survey-report.json").write_text(json.dumps(as_session(demo_report, session, run)), "utf-8")
    out = tmp_path / "out"
    result = cli("rollup", a, b / "survey-report.json", "--output", out)
    assert result.returncode == 0, result.stderr + result.stdout
    rollup = json.loads((out / "rollup.json").read_text("utf-8"))
    validate(rollup, ROLLUP_SCHEMA)
    assert rollup["totals"]["sessions"] == 2
    assert rollup["totals"]["totalEntries"] == 2 * sums(demo_report)["totalEntries"]
    assert (out / "rollup.csv").is_file() and (out / "rollup.html").is_file()
    events = [line["event"] for line in result.log_lines()]
    assert events.count("report read") == 2 and "rollup written" in events


def test_cli_rollup_pulls_in_the_survey_of_a_mitigation(cli: CliRunner, tmp_path: Path, mitigated: Path) -> None:
    out = tmp_path / "out"
    result = cli("rollup", mitigated / "mitigation", "--output", out)
    assert result.returncode == 0, result.stderr + result.stdout
    rollup = json.loads((out / "rollup.json").read_text("utf-8"))
    assert [i["reportType"] for i in rollup["inputs"]] == ["mitigation", "survey"]
    assert rollup["totals"]["totalEntries"] > 0 and rollup["totals"]["totalMovedFiles"] > 0
    assert not rollup["warnings"]


def test_cli_rollup_errors_are_clear(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text("{oops", "utf-8")
    for argument, message in ((tmp_path / "missing", "does not exist"), (bad, "is not a JSON report")):
        result = cli("rollup", argument, "--output", tmp_path / "out")
        assert result.returncode == 3
        [line] = [line for line in result.log_lines() if line.get("event") == "stopped"]
        assert line["kind"] == "ReportError" and message in line["error"]
        assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_schema_rejects_unknown_and_missing_fields(demo_report: dict[str, Any]) -> None:
    from container_app.core.errors import ReportValidationError

    rollup = build_rollup([demo_report])
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d["projects"][0]["sessions"][0].update(extra=1),
        lambda d: d["totals"].update(extra=1),
        lambda d: d["projects"][0].pop("sessionCount"),
        lambda d: d["totals"].update(totalEntries=-1),
    ]
    for mutate in mutations:
        broken = copy.deepcopy(rollup)
        mutate(broken)
        with pytest.raises(ReportValidationError):
            validate(broken, ROLLUP_SCHEMA)


def test_a_project_surveys_roll_up_equals_the_roll_up_of_its_report(cli: CliRunner, tmp_path: Path) -> None:
    """The survey builds its roll-up from each resource's summary (issue 17: a million-file report is not read
    back): the same document as `rollup` makes from the survey report it wrote."""
    from container_app.demo import synth
    from container_app.demo.synth import InstanceSpec, ScanSpec, SessionSpec

    study = InstanceSpec(sop_instance_uid=synth.uid("rollup", "x"), study_instance_uid=synth.uid("rollup", "s"))
    conforming = ScanSpec.conforming("1", synth.series_instances(study, 1, 3))
    sessions = [SessionSpec(label="S1", scans=(conforming,)), SessionSpec(label="S2", scans=(conforming,))]
    root = synth.build_project(tmp_path / "archive", "P1", sessions).root
    out = tmp_path / "out"
    result = cli("survey", root, "--output", out, "--jobs", "1")
    assert result.returncode == 0, result.stderr + result.stdout
    written = json.loads((out / "rollup.json").read_text("utf-8"))
    report_path = str(out / "survey-report.json")
    expected = build_rollup([load_report(report_path)], [report_path])
    assert written["totals"]["sessions"] == 2
    for document in (written, expected):
        document.pop("createdAt", None)
    assert written == expected
