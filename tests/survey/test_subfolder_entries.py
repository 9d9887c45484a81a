"""Entries in a subfolder of an XNAT resource belong to that resource (issue 13).

XNAT's catalogs can list files below the resource folder (`secondary/x.dcm` in `scan_3_catalog.xml` of
`SCANS/3/DICOM/`): the survey reports them in that resource, matches them with their catalog entries
by their path inside it, and plans their renames in their own folder.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import pytest

from container_app.demo import synth
from container_app.demo.synth import CatalogEntrySpec, InstanceSpec, ScanSpec
from container_app.survey.discover import Selection, discover
from tests.helpers.cli import no_traceback
from tests.helpers.survey import STUDY, resource_of

RESOURCE = "SCANS/3/DICOM"
CATALOG = "scan_3_catalog.xml"
CLIENT_NAME = "IM0001"  # an importer's name: not the expected one


def _entry(name: str, spec: InstanceSpec, *, uid: str | None = None) -> CatalogEntrySpec:
    return CatalogEntrySpec(name=name, digest="0" * 32, format="DICOM", dcm=True,
                            uid=uid or synth.header_value(spec, "SOPInstanceUID"),
                            instance_number=synth.header_value(spec, "InstanceNumber"))


def build(root: Path) -> tuple[dict[str, InstanceSpec], str]:
    """A session whose scan 3 has two files at its top and three in `secondary/`, as its catalog lists them.

    `secondary/` holds one file at its expected name, one under a client's name and one whose catalog
    entry names another UID (returned with the files by path inside the resource); the catalog also
    lists a `secondary/` file that is not there.
    """
    instances = synth.series_instances(STUDY, 3, 6)
    synth.build_session(root, "S3", "P3", [ScanSpec.conforming("3", instances[:2])])
    folder = root / RESOURCE
    specs = {
        f"secondary/{synth.xnat_name(instances[2])}": instances[2],
        f"secondary/{CLIENT_NAME}": instances[3],
        f"secondary/{synth.xnat_name(instances[4])}": instances[4],
    }
    for name, spec in specs.items():
        synth.write_instance(folder / name, spec)
    entries = [_entry(synth.xnat_name(s), s) for s in instances[:2]]
    entries += [_entry(name, spec, uid=synth.uid("subfolder", "other") if spec is instances[4] else None)
                for name, spec in specs.items()]
    entries.append(_entry("secondary/gone.dcm", instances[5]))
    (folder / CATALOG).write_text(synth.catalog_xml(entries, project="P3", dicom=True), encoding="utf-8")
    return {**{synth.xnat_name(s): s for s in instances[:2]}, **specs}, f"secondary/{synth.xnat_name(instances[4])}"


def test_subfolder_entries_are_the_resources_own(tmp_path: Path, cli: Any, report_schema: Any) -> None:
    root, out = tmp_path / "session", tmp_path / "out"
    specs, other_uid = build(root)
    rc, stdout, stderr, report = cli("survey", root, "--output", out)
    assert rc == 0, stderr
    no_traceback(stdout, stderr)
    assert report is not None
    report_schema(report)
    assert [r["path"] for r in report["resources"]] == [RESOURCE]  # no resource of its own for secondary/
    resource = resource_of(report, RESOURCE)
    files = {f["path"]: f for f in resource["files"]}
    assert set(files) == {f"{RESOURCE}/{name}" for name in specs}
    client = files[f"{RESOURCE}/secondary/{CLIENT_NAME}"]
    expected_client = synth.xnat_name(specs[f"secondary/{CLIENT_NAME}"])
    # The expected name is a name in the file's own folder; the catalog entry is found by the path inside it.
    assert (client["status"], client["expectedName"]) == ("MISMATCHED", expected_client)
    assert "NOT_IN_CATALOG" not in client["reasons"]
    conforming = [p for p, f in files.items() if f["status"] == "CONFORMING"]
    assert len(conforming) == 4
    assert all("NOT_IN_CATALOG" not in files[p]["reasons"] for p in conforming)
    assert "CATALOG_UID_MISMATCH" in files[f"{RESOURCE}/{other_uid}"]["reasons"]
    missing = [{"uri": "secondary/gone.dcm", "reason": "CATALOG_ENTRY_MISSING_FILE"}]
    assert resource["catalog"]["missingFiles"] == missing
    xnat = resource["xnat"]
    assert xnat["mismatchedFiles"] == {f"{RESOURCE}/secondary/{CLIENT_NAME}": expected_client}
    assert (xnat["totalEntries"], xnat["totalUids"], xnat["totalBadFiles"]) == (5, 5, 0)
    assert resource["requestStatus"] == "DIVERGENT"
    assert report["totals"]["resources"] == 1

    with (out / "survey-summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["resourceUri"], r["totalEntries"], r["totalMismatchedFiles"]) for r in rows] == [(RESOURCE, "5", "1")]
    html = (out / "report.html").read_text("utf-8")
    assert f"secondary/{CLIENT_NAME}" in html

    # The rename stays in the subfolder: the plan names the file's own folder.
    plan_out = tmp_path / "plan"
    rc, stdout, stderr, _ = cli("mitigate", root, "--report", out / "survey-report.json", "--output", plan_out,
                                "--backup-dir", tmp_path / "backup", "--dry-run")
    assert rc == 0, stderr
    plan = json.loads((plan_out / "mitigation-plan.json").read_text("utf-8"))
    [planned] = plan["resources"]
    assert [(a["action"], a["path"], a["newPath"]) for a in planned["actions"]] == [
        ("RENAME", f"{RESOURCE}/secondary/{CLIENT_NAME}", f"{RESOURCE}/secondary/{expected_client}")]


def test_subfolders_of_a_folder_outside_xnat_stay_resources_of_their_own(tmp_path: Path) -> None:
    """Without a catalog a folder is not XNAT's resource: its subfolders are surveyed as before."""
    root = tmp_path / "session"
    build(root)
    (root / RESOURCE / CATALOG).unlink()
    found = {r.rel_path: r.files for r in discover(str(root), Selection())}
    assert set(found) == {RESOURCE, f"{RESOURCE}/secondary"}
    assert all("/" not in name for files in found.values() for name in files)


def test_an_unselected_resources_subfolders_are_never_listed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "session"
    build(root)
    snapshots = root / "SCANS" / "3" / "SNAPSHOTS"
    (snapshots / "thumbs").mkdir(parents=True)
    (snapshots / "thumbs" / "t.gif").write_bytes(b"GIF89a")
    (snapshots / "scan_3_snapshots_catalog.xml").write_text(synth.catalog_xml([], project="P3", dicom=False))
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        listed.append(os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = [r.rel_path for r in discover(str(root), Selection())]
    assert found == [RESOURCE]
    assert str(snapshots / "thumbs") not in listed
    everything = {r.rel_path: r.files for r in discover(str(root), Selection(all_resources=True))}
    assert everything["SCANS/3/SNAPSHOTS"] == ("thumbs/t.gif",)


def test_a_rename_in_a_subfolder_updates_the_resources_catalog(tmp_path: Path, cli: Any) -> None:
    root, out = tmp_path / "session", tmp_path / "out"
    specs, _ = build(root)
    expected = synth.xnat_name(specs[f"secondary/{CLIENT_NAME}"])
    rc, stdout, stderr, _ = cli("mitigate", root, "--output", out, "--backup-dir", tmp_path / "backup")
    assert rc == 0, stderr
    no_traceback(stdout, stderr)
    folder = root / RESOURCE
    assert (folder / "secondary" / expected).is_file()
    assert not (folder / "secondary" / CLIENT_NAME).exists()
    catalog = (folder / CATALOG).read_text("utf-8")
    assert f'URI="secondary/{expected}"' in catalog
    assert f'URI="secondary/{CLIENT_NAME}"' not in catalog
    rc, _, stderr, report = cli("survey", root, "--output", tmp_path / "after")
    assert rc == 0, stderr
    assert report is not None
    resource = resource_of(report, RESOURCE)
    assert resource["requestStatus"] == "CONFORMING"
    assert all("NOT_IN_CATALOG" not in f["reasons"] for f in resource["files"])
