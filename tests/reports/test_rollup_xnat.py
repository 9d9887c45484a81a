"""`rollup --xnat-project ID`: the roll-up of a project after a bulk launch, fetched from the XNAT stand-in.

A project of 300 sessions, each with the reports a container uploaded to its RESOURCE_SURVEY (real demo
reports, surveyed and mitigated by the CLI, copied per session as each container of a bulk launch writes its
own run), with faults on some sessions' downloads (500s that recover, 500s that do not, dropped connections,
401), a session never surveyed, one whose RESOURCE_SURVEY holds no report, a corrupt report, and a report
older than its session. The CLI runs as a subprocess with XNAT_HOST / XNAT_USER / XNAT_PASS, as in a container.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from container_app.core.errors import ExitCode
from container_app.reports.rollup_xnat import parse_report_time, parse_xnat_time
from container_app.reports.schemas import ROLLUP_SCHEMA, validate
from tests.helpers.reports import Dom, make_demo
from tests.helpers.terminal import run_on_terminal
from tests.helpers.xnat import clean, run_cli, xnat_env
from tests.xnat_standin import StandIn, catalogs, run_standin

BULK, SMALL = "BULK", "SMALL"
SESSIONS = 300
SURVEY, MITIGATION = "survey-report.json", "mitigation-report.json"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """A real survey report and the real mitigation report made from it (the demo, through the CLI)."""
    from container_app.cli.main import main

    out = tmp_path_factory.mktemp("demo")
    survey = make_demo(out)
    code = main(["mitigate", str(out / "archive"), "--report", str(out / SURVEY), "--output", str(out / "m"),
                 "--log-format", "json"])
    assert code in (0, 1)
    mitigation = json.loads((out / "m" / MITIGATION).read_text("utf-8"))
    assert mitigation["runId"] == survey["runId"]
    return survey, mitigation


def as_container_run(report: dict[str, Any], run: int, finished: dt.datetime) -> dict[str, Any]:
    """The report as one container of a bulk launch writes it: its own run, /input, no project or session."""
    other = copy.deepcopy(report)
    other["runId"] = f"{finished.strftime('%Y%m%dT%H%M%SZ')}-{run:08x}"
    other["root"] = "/input"
    other["finishedAt"] = finished.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    for resource in other["resources"]:
        resource["identity"]["project"] = resource["identity"]["session"] = None
    return other


def put_reports(session: Path, files: dict[str, bytes]) -> None:
    """RESOURCE_SURVEY as the output handler leaves it: the files and a catalog naming them."""
    folder = session / "RESOURCES" / "RESOURCE_SURVEY"
    folder.mkdir(parents=True)
    catalog = folder / "RESOURCE_SURVEY_catalog.xml"
    catalog.write_text(catalogs.new_catalog_xml("RESOURCE_SURVEY"), "utf-8")
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    catalogs.add_entries(catalog, lambda prefix: [
        catalogs.plain_entry_xml(prefix, name, digest=None, fmt="REPORT", content=None, user="admin",
                                 when="2026-01-01T00:00:00.000") for name in files])


def dump(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def label(i: int) -> str:
    return f"S{i:03d}"


NEVER, EMPTY, STALE, CORRUPT, RESURVEYED = label(60), label(61), label(70), label(100), label(90)
MITIGATED = {label(i) for i in range(80, 90)}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, pair: tuple[dict[str, Any], dict[str, Any]]) -> Path:
    survey, mitigation = pair
    root = tmp_path_factory.mktemp("xnat") / "archive"
    now = dt.datetime.now(dt.UTC)
    for i in range(SESSIONS):
        session = root / BULK / "arc001" / label(i)
        session.mkdir(parents=True)
        if label(i) == NEVER:
            continue
        finished = now - dt.timedelta(hours=5) if label(i) == STALE else now - dt.timedelta(minutes=1)
        files = {SURVEY: dump(as_container_run(survey, i, finished)), "survey-summary.csv": b"a,b\n"}
        if label(i) == EMPTY:
            files = {"survey-summary.csv": b"a,b\n"}
        if label(i) in MITIGATED:
            files[MITIGATION] = dump(as_container_run(mitigation, i, finished))
        if label(i) == CORRUPT:
            files[SURVEY] = b'{"reportType": "survey", '
        if label(i) == RESURVEYED:  # a report in a subfolder is not the container's own /output level
            files["resurvey/" + SURVEY] = dump(as_container_run(survey, 10_000, finished))
        put_reports(session, files)
    # A small project for the grace period: its one report finished 30 minutes before the session changed.
    session = root / SMALL / "arc001" / "ONE"
    session.mkdir(parents=True)
    put_reports(session, {SURVEY: dump(as_container_run(survey, 1, now - dt.timedelta(minutes=30)))})
    return root


@pytest.fixture
def server(archive: Path) -> Any:
    with run_standin(archive) as standin:
        yield standin


def local_zone() -> str:
    """The stand-in writes XNAT's dates in local time, as XNAT does in its own zone."""
    offset = time.localtime().tm_gmtoff // 60
    return f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"


def rollup(server: StandIn, out: Path, project: str, *extra: str) -> tuple[Any, dict[str, Any] | None]:
    env = xnat_env(server)
    result = run_cli("rollup", "--xnat-project", project, "--output", out, "--xnat-timezone", local_zone(), *extra,
                     env=env)
    clean(result, env["XNAT_PASS"])
    written = out / "rollup.json"
    return result, json.loads(written.read_text("utf-8")) if written.is_file() else None


def events(result: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_a_bulk_launch_of_300_sessions_with_faults(server: StandIn, tmp_path: Path,
                                                  pair: tuple[dict[str, Any], dict[str, Any]]) -> None:
    survey, mitigation = pair
    ids = {label(i): server.experiment_id(BULK, label(i)) for i in range(SESSIONS)}

    def download(session: str) -> str:
        return rf"^GET /data/experiments/{ids[session]}/resources/RESOURCE_SURVEY/files/survey-report\.json$"

    server.faults.set(download(label(10)), "500", times=2)  # transient: the client's retries get it
    server.faults.set(download(label(20)), "500")
    server.faults.set(download(label(30)), "drop")
    server.faults.set(download(label(40)), "401")
    server.faults.set(rf"^GET /data/experiments/{ids[label(50)]}/resources/RESOURCE_SURVEY/files$", "503")
    result, document = rollup(server, tmp_path / "out", BULK)
    assert result.returncode == ExitCode.FINDINGS, result.stdout[-3000:] + result.stderr[-3000:]
    assert document is not None
    validate(document, ROLLUP_SCHEMA)

    xnat = document["xnat"]
    assert xnat["project"] == BULK and xnat["sessionsListed"] == SESSIONS
    assert [s["label"] for s in xnat["neverSurveyed"]] == [NEVER, EMPTY]
    assert [s["label"] for s in xnat["staleReports"]] == [STALE]
    [stale] = xnat["staleReports"]
    assert stale["report"] == SURVEY and stale["id"] == ids[STALE]
    assert parse_report_time(stale["finishedAt"]) < parse_report_time(stale["lastModified"])  # type: ignore[operator]
    problems = {p["label"]: p for p in xnat["fetchProblems"]}
    assert set(problems) == {label(20), label(30), label(40), label(50), CORRUPT}
    assert problems[label(20)]["status"] == 500 and "500" in problems[label(20)]["error"]
    assert problems[label(30)]["status"] is None and "dropped" in problems[label(30)]["error"]
    assert problems[label(40)]["status"] == 401 and "permission" in problems[label(40)]["error"]
    assert problems[label(50)]["status"] == 503
    assert problems[CORRUPT]["status"] is None and "not a JSON report" in problems[CORRUPT]["error"]
    counted = SESSIONS - 2 - len(problems)
    assert xnat["sessionsWithReports"] == counted
    assert xnat["reportsFetched"] == counted + len(MITIGATED)

    # The counted sessions, by their XNAT labels, each summed once (the resurvey in a subfolder is not read).
    [project] = document["projects"]
    assert project["project"] == BULK and project["sessionCount"] == counted
    assert {s["session"] for s in project["sessions"]} == set(ids) - {NEVER, EMPTY} - set(problems)
    assert all(s["identifiedBy"] == "identity" for s in project["sessions"])
    totals = document["totals"]
    entries = sum(r["xnat"]["totalEntries"] for r in survey["resources"])
    assert totals["sessions"] == counted and totals["totalEntries"] == counted * entries
    assert totals["resources"] == counted * len(survey["resources"])
    assert totals["mitigatedResources"] == len(MITIGATED) * len(mitigation["resources"])
    moved = sum(r["xnat"]["totalMovedFiles"] for r in mitigation["resources"])
    assert moved > 0 and totals["totalMovedFiles"] == len(MITIGATED) * moved
    by_label = {s["session"]: s for s in project["sessions"]}
    assert by_label[label(10)]["totalEntries"] == entries  # fetched after two 500s
    fired = [f for f in server.faults.fired if ids[label(10)] in f.path]
    assert len(fired) == 2
    downloads = [r for r in server.requests_log if r.path.endswith(f"{ids[label(10)]}/resources/RESOURCE_SURVEY/files/"
                                                                   f"{SURVEY}")]
    assert [r.status for r in downloads] == [500, 500, 200]

    # One progress line per session; the last lines say what was written and that it is incomplete.
    lines = events(result)
    progress = [e for e in lines if e.get("event") == "session rolled up"]
    assert [e["label"] for e in progress] == sorted(ids)
    assert {e["session"] for e in progress} == set(ids.values())
    outcomes = [e["outcome"] for e in progress]
    assert outcomes.count("fetch problem") == len(problems) and outcomes.count("never surveyed") == 2
    [written] = [e for e in lines if e.get("event") == "rollup written"]
    assert written["fetch_problems"] == len(problems) and written["stale_reports"] == 1
    assert any(e.get("event") == "rollup incomplete" for e in lines)

    # The CSV and the HTML list the same sessions.
    with (tmp_path / "out" / "rollup.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["session"] for r in rows if r["level"] == "never-surveyed"} == {NEVER, EMPTY}
    assert {r["session"] for r in rows if r["level"] == "stale-report"} == {STALE}
    assert {r["session"] for r in rows if r["level"] == "fetch-problem"} == set(problems)
    assert all(r["detail"] for r in rows if r["level"] == "fetch-problem")
    assert sum(1 for r in rows if r["level"] == "session") == counted
    page = Dom((tmp_path / "out" / "rollup.html").read_text("utf-8")).root
    for key, labels in (("neverSurveyed", {NEVER, EMPTY}), ("staleReports", {STALE}),
                        ("fetchProblems", set(problems))):
        table = page.find(data_list=key)
        assert {row.attrs["data-session"] for row in table.find_all(data_session=None)} == labels


def test_the_grace_period_and_a_session_changed_later(server: StandIn, tmp_path: Path) -> None:
    """The one report finished 30 minutes before the session's last change: within the default 60, past 10."""
    catalog = next((server.archive.root / SMALL / "arc001" / "ONE").rglob("*_catalog.xml"))
    os.utime(catalog)  # the session changes now, as XNAT's save of its resource would change it
    result, document = rollup(server, tmp_path / "default", SMALL)
    assert result.returncode == ExitCode.OK and document is not None
    assert document["xnat"]["staleReports"] == [] and document["xnat"]["fetchProblems"] == []
    assert document["totals"]["sessions"] == 1
    result, document = rollup(server, tmp_path / "ten", SMALL, "--modified-grace", "10")
    assert result.returncode == ExitCode.OK and document is not None
    assert [s["label"] for s in document["xnat"]["staleReports"]] == ["ONE"]
    assert document["xnat"]["modifiedGraceMinutes"] == 10


def test_a_project_xnat_does_not_list_stops_with_a_clear_message(server: StandIn, tmp_path: Path) -> None:
    result, document = rollup(server, tmp_path / "out", "NOSUCH")
    assert result.returncode == ExitCode.FAILURE and document is None
    [stopped] = [e for e in events(result) if e.get("event") == "stopped"]
    assert "XNAT has no project 'NOSUCH'" in stopped["error"]
    assert not (tmp_path / "out").exists()


def test_usage_errors(tmp_path: Path, server: StandIn) -> None:
    env = xnat_env(server)
    for args, message in (((tmp_path,), "give no REPORT"), ((), "is not a time zone")):
        extra = ("--xnat-timezone", "Mars/Olympus") if not args else ()
        result = run_cli("rollup", *args, "--xnat-project", BULK, "--output", tmp_path / "out", *extra, env=env)
        assert result.returncode == ExitCode.USAGE and message in result.stderr
        clean(result)
    result = run_cli("rollup", "--output", tmp_path / "out", env=env)
    assert result.returncode == ExitCode.USAGE and "--xnat-project ID" in result.stderr
    result = run_cli("rollup", "--xnat-project", BULK, "--output", tmp_path / "out", env={})
    assert result.returncode == ExitCode.FAILURE and "XNAT_HOST" in result.stdout
    clean(result)


def test_xnat_listing_dates() -> None:
    zone = dt.timezone(dt.timedelta(hours=2))
    # The shape of NRG's experiment-listing fixtures: XFT's local time, milliseconds, no zone.
    assert parse_xnat_time("2019-03-05 16:46:37.103", zone) == dt.datetime(2019, 3, 5, 14, 46, 37, 103000,
                                                                          tzinfo=dt.UTC)
    assert parse_xnat_time("2019-03-05 16:46:37", dt.UTC) == dt.datetime(2019, 3, 5, 16, 46, 37, tzinfo=dt.UTC)
    for nothing in ("", None, "yesterday", "2019-13-05 16:46:37"):
        assert parse_xnat_time(nothing, dt.UTC) is None


def test_a_person_at_a_terminal_sees_a_bar_of_sessions(server: StandIn, tmp_path: Path) -> None:
    """Issue 16: on a terminal the roll-up counts sessions with a bar that ends at the project's total;
    the per-session log lines are still printed (above it)."""
    env = xnat_env(server)
    run = run_on_terminal("rollup", "--xnat-project", BULK, "--output", tmp_path / "out", "--xnat-timezone",
                          local_zone(), env=env)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", run.output)
    assert run.returncode == ExitCode.FINDINGS, text[-2000:]  # the corrupt session's report: see above
    counts = [int(done) for done, total in re.findall(r"(\d+)/(\d+) sessions", text) if int(total) == SESSIONS]
    assert counts and counts[-1] == SESSIONS and counts == sorted(counts)
    assert "session rolled up" in text and "Traceback" not in text
    assert env["XNAT_PASS"] not in run.output
