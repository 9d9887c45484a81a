"""The archive mount as the XNAT executors read it (mitigation/xnat/mount.py): through support.anchored, with
files named by their path inside the resource (`secondary/x.dcm`), never through a link; and the
Container Service's tree of a project's shared data told from a live mount (support.shared_data).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from container_app.core.errors import FileProblem
from container_app.core.plan import Action, FileState, ResourcePlan
from container_app.core.vocabulary import ActionKind, Outcome, RequestStatus, ResourceStatus
from container_app.mitigation.xnat.mount import (
    catalog_flags,
    catalog_sha256,
    listing_verdict,
    mount_sha256,
    mount_staleness,
    read_mount_file,
)
from container_app.mitigation.xnat.results import XnatActionResult, XnatResourceResult
from container_app.support.shared_data import is_shared_data_tree

RESOURCE = "SCANS/4/DICOM"
CATALOG = f"{RESOURCE}/scan_4_catalog.xml"


def _state(root: Path, rel: str) -> FileState:
    path = root / rel
    st = path.stat()
    return FileState(rel, st.st_size, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())


def _resource(root: Path) -> Path:
    folder = root / RESOURCE
    (folder / "secondary").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(b"A" * 10)
    (folder / "secondary" / "x.dcm").write_bytes(b"X" * 20)
    (folder / "scan_4_catalog.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<cat:DCMCatalog xmlns:cat="http://nrg.wustl.edu/catalog" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><cat:entries>\n'
        '<cat:entry URI="A.dcm" ID="A.dcm" UID="1.2" xsi:type="cat:dcmEntry"/>\n'
        '<cat:entry URI="secondary/X.dcm" ID="secondary/X.dcm" xsi:type="cat:entry"/>\n'
        "</cat:entries></cat:DCMCatalog>\n", encoding="utf-8")
    return folder


def _plan(root: Path, *, renames: dict[str, str]) -> ResourcePlan:
    files = tuple(_state(root, f"{RESOURCE}/{n}") for n in ("a.dcm", "secondary/x.dcm"))
    by_path = {f.path: f for f in files}
    actions = tuple(Action(ActionKind.RENAME, by_path[f"{RESOURCE}/{old}"], f"{RESOURCE}/{new}", "NAME_MISMATCH")
                    for old, new in renames.items())
    return ResourcePlan(RESOURCE, {"scanId": "4", "resourceLabel": "DICOM"}, CATALOG, RequestStatus.DIVERGENT,
                        actions, (), files, 0, 0)


def test_files_in_a_subfolder_are_read_by_their_path_in_the_resource(tmp_path: Path) -> None:
    _resource(tmp_path)
    plan = _plan(tmp_path, renames={"a.dcm": "A.dcm", "secondary/x.dcm": "secondary/X.dcm"})
    assert mount_staleness(str(tmp_path), plan) is None
    second = plan.files_at_survey[1]
    assert read_mount_file(str(tmp_path), plan, second) == b"X" * 20  # not a.dcm's bytes, not a flat lookup
    assert catalog_sha256(str(tmp_path), plan) == hashlib.sha256((tmp_path / CATALOG).read_bytes()).hexdigest()

    results = [XnatActionResult(a, Outcome.DONE) for a in plan.actions]
    flagged, counts = catalog_flags(str(tmp_path), plan, results)
    by_target = {r.action.target: r.catalog_entry_downgraded for r in flagged}
    assert by_target == {f"{RESOURCE}/A.dcm": False, f"{RESOURCE}/secondary/X.dcm": True}
    assert counts == {"downgraded": 1, "dcmEntries": 1, "plainEntries": 1}


def test_changes_in_a_subfolder_make_the_resource_stale(tmp_path: Path) -> None:
    folder = _resource(tmp_path)
    plan = _plan(tmp_path, renames={"secondary/x.dcm": "secondary/X.dcm"})
    (folder / "secondary" / "late.dcm").write_bytes(b"L")
    assert mount_staleness(str(tmp_path), plan) == "1 file(s) added since the survey"
    (folder / "secondary" / "late.dcm").unlink()
    (folder / "secondary" / "x.dcm").write_bytes(b"Y" * 21)
    assert "changed since the survey" in (mount_staleness(str(tmp_path), plan) or "")
    with pytest.raises(FileProblem, match="sha256"):
        (folder / "secondary" / "x.dcm").write_bytes(b"Y" * 20)
        read_mount_file(str(tmp_path), plan, plan.files_at_survey[1])


def test_a_file_the_survey_did_not_hash_is_proven_by_its_identity(tmp_path: Path) -> None:
    """Schema 1.1: a single misnamed file carries its inode and change time, no sha256."""
    folder = _resource(tmp_path)
    path = folder / "secondary" / "x.dcm"
    st = path.stat()
    unhashed = FileState(f"{RESOURCE}/secondary/x.dcm", st.st_size, st.st_mtime_ns, None, st.st_ino, st.st_ctime_ns)
    plan = ResourcePlan(RESOURCE, {"scanId": "4"}, CATALOG, RequestStatus.DIVERGENT,
                        (Action(ActionKind.RENAME, unhashed, f"{RESOURCE}/secondary/X.dcm", "NAME_MISMATCH"),), (),
                        (_state(tmp_path, f"{RESOURCE}/a.dcm"), unhashed), 0, 0)
    assert mount_staleness(str(tmp_path), plan) is None
    assert mount_sha256(str(tmp_path), plan, unhashed) == hashlib.sha256(b"X" * 20).hexdigest()
    path.write_bytes(b"Y" * 20)  # same size; the modification time put back: only the change time tells
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "inode or change time" in (mount_staleness(str(tmp_path), plan) or "")
    with pytest.raises(FileProblem, match="changed since the survey"):
        mount_sha256(str(tmp_path), plan, unhashed)


def test_a_link_in_the_resource_is_never_followed(tmp_path: Path) -> None:
    folder = _resource(tmp_path)
    plan = _plan(tmp_path, renames={"secondary/x.dcm": "secondary/X.dcm"})
    outside = tmp_path / "outside"
    (folder / "secondary").rename(outside)
    (folder / "secondary").symlink_to(outside, target_is_directory=True)
    assert "link" in (mount_staleness(str(tmp_path), plan) or "")
    with pytest.raises(FileProblem, match="link"):
        read_mount_file(str(tmp_path), plan, plan.files_at_survey[1])
    (folder / "secondary").unlink()
    (folder / "secondary").mkdir()
    os.mkfifo(folder / "secondary" / "x.dcm")  # a FIFO is refused without blocking
    with pytest.raises(FileProblem, match="not a regular file"):
        read_mount_file(str(tmp_path), plan, plan.files_at_survey[1])


def test_listing_verdict_compares_xnats_listing_with_what_was_done(tmp_path: Path) -> None:
    _resource(tmp_path)
    plan = _plan(tmp_path, renames={"a.dcm": "A.dcm", "secondary/x.dcm": "secondary/X.dcm"})
    result = XnatResourceResult(plan, ResourceStatus.MITIGATED, "",
                                tuple(XnatActionResult(a, Outcome.DONE) for a in plan.actions))
    assert listing_verdict(result, ["A.dcm", "secondary/X.dcm"]) is None
    assert listing_verdict(result, ["a.dcm", "A.dcm", "secondary/X.dcm"]) == (
        "still lists 1 file(s) the mitigation renamed or removed")
    assert listing_verdict(result, ["A.dcm"]) == "lacks 1 file(s) the mitigation should have left"


def test_a_tree_of_hard_links_holding_projects_is_the_shared_data_tree(tmp_path: Path) -> None:
    archive = tmp_path / "archive" / "P1" / "arc001" / "S1"
    _resource(archive)
    assert not is_shared_data_tree(str(tmp_path / "archive"))  # the archive itself: no links
    assert not is_shared_data_tree(str(archive))  # a session mount
    tree = tmp_path / "tree"
    for path in sorted(archive.rglob("*")):
        target = tree / "P2" / "arc001" / "S1" / path.relative_to(archive)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
    assert is_shared_data_tree(str(tree))
    assert not is_shared_data_tree(str(tree / "P2" / "arc001" / "S1"))  # a session of it holds no project
    (tree / "P2" / "arc001" / "S1" / RESOURCE / "copied.dcm").write_bytes(b"C")  # one file not a link
    assert not is_shared_data_tree(str(tree))
