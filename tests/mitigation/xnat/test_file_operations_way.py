"""Without XNAT's mitigation API: file operations through XNAT's files API, only when allowed; verified backups
in RESOURCE_SURVEY_BACKUP first, then renames by upload-then-delete, and a restore from those backups.
"""

from __future__ import annotations

import json
from typing import Any

from tests.helpers.xnat import (
    CONFORMANCE,
    Site,
    assert_end_state,
    attribute,
    catalog_entries,
    clean,
    files,
    mitigate,
    no_secret_in,
    requires_conformance,
    run_cli,
    tree,
    xnat_env,
)

pytestmark = requires_conformance


def test_without_the_api_file_operations_are_refused_by_default(site: Site, old_standin: Any) -> None:
    env = xnat_env(old_standin)
    before = tree(site.session)
    run = mitigate(site, env)
    clean(run, env["XNAT_PASS"])
    assert run.returncode == 1
    assert tree(site.session) == before and not site.backup.exists()
    assert "1.8.7" in run.stdout and "--rest-file-operations=allow" in run.stdout
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
