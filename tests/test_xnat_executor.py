"""Mitigation through XNAT's REST API (issue 7): real HTTP to the XNAT stand-in, the CLI run as a subprocess
with XNAT_HOST / XNAT_USER / XNAT_PASS and `--executor xnat`, as the Container Service runs it.

The archive holds XNAT's conformance scan as scan 5 of session SESS in project Test. The CLI's ROOT is a
link to the session folder, so (as inside a container, where the session is mounted at /input) the
mount shows neither project nor session: `--xnat-session` names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from container_app.mitigation.xnat.client import Redactor, RetryPolicy, display_path, public_url
from container_app.mitigation.xnat.executor import BACKUP_RESOURCE, compare_surveys, parse_scan_uri

standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
run_standin = standin_package.run_standin

REPO = Path(__file__).resolve().parents[1]
CONFORMANCE = next((p / "xnat-scan5-duplicates" for p in (REPO / "tests" / "data" / "conformance",
                                                           REPO.parent / "shared" / "conformance")
                    if (p / "xnat-scan5-duplicates").is_dir()), None)
pytestmark = pytest.mark.skipif(CONFORMANCE is None, reason="conformance data not found")

PROJECT, SESSION = "Test", "SESS"
CATALOG = "scan_5_catalog.xml"


# --- fixtures ----------------------------------------------------------------------------------------


@dataclass
class Site:
    tmp: Path
    archive: Path  # the stand-in's archive root
    session: Path  # archive/Test/arc001/SESS
    resource: Path  # .../SCANS/5/DICOM
    mount: Path  # a link to the session folder: what the container sees at /input
    expected: frozenset[str]
    originals: dict[str, str]  # name -> sha256 of the 65 files as archived

    @property
    def backup(self) -> Path:
        return self.session / "RESOURCES" / BACKUP_RESOURCE


@pytest.fixture
def site(tmp_path: Path) -> Site:
    assert CONFORMANCE is not None
    archive = tmp_path / "archive"
    session = archive / PROJECT / "arc001" / SESSION
    resource = session / "SCANS" / "5" / "DICOM"
    resource.mkdir(parents=True)
    for entry in sorted(CONFORMANCE.iterdir()):
        if entry.name != "expectedNames.txt":
            shutil.copy2(entry, resource / entry.name)  # keeps the files' times: XNAT keeps the newest copy
    mount = tmp_path / "input"
    mount.symlink_to(session, target_is_directory=True)
    expected = frozenset((CONFORMANCE / "expectedNames.txt").read_text("utf-8").split())
    return Site(tmp_path, archive, session, resource, mount, expected, files(resource))


def files(folder: Path) -> dict[str, str]:
    """sha256 of every file in a resource folder, catalogs left out."""
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith("_catalog.xml") and not p.name.startswith(".")}


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def standin(site: Site) -> Iterator[Any]:
    with run_standin(site.archive, mitigation_api=True) as server:
        yield server


@pytest.fixture
def old_standin(site: Site) -> Iterator[Any]:
    """An XNAT without the survey and mitigation API (1.8.7)."""
    with run_standin(site.archive, mitigation_api=False) as server:
        yield server


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    out: Path

    @property
    def text(self) -> str:
        return self.stdout + self.stderr

    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "mitigation-report.json").read_text("utf-8"))  # type: ignore[no-any-return]


def xnat_env(server: Any, user: str = "admin") -> dict[str, str]:
    alias, secret = server.issue_token(user)
    return {"XNAT_HOST": server.url, "XNAT_USER": alias, "XNAT_PASS": secret}


def run_cli(*args: str | Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "XNAT_RESOURCE_SURVEY_HTTP_BACKOFF": "0.02", **env}
    for name in ("XNAT_HOST", "XNAT_USER", "XNAT_PASS"):
        if name not in env:
            full_env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "container_app", *map(str, args), "--log-format", "json"],
                          capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO)


def mitigate(site: Site, env: dict[str, str], *extra: str, out: str = "out", session: str | None = "Test_E00001",
             timeout: float = 300) -> Run:
    output = site.tmp / out
    shutil.rmtree(output, ignore_errors=True)  # each launch gets a fresh /output, as in XNAT
    args: list[str | Path] = ["mitigate", site.mount, "--output", output, "--executor", "xnat", "--jobs", "1"]
    if session is not None:
        args.append(f"--xnat-session={session}")
    result = run_cli(*args, *extra, env=env, timeout=timeout)
    return Run(result.returncode, result.stdout, result.stderr, output)


def clean(run: Run | subprocess.CompletedProcess[str], *secrets: str) -> None:
    """No traceback, no secret, every stdout line JSON (the container's log)."""
    text = run.stdout + run.stderr
    assert "Traceback" not in text, text[-3000:]
    for secret in secrets:
        assert secret not in text
    for line in run.stdout.splitlines():
        json.loads(line)


def no_secret_in(folder: Path, *secrets: str) -> None:
    """Reports, journal, re-survey: no file the run wrote holds a secret."""
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), path


def catalog_entries(resource: Path) -> list[str]:
    return re.findall(r"<cat:entry\b[^>]*/>", (resource / CATALOG).read_text("utf-8"))


def attribute(entry: str, name: str) -> str | None:
    match = re.search(rf'\s{name}="([^"]*)"', entry)
    return None if match is None else match.group(1)


def assert_nothing_lost(site: Site, *more: Path) -> None:
    """Every original's bytes are somewhere: in the resource, in RESOURCE_SURVEY_BACKUP or XNAT's cache."""
    present = set(files(site.resource).values())
    for folder in (site.backup, *more):
        if folder.exists():
            present |= set(tree(folder).values())
    missing = [name for name, digest in site.originals.items() if digest not in present]
    assert not missing, f"lost {len(missing)} original(s), e.g. {missing[:3]}"


def assert_end_state(site: Site) -> None:
    assert set(files(site.resource)) == site.expected
    entries = catalog_entries(site.resource)
    assert sorted(attribute(e, "URI") or "" for e in entries) == sorted(site.expected)


# --- with XNAT's own mitigation API ------------------------------------------------------------------


def test_api_way_mitigates_in_place_and_confirms(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    run = mitigate(site, env)
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 0, run.text[-3000:]

    assert_end_state(site)
    entries = catalog_entries(site.resource)
    assert len(entries) == 60
    assert all('xsi:type="cat:dcmEntry"' in e and attribute(e, "UID") for e in entries)

    report = run.report()
    assert report["executor"] == "xnat"
    assert report["xnatServer"]["way"] == "api" and report["xnatServer"]["mitigationApi"] is True
    (resource,) = report["resources"]
    assert resource["way"] == "api" and "own resource survey and mitigation API" in resource["wayReason"]
    assert resource["status"] == "MITIGATED"
    assert resource["xnatSurvey"]["verdict"] == "agree"
    assert resource["resurveyStatus"] == "CONFORMING" == resource["requestStatus"]
    xnat = resource["xnat"]  # XNAT's own report, fetched, with paths relative to ROOT
    assert xnat["resourceSurveyRequestId"] == resource["xnatRequestId"] > 0
    assert (xnat["totalMovedFiles"], xnat["totalRemovedFiles"], xnat["totalFileErrors"]) == (31, 36, 0)
    assert all(p.startswith("SCANS/5/DICOM/") for p in xnat["movedFiles"])
    assert {v.rsplit("/", 1)[-1] for v in xnat["movedFiles"].values()} <= site.expected
    assert all(a["catalogEntryDowngraded"] is False for a in resource["actions"] if a["outcome"] == "DONE"
               and a["action"] != "RETAIN")
    assert (run.out / "resurvey" / "survey-report.json").is_file()
    assert resource["catalogEntries"] == {"downgraded": 0, "dcmEntries": 60, "plainEntries": 0}
    no_secret_in(run.out, env["XNAT_PASS"], env["XNAT_USER"])

    calls = {(r.method, re.sub(r"/\d+", "/N", r.path)) for r in standin.requests_log}
    assert ("POST", "/xapi/resources/survey/resource/N") in calls
    assert ("POST", "/xapi/resources/mitigate/request/N") in calls
    assert ("GET", "/xapi/resources/mitigate/request/N/report") in calls
    assert not any(r.method in ("PUT", "DELETE") and "/files/" in r.path for r in standin.requests_log)

    # a relaunch finds nothing to do
    before = tree(site.session)
    again = mitigate(site, env, out="out2")
    clean(again)
    assert again.returncode == 0 and tree(site.session) == before

    # restore cannot undo XNAT's own mitigation: it says where XNAT keeps the originals
    restored = run_cli("restore", "--report", run.out / "mitigation-report.json", env=env)
    clean(restored)
    assert restored.returncode == 1
    restore_report = json.loads((run.out / "restore-report.json").read_text("utf-8"))
    reasons = {f.get("reason", "") for r in restore_report["resources"] for f in r["files"]}
    assert any("XNAT's own mitigation API" in r for r in reasons)


def test_project_mount_finds_sessions_by_label(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    output = site.tmp / "out"
    result = run_cli("mitigate", site.archive / PROJECT / "arc001", "--output", output, "--executor", "xnat",
                     f"--xnat-project={PROJECT}", "--jobs", "1", env=env)
    clean(result)
    assert result.returncode == 0, result.stdout[-3000:]
    assert_end_state(site)
    (resource,) = json.loads((output / "mitigation-report.json").read_text())["resources"]
    assert resource["xnatTarget"]["experimentId"] == standin.experiment_id(PROJECT, SESSION)


def test_another_naming_template_at_xnat_is_refused(site: Site) -> None:
    with run_standin(site.archive, template="${SOPInstanceUID}") as server:
        env = xnat_env(server)
        before = tree(site.session)
        run = mitigate(site, env)
        clean(run)
        assert run.returncode == 1
        (resource,) = run.report()["resources"]
        assert resource["status"] == "FAILED" and resource["xnatSurvey"]["verdict"] == "template"
        assert "dicomFileNameTemplate" in resource["statusReason"]
        assert tree(site.session) == before
        # our own survey request is not left open
        assert server.requests_log and any(r.method == "DELETE" and "/survey/request/" in r.path
                                           for r in server.requests_log)


def test_a_resource_changed_since_the_survey_is_refused(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    out = site.tmp / "first"
    surveyed = run_cli("survey", site.mount, "--output", out, "--jobs", "1", env={})
    assert surveyed.returncode == 0
    (site.resource / "late-arrival.dcm").write_bytes(b"x")
    before = tree(site.session)
    run = mitigate(site, env, "--report", str(out / "survey-report.json"))
    clean(run)
    assert run.returncode == 1
    (resource,) = run.report()["resources"]
    assert resource["status"] == "STALE" and "added since the survey" in resource["statusReason"]
    assert tree(site.session) == before


def test_bounded_wait_then_a_relaunch_collects_xnats_work(site: Site) -> None:
    with run_standin(site.archive, mitigation_delay=0.4) as server:
        env = xnat_env(server)
        first = mitigate(site, env, "--xnat-timeout=1")
        clean(first)
        assert first.returncode == 1
        (resource,) = first.report()["resources"]
        assert resource["status"] in ("FAILED", "PARTIAL")
        assert "within 1 s" in resource["statusReason"]
        # XNAT carries on; a relaunch picks up from XNAT's state and waits for it
        second = mitigate(site, env, "--xnat-timeout=120", out="out2")
        clean(second)
        assert second.returncode == 0, second.text[-3000:]
        assert_end_state(site)


def test_mitigation_failing_inside_xnat_is_reported_per_file(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    standin.faults.set("mitigate", "mitigation_error", times=1)
    run = mitigate(site, env)
    clean(run)
    assert run.returncode == 1
    (resource,) = run.report()["resources"]
    assert resource["status"] in ("PARTIAL", "FAILED")
    assert "ERROR" in resource["statusReason"]
    xnat = resource["xnat"]
    assert xnat["totalFileErrors"] > 0 or xnat["catalogWriteError"]
    assert any(a["outcome"] == "FAILED" for a in resource["actions"]) or xnat["catalogWriteError"]
    assert_nothing_lost(site, standin.cache_root)


# --- without it: file operations, only when allowed -------------------------------------------------


def test_without_the_api_file_operations_are_refused_by_default(site: Site, old_standin: Any) -> None:
    env = xnat_env(old_standin)
    before = tree(site.session)
    run = mitigate(site, env)
    clean(run, env["XNAT_PASS"])
    assert run.returncode == 1
    assert tree(site.session) == before and not site.backup.exists()
    assert "1.8.8" in run.stdout and "--rest-file-operations=allow" in run.stdout
    (resource,) = run.report()["resources"]
    assert resource["way"] is None and "nothing was changed" in resource["statusReason"]
    assert resource["requestStatus"] == "DIVERGENT"
    assert not any(r.method in ("PUT", "POST", "DELETE") and "/files/" in r.path for r in old_standin.requests_log)


def test_file_operations_back_up_then_rename_and_restore(site: Site, old_standin: Any) -> None:
    env = xnat_env(old_standin)
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run, env["XNAT_PASS"], env["XNAT_USER"])
    assert run.returncode == 0, run.text[-3000:]
    assert_end_state(site)
    renamed_bytes = files(site.resource)

    # every original that changed sits in RESOURCE_SURVEY_BACKUP under its sha256, with a manifest
    report = run.report()
    (resource,) = report["resources"]
    assert resource["way"] == "file-operations" and resource["status"] == "MITIGATED"
    xnat = resource["xnat"]
    assert (xnat["totalMovedFiles"], xnat["totalRemovedFiles"], xnat["totalFileErrors"]) == (31, 36, 0)
    backups = files(site.backup)
    changed = {a["path"].rsplit("/", 1)[-1] for a in resource["actions"] if a["action"] != "RETAIN"}
    assert len(changed) == 36
    for name in changed:
        assert site.originals[name] in backups  # named by the content's sha256 ...
        assert backups[site.originals[name]] == site.originals[name]  # ... which the bytes have
    manifests = [p for p in site.backup.iterdir() if p.name.startswith("manifest-")]
    assert [p.name for p in manifests] == [resource["backupManifest"]]
    manifest = json.loads(manifests[0].read_text("utf-8"))
    assert {f["originalName"]: f["backupName"] for f in manifest["files"]} == {n: site.originals[n] for n in changed}
    assert CONFORMANCE is not None
    assert all(f["size"] == (CONFORMANCE / f["originalName"]).stat().st_size for f in manifest["files"])
    assert not any(name in p.name for p in site.backup.iterdir() for name in changed)  # no identifying names

    # the downgraded entries, per file and in total, and in the catalog itself
    renames = [a for a in resource["actions"] if a["action"] == "RENAME"]
    assert len(renames) == 31 and all(a["catalogEntryDowngraded"] is True for a in renames)
    assert resource["catalogEntries"]["downgraded"] == 31
    entries = catalog_entries(site.resource)
    plain = [e for e in entries if "cat:dcmEntry" not in e]
    assert len(plain) == 31 and all(attribute(e, "UID") is None for e in plain)
    assert "cat:entry" in resource["statusReason"]
    assert resource["resurveyStatus"] == "CONFORMING"
    no_secret_in(run.out, env["XNAT_PASS"], env["XNAT_USER"])

    # a relaunch is a no-op
    before = tree(site.session)
    again = mitigate(site, env, "--rest-file-operations=allow", out="out2")
    clean(again)
    assert again.returncode == 0 and tree(site.session) == before

    # restore brings back the 65 originals byte for byte, from the backups in XNAT
    restored = run_cli("restore", "--report", run.out / "mitigation-report.json", env=env)
    clean(restored, env["XNAT_PASS"])
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert files(site.resource) == site.originals
    restore_report = json.loads((run.out / "restore-report.json").read_text("utf-8"))
    assert restore_report["totals"]["RESTORED"] == 36 and restore_report["totals"]["REFUSED"] == 0
    assert "cat:entry" in restore_report["resources"][0]["note"]
    # and a second restore changes nothing
    again_restored = run_cli("restore", "--report", run.out / "mitigation-report.json", env=env)
    assert again_restored.returncode == 0 and files(site.resource) == site.originals
    assert renamed_bytes  # (the mitigated state was real)


# --- faults: random, seeded; then a relaunch without them ------------------------------------------

# Request categories of the stand-in each way uses, and how many journal lines a run writes (crash points).
FAULT_TARGETS = {True: ["survey", "mitigate", "listing", "resource", "any"],
                 False: ["upload", "delete", "files", "download", "refresh", "listing", "resource", "any"]}
JOURNAL_LINES = {True: 7, False: 150}


def inject(server: Any, rng: random.Random, api: bool) -> tuple[list[tuple[str, str, float]], str]:
    """1 to 3 stand-in faults at random requests, and in half the runs a SIGKILL at a random step."""
    chosen = []
    for _ in range(rng.randint(1, 3)):
        target = rng.choice(FAULT_TARGETS[api])
        kinds = ["500", "503", "drop", *(["partial_upload"] * 2 if target == "upload" else [])]
        kind = rng.choice(kinds)
        probability = round(rng.uniform(0.05, 0.15) if target == "any" else rng.uniform(0.1, 0.4), 2)
        server.faults.set(target, kind, probability=probability, seed=rng.randrange(1 << 30))
        chosen.append((target, kind, probability))
    crash = f"crash_after_journal={rng.randint(1, JOURNAL_LINES[api])}" if rng.random() < 0.5 else ""
    return chosen, crash


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("api", [True, False], ids=["api", "file-operations"])
def test_faults_at_random_steps_then_a_relaunch_reach_the_same_end(site: Site, seed: int, api: bool) -> None:
    extra = () if api else ("--rest-file-operations=allow",)
    with run_standin(site.archive, mitigation_api=api, mitigation_delay=0.02) as server:
        env = xnat_env(server)
        rng = random.Random(seed * 7919 + api)
        chosen, crash = inject(server, rng, api)
        faulty = mitigate(site, {**env, "XNAT_RESOURCE_SURVEY_FAULTS": crash}, *extra, "--xnat-timeout=60")
        context = (chosen, crash, len(server.faults.fired), faulty.returncode)
        assert "Traceback" not in faulty.text, (context, faulty.text[-3000:])
        assert faulty.returncode in (0, 1, 3, -signal.SIGKILL), (context, faulty.text[-2000:])
        assert_nothing_lost(site, server.cache_root)

        server.faults.clear()
        relaunch = mitigate(site, env, *extra, out="out2")
        clean(relaunch)
        assert relaunch.returncode == 0, (context, relaunch.text[-3000:])
        assert_end_state(site)
        assert_nothing_lost(site, server.cache_root)
        entries = catalog_entries(site.resource)
        if api:
            assert all("cat:dcmEntry" in e for e in entries)
        else:  # the backups hold every original that left the resource
            gone = {d for d in site.originals.values() if d not in set(files(site.resource).values())}
            assert gone <= set(files(site.backup).values())


def test_a_crash_between_upload_and_delete_is_finished_by_a_relaunch(site: Site, old_standin: Any) -> None:
    env = xnat_env(old_standin)
    # journal lines: resource start, 36 backups, the manifest, 5 removals (start, done), then the first
    # rename: its start and its verified upload (50); the crash comes before the old name is deleted.
    crashed = mitigate(site, {**env, "XNAT_RESOURCE_SURVEY_FAULTS": "crash_after_journal=50"},
                       "--rest-file-operations=allow")
    assert crashed.returncode == -signal.SIGKILL
    journal = next((site.tmp / "out" / "backup").rglob("journal.jsonl")).read_text("utf-8").splitlines()
    last = json.loads(journal[-1])
    assert (last["step"], last["phase"]) == ("upload", "done")
    old, new = last["path"].rsplit("/", 1)[-1], last["target"].rsplit("/", 1)[-1]
    assert {old, new} <= set(files(site.resource))  # both names: the copy is verified, the original still there
    assert_nothing_lost(site)

    relaunch = mitigate(site, env, "--rest-file-operations=allow", out="out2")
    clean(relaunch)
    assert relaunch.returncode == 0, relaunch.text[-3000:]
    assert_end_state(site)
    assert_nothing_lost(site)


def test_a_cut_off_upload_is_replaced_never_kept(site: Site, old_standin: Any) -> None:
    env = xnat_env(old_standin)
    # Uploads into the DICOM resource leave half a file on disk and fail, more often than retries cover.
    old_standin.faults.set(r"^PUT /data/experiments/[^/]+/scans/5/resources/DICOM/files/", "partial_upload",
                           times=14)
    first = mitigate(site, env, "--rest-file-operations=allow")
    clean(first)
    assert first.returncode == 1
    (resource,) = first.report()["resources"]
    failed = [a for a in resource["actions"] if a["outcome"] == "FAILED"]
    assert failed and all(a["action"] == "RENAME" for a in failed)
    halves = {}
    for action in failed:
        old, new = action["path"].rsplit("/", 1)[-1], action["newPath"].rsplit("/", 1)[-1]
        assert (site.resource / old).exists()  # the original keeps its name
        if (site.resource / new).exists():  # a cut-off copy, on disk but not in XNAT's catalog
            assert (site.resource / new).stat().st_size < (site.resource / old).stat().st_size
            halves[new] = site.originals[old]
    assert halves
    assert_nothing_lost(site)

    relaunch = mitigate(site, env, "--rest-file-operations=allow", out="out2")
    clean(relaunch)
    assert relaunch.returncode == 0, relaunch.text[-3000:]
    assert_end_state(site)
    now = files(site.resource)
    assert all(now[name] == digest for name, digest in halves.items())  # replaced by the whole file
    assert_nothing_lost(site)


def test_transient_errors_are_retried_and_never_lose_a_byte(site: Site, old_standin: Any) -> None:
    env = xnat_env(old_standin)
    for target in ("upload", "delete", "download", "files"):
        old_standin.faults.set(target, "503", times=2)
    old_standin.faults.set("upload", "drop", times=1)
    old_standin.faults.set("delete", "drop", times=1)
    run = mitigate(site, env, "--rest-file-operations=allow")
    clean(run)
    assert run.returncode == 0, run.text[-3000:]
    assert len(old_standin.faults.fired) == 10
    assert_end_state(site)
    assert "XNAT request failed, retrying" in run.stdout


# --- credentials, permissions, no server -------------------------------------------------------------


def test_bad_credentials_exit_3_with_a_permissions_message(site: Site, standin: Any) -> None:
    alias, secret = standin.issue_token("admin")
    before = tree(site.session)
    run = mitigate(site, {"XNAT_HOST": standin.url, "XNAT_USER": alias, "XNAT_PASS": secret + "x"})
    clean(run, secret, alias)
    assert run.returncode == 3
    assert "permissions" in run.stdout and "401" in run.stdout
    assert tree(site.session) == before


def test_an_expired_token_is_about_permissions(site: Site, standin: Any) -> None:
    alias, secret = standin.issue_token("admin")
    standin.invalidate_token(alias)
    run = mitigate(site, {"XNAT_HOST": standin.url, "XNAT_USER": alias, "XNAT_PASS": secret})
    clean(run, secret, alias)
    assert run.returncode == 3 and "permissions" in run.stdout


def test_a_member_without_owner_rights_is_told_so(site: Site) -> None:
    with run_standin(site.archive, users={"admin": "secret", "bob": "bobpass"},
                     roles={"bob": {PROJECT: "member"}}) as server:
        env = xnat_env(server, "bob")
        before = tree(site.session)
        run = mitigate(site, env)
        clean(run, env["XNAT_PASS"])
        assert run.returncode == 3
        assert "owner rights" in run.stdout and "403" in run.stdout
        assert tree(site.session) == before


def test_no_server_gives_a_clear_message(site: Site) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    run = mitigate(site, {"XNAT_HOST": f"http://127.0.0.1:{port}", "XNAT_USER": "admin", "XNAT_PASS": "s3cret-pass"})
    clean(run, "s3cret-pass")
    assert run.returncode == 3
    assert "cannot reach XNAT" in run.stdout and "Nothing was changed" in run.stdout


def test_missing_credentials_are_explained(site: Site) -> None:
    run = mitigate(site, {"XNAT_HOST": "http://127.0.0.1:9"})
    clean(run)
    assert run.returncode == 3 and "XNAT_USER and XNAT_PASS" in run.stdout


def test_the_session_id_is_needed_when_the_mount_does_not_show_it(site: Site, standin: Any) -> None:
    env = xnat_env(standin)
    run = mitigate(site, env, session=None)
    clean(run)
    assert run.returncode == 1
    (resource,) = run.report()["resources"]
    assert "--xnat-session" in resource["statusReason"]


def test_a_wrong_session_id_changes_nothing(site: Site, standin: Any) -> None:
    other = site.archive / PROJECT / "arc001" / "OTHER" / "SCANS" / "5" / "DICOM"
    other.mkdir(parents=True)
    shutil.copy2(site.resource / CATALOG, other / CATALOG)  # same project, different files
    env = xnat_env(standin)
    before = tree(site.session)
    run = mitigate(site, env, session=standin.experiment_id(PROJECT, "OTHER"))
    clean(run)
    assert run.returncode == 1
    assert tree(site.session) == before


# --- pieces ------------------------------------------------------------------------------------------


def test_retry_policy_is_bounded() -> None:
    assert list(RetryPolicy(attempts=5, backoff_s=1, max_backoff_s=3).delays()) == [1, 2, 3, 3]
    assert list(RetryPolicy(attempts=1).delays()) == []


def test_redactor_and_paths_keep_secrets_and_names_out() -> None:
    redact = Redactor(["s3cret/+x", None, "ab"])
    assert redact("pw=s3cret/+x or s3cret%2F%2Bx JSESSIONID=ABC123; x") == "pw=*** or *** JSESSIONID=***; x"
    assert public_url("https://user:pw@xnat.example.org/xnat/") == "https://xnat.example.org/xnat"
    assert display_path("/data/experiments/E/scans/5/resources/DICOM/files/Doe_Jane.dcm?inbody=true") == \
        "/data/experiments/E/scans/5/resources/DICOM/files/<file>"


def test_scan_uris() -> None:
    assert parse_scan_uri("/experiments/XNAT_E00001/scans/5") == ("XNAT_E00001", "5")
    assert parse_scan_uri("/archive/projects/P/subjects/S/experiments/E1/scans/7") == ("E1", "7")
    with pytest.raises(Exception, match="not a scan URI"):
        parse_scan_uri("/experiments/E1")


def test_survey_comparison_tells_template_from_disagreement() -> None:
    from container_app.core.plan import FileState, ResourcePlan
    from container_app.core.vocabulary import RequestStatus

    plan = ResourcePlan("SCANS/5/DICOM", {}, None, RequestStatus.DIVERGENT, (), (),
                        tuple(FileState(f"SCANS/5/DICOM/{n}", 1, 1, None) for n in ("a.dcm", "b.dcm")), 0, 0)
    ours = {"xnat": {"mismatchedFiles": {"SCANS/5/DICOM/a.dcm": "A.dcm"}, "duplicates": {}},
            "files": [{"path": "SCANS/5/DICOM/a.dcm", "sopClassUID": "1", "sopInstanceUID": "2"}]}
    same = {"mismatchedFiles": {"/srv/archive/P/arc001/S/SCANS/5/DICOM/a.dcm": "A.dcm"}}
    assert compare_surveys(plan, ours, same)["verdict"] == "agree"
    other = {"mismatchedFiles": {"/srv/x/SCANS/5/DICOM/a.dcm": "Z.dcm"}}
    assert compare_surveys(plan, ours, other)["verdict"] == "template"
    content_with_it = {"uids": {"1": ["2"]}}  # XNAT saw the file and found its name right
    assert compare_surveys(plan, ours, content_with_it)["verdict"] == "template"
    more = {"mismatchedFiles": {"/srv/a.dcm": "A.dcm", "/srv/b.dcm": "B.dcm"}}
    verdict = compare_surveys(plan, ours, more)
    assert verdict["verdict"] == "disagree" and verdict["filesSeenByOneSurveyOnly"] == 1


def test_auto_picks_xnat_inside_xnat_on_a_read_only_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    from container_app.cli.settings import parse_settings
    from container_app.mitigation.run import _wants_xnat

    settings = parse_settings(["mitigate", "/input", "--output", "/output"])
    monkeypatch.setenv("XNAT_HOST", "http://xnat")
    monkeypatch.setattr(os, "access", lambda *_: False)
    assert _wants_xnat(settings, "/input")  # type: ignore[arg-type]
    monkeypatch.setattr(os, "access", lambda *_: True)
    assert not _wants_xnat(settings, "/input")  # type: ignore[arg-type]
    monkeypatch.delenv("XNAT_HOST")
    monkeypatch.setattr(os, "access", lambda *_: False)
    assert not _wants_xnat(settings, "/input")  # type: ignore[arg-type]
