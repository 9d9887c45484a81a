"""Layouts and selection: which folders are resources, what identifies them, which are surveyed."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from container_app.demo import synth
from container_app.demo.synth import (
    ExtraFile,
    ExtraKind,
    FileSpec,
    ResourceSpec,
    ScanSpec,
    SessionSpec,
)
from container_app.survey.discover import Selection, discover
from tests.helpers.survey import STUDY, resource_of

# --- layouts ---------------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path) -> synth.ProjectLayout:
    scans = (ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 2)),
             ScanSpec.conforming("2", synth.series_instances(STUDY, 2, 2), label="SECONDARY"))
    snapshots = ResourceSpec(label="SNAPSHOTS", format="PNG",
                             files=(ExtraFile(name="qc.png", kind=ExtraKind.PNG),))
    return synth.build_project(tmp_path / "archive", "PROJ", [
        SessionSpec(label="SESS1", scans=scans, resources=(snapshots,)),
        SessionSpec(label="SESS2", scans=scans[:1]),
    ])


def identities(report: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {r["path"]: (r["identity"]["project"], r["identity"]["session"], r["identity"]["scanId"],
                        r["identity"]["resourceLabel"]) for r in report["resources"]}


def test_layout_project_archive(project: synth.ProjectLayout, survey_lib: Any) -> None:
    for root, prefix in ((project.root, "PROJ/arc001/"), (project.root / "PROJ", "arc001/"),
                         (project.root / "PROJ" / "arc001", "")):
        report = survey_lib(root)
        assert identities(report) == {
            f"{prefix}SESS1/SCANS/1/DICOM": ("PROJ", "SESS1", "1", "DICOM"),
            f"{prefix}SESS2/SCANS/1/DICOM": ("PROJ", "SESS2", "1", "DICOM"),
        }, root
        assert {r["requestStatus"] for r in report["resources"]} == {"CONFORMING"}


def test_layout_session_mount(project: synth.ProjectLayout, survey_lib: Any) -> None:
    session = project.session("SESS1").root
    assert identities(survey_lib(session)) == {"SCANS/1/DICOM": ("PROJ", "SESS1", "1", "DICOM")}
    everything = survey_lib(session, all_resources=True)
    assert identities(everything) == {
        "SCANS/1/DICOM": ("PROJ", "SESS1", "1", "DICOM"),
        "SCANS/2/SECONDARY": ("PROJ", "SESS1", "2", "SECONDARY"),
        "RESOURCES/SNAPSHOTS": ("PROJ", "SESS1", None, "SNAPSHOTS"),
    }
    assert resource_of(everything, "RESOURCES/SNAPSHOTS")["xnat"]["badFiles"] == ["RESOURCES/SNAPSHOTS/qc.png"]
    labelled = survey_lib(session, labels=frozenset({"SECONDARY", "SNAPSHOTS"}))
    assert set(identities(labelled)) == {"SCANS/2/SECONDARY", "RESOURCES/SNAPSHOTS"}
    assert labelled["options"]["resourceLabels"] == ["SECONDARY", "SNAPSHOTS"]


def test_layout_session_mount_without_a_name(tmp_path: Path, survey_lib: Any) -> None:
    """A container's session mount (`/input`): scans and labels from the layout, no session label."""
    synth.build_session(tmp_path / "input", "S", "P1", [ScanSpec.conforming("3", synth.series_instances(STUDY, 3, 1))])
    assert identities(survey_lib(tmp_path / "input")) == {"SCANS/3/DICOM": ("P1", None, "3", "DICOM")}


def test_layout_scan_folder_and_resource_folder(project: synth.ProjectLayout, survey_lib: Any) -> None:
    scan = project.session("SESS1").root / "SCANS" / "1"
    assert identities(survey_lib(scan)) == {"DICOM": ("PROJ", "SESS1", "1", "DICOM")}
    resource = scan / "DICOM"
    report = survey_lib(resource)
    assert identities(report) == {".": ("PROJ", "SESS1", "1", "DICOM")}
    assert all("/" not in f["path"] for f in report["resources"][0]["files"])
    # A resource folder is surveyed because the user pointed at it, whatever its label.
    other = project.session("SESS1").root / "SCANS" / "2" / "SECONDARY"
    assert identities(survey_lib(other)) == {".": ("PROJ", "SESS1", "2", "SECONDARY")}


def test_layout_bare_resource_folder(tmp_path: Path, survey_lib: Any) -> None:
    instances = synth.series_instances(STUDY, 9, 3)
    synth.build_resource(tmp_path / "upload", [FileSpec(instance=i) for i in instances], project="PX", scan_id="9")
    report = survey_lib(tmp_path / "upload")
    [resource] = report["resources"]
    assert resource["path"] == "."
    assert resource["identity"]["project"] == "PX"
    assert resource["identity"]["catalogPath"] == "scan_9_catalog.xml"
    assert resource["requestStatus"] == "CONFORMING"
    assert resource["xnat"]["totalEntries"] == 3


def test_layout_plain_folder(tmp_path: Path, survey_lib: Any) -> None:
    instances = synth.series_instances(STUDY, 1, 3)
    plain = tmp_path / "plain"
    synth.write_instance(plain / "top.dcm", instances[0])
    synth.write_instance(plain / "a" / "one.dcm", instances[1])
    synth.write_instance(plain / "a" / "b" / "two.dcm", instances[2])
    (plain / "empty" / "deeper").mkdir(parents=True)
    report = survey_lib(plain)
    assert identities(report) == {".": (None, None, None, "plain"), "a": (None, None, None, "a"),
                                  "a/b": (None, None, None, "b")}
    assert [f["path"] for r in report["resources"] for f in r["files"]] == ["top.dcm", "a/one.dcm", "a/b/two.dcm"]
    assert report["totals"]["mismatchedFiles"] == 3


def test_empty_root(tmp_path: Path, survey_lib: Any, report_schema: Any) -> None:
    (tmp_path / "empty").mkdir()
    report = survey_lib(tmp_path / "empty")
    report_schema(report)
    assert report["resources"] == []
    assert report["totals"]["resources"] == 0


def test_discover_is_sorted_and_never_follows_directory_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name in ("b", "a", "c"):
        (root / name).mkdir(parents=True)
        (root / name / "f").write_bytes(b"x")
    (root / "link").symlink_to(tmp_path, target_is_directory=True)
    found = list(discover(str(root), Selection()))
    assert [r.rel_path for r in found] == [".", "a", "b", "c"]
    assert found[0].files == ("link",)


def test_since(project: synth.ProjectLayout, survey_lib: Any) -> None:
    session = project.session("SESS1").root
    planted = dt.datetime.fromtimestamp(synth.DEFAULT_MTIME, dt.UTC).date()
    assert len(survey_lib(session, since=planted)["resources"]) == 1
    later = planted + dt.timedelta(days=1)
    assert survey_lib(session, since=later)["resources"] == []
    # A file changed after the day: its resource (only) is surveyed again.
    changed = next((session / "SCANS" / "2" / "SECONDARY").glob("*.dcm"))
    os.utime(changed, None)
    report = survey_lib(session, since=later, all_resources=True)
    assert [r["path"] for r in report["resources"]] == ["SCANS/2/SECONDARY"]
    assert report["options"]["since"] == later.isoformat()


# --- folders that cannot be listed, subfolders -----------------------------------------------------


def test_an_unlistable_folder_is_reported_with_a_warning(tmp_path: Path, survey_lib: Any,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    synth.build_session(tmp_path / "session", "S", "P", [
        ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 1)),
        ScanSpec.conforming("2", synth.series_instances(STUDY, 2, 1)),
    ])
    blocked = str(tmp_path / "session" / "SCANS" / "2")
    real_scandir = os.scandir

    def scandir(path: Any) -> Any:
        if os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    structlog.reset_defaults()
    with capture_logs() as logs:
        report = survey_lib(tmp_path / "session")
    assert [r["path"] for r in report["resources"]] == ["SCANS/1/DICOM", "SCANS/2"]
    unlisted = resource_of(report, "SCANS/2")
    assert unlisted["requestStatus"] == "ERROR"
    assert unlisted["folder"] == {"readable": False, "unreadable": [
        {"path": "SCANS/2", "reason": "UNREADABLE_FOLDER", "error": "Permission denied"}]}
    assert report["totals"]["unreadableFolders"] == 1
    [warned] = [e for e in logs if e["event"] == "folder unreadable"]
    assert warned["log_level"] == "warning"
    assert warned["path"] == "SCANS/2"


@pytest.mark.filterwarnings("ignore:Expected implicit VR")
def test_subfolders_belong_to_their_resource(tmp_path: Path, survey_lib: Any) -> None:
    """FreeSurfer's mri/ or a NIFTI resource's subfolder is not surveyed as DICOM; a DICOM subfolder is, as
    part of its resource when that has a catalog (see test_subfolder_entries.py), else on its own."""
    session = tmp_path / "session"
    instances = synth.series_instances(STUDY, 1, 2)
    synth.build_session(session, "S", "P", [ScanSpec.conforming("1", instances[:1])])
    synth.write_instance(session / "SCANS/1/DICOM/secondary" / synth.xnat_name(instances[1]), instances[1])
    for path in ("RESOURCES/FREESURFER/mri/brain.mgz", "RESOURCES/FREESURFER/stats/aseg.stats",
                 "SCANS/1/NIFTI/sub/x.nii"):
        (session / path).parent.mkdir(parents=True, exist_ok=True)
        (session / path).write_text("not DICOM")
    secondary = f"SCANS/1/DICOM/secondary/{synth.xnat_name(instances[1])}"
    report = survey_lib(session)
    assert identities(report) == {"SCANS/1/DICOM": ("P", None, "1", "DICOM")}
    assert secondary in {f["path"] for f in resource_of(report, "SCANS/1/DICOM")["files"]}
    (session / "SCANS/1/DICOM/scan_1_catalog.xml").unlink()  # no catalog: not XNAT's resource, folders stand alone
    assert identities(survey_lib(session)) == {
        "SCANS/1/DICOM": (None, None, "1", "DICOM"),
        "SCANS/1/DICOM/secondary": (None, None, "1", "DICOM"),
    }
    everything = identities(survey_lib(session, all_resources=True))
    assert everything["RESOURCES/FREESURFER/mri"] == (None, None, None, "FREESURFER")
    assert everything["SCANS/1/NIFTI/sub"] == (None, None, "1", "NIFTI")
    assert identities(survey_lib(session, labels=frozenset({"FREESURFER"}))) == {
        "RESOURCES/FREESURFER/mri": (None, None, None, "FREESURFER"),
        "RESOURCES/FREESURFER/stats": (None, None, None, "FREESURFER"),
    }
    # Pointed at directly, a subfolder is surveyed whatever its resource's label.
    assert identities(survey_lib(session / "SCANS/1/NIFTI/sub")) == {".": (None, None, "1", "NIFTI")}
