"""Links and special files: reported, never followed, never opened where opening could harm."""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from container_app.core.classify import classify
from container_app.core.vocabulary import FileStatus, Reason
from container_app.demo import synth
from container_app.survey.dicom.reader import survey_file
from container_app.survey.discover import Selection
from container_app.survey.pipeline import SurveyRequest, resources_to_survey, run
from tests.helpers.dicom import BASE, DEFAULT, PLAN, record_for, write

# --- links and special files -----------------------------------------------------------------------


def survey_folder(root: Path, jobs: int = 1) -> list[Any]:
    request = SurveyRequest(root=str(root), template=DEFAULT, selection=Selection(all_resources=True), jobs=jobs)
    return list(run(request, resources_to_survey(request)))


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Real paths of everything the survey opens, by any of the means it has."""
    paths: list[str] = []
    real_os_open, real_open, real_dcmread = os.open, open, pydicom.dcmread

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        paths.append(os.path.realpath(path))
        return real_os_open(path, flags, *args, **kwargs)

    def builtin_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str | os.PathLike):
            paths.append(os.path.realpath(path))
        return real_open(path, *args, **kwargs)

    def dcmread(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str | os.PathLike):
            paths.append(os.path.realpath(path))
        return real_dcmread(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", builtin_open)
    monkeypatch.setattr(pydicom, "dcmread", dcmread)
    yield paths


def test_symlinks_are_reported_and_never_read(tmp_path: Path, opened: list[str]) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    resource = root / "SCANS" / "1" / "DICOM"
    write(resource, "real.dcm", BASE)
    secret = write(outside, "secret.dcm", dataclasses.replace(BASE, sop_instance_uid=synth.uid("secret")))
    secret.chmod(0)  # unreadable (for anyone but root): a read would fail or leak
    (resource / "inside-link.dcm").symlink_to("real.dcm")
    (resource / "outside-link.dcm").symlink_to(secret)
    (resource / "relative-out.dcm").symlink_to("../../../../outside/secret.dcm")
    (resource / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    (resource / "dir-link").symlink_to(outside, target_is_directory=True)
    [findings] = survey_folder(root)
    by_name = {f.name: f for f in findings.files}
    assert by_name["inside-link.dcm"].reasons[0] is Reason.SYMLINK
    assert by_name["outside-link.dcm"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    assert by_name["relative-out.dcm"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    assert by_name["dangling.dcm"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    assert by_name["dir-link"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    for name in ("inside-link.dcm", "outside-link.dcm", "relative-out.dcm", "dangling.dcm", "dir-link"):
        assert by_name[name].status is FileStatus.BAD
        assert by_name[name].expected_name is None
    assert by_name["real.dcm"].status is not FileStatus.BAD
    assert str(secret.resolve()) not in opened
    assert not any(p.startswith(str(outside.resolve())) for p in opened)
    # The link inside ROOT is not read either: only the real file is opened, once for its header.
    assert opened.count(str((resource / "real.dcm").resolve())) >= 1


def test_hard_links_are_flagged_and_grouped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    original = write(root, synth.xnat_name(BASE), BASE)
    os.link(original, root / "copy.dcm")
    [findings] = survey_folder(root)
    by_name = {f.name: f for f in findings.files}
    for finding in by_name.values():
        assert Reason.HARD_LINK in finding.record.reasons
        assert finding.status is FileStatus.DUPLICATE
    [group] = findings.groups
    assert group.actionable and group.identical


def test_fifo_is_not_a_regular_file_and_is_never_opened(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "a.dcm", BASE)
    os.mkfifo(root / "pipe")  # opening it for reading would block forever
    record = record_for(root / "pipe")
    assert record.reasons == (Reason.NOT_A_REGULAR_FILE,)
    [findings] = survey_folder(root)
    assert {f.name: f.status for f in findings.files}["pipe"] is FileStatus.BAD


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "f.dcm", BASE)
    path.chmod(0)
    try:
        record = record_for(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert record.reasons == (Reason.UNREADABLE,)
    assert record.is_bad


def test_missing_entry_is_unreadable(tmp_path: Path) -> None:
    record = survey_file(str(tmp_path), "gone.dcm", PLAN)  # vanished between listing and reading
    assert record.reasons == (Reason.UNREADABLE,)
    assert record.is_bad


def test_classify_never_renders_a_name_for_a_bad_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "nosop.dcm", dataclasses.replace(BASE, omit=frozenset({"SOPClassUID"})))
    request = SurveyRequest(root=str(root), template=DEFAULT, selection=Selection(), jobs=1)
    [resource] = resources_to_survey(request)
    records = [survey_file(str(root), name, PLAN) for name in resource.files]
    findings = classify(resource, records, DEFAULT)
    assert [f.expected_name for f in findings.files] == [None]
