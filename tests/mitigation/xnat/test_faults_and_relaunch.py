"""Faults (stand-in errors, dropped connections, cut-off uploads, a SIGKILL at a journal line), then a relaunch
without them: the same end state, and no original's bytes lost on the way.
"""

from __future__ import annotations

import json
import random
import signal
from typing import Any

import pytest

from tests.helpers.xnat import (
    Site,
    assert_end_state,
    assert_nothing_lost,
    catalog_entries,
    clean,
    files,
    mitigate,
    requires_conformance,
    xnat_env,
)

standin_package = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
run_standin = standin_package.run_standin
pytestmark = requires_conformance


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
