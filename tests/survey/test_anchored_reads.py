"""The survey reads below ROOT through descriptors (survey/anchored_reads.py, issue 13).

A folder of ROOT swapped for a link to a folder outside ROOT after discovery (the walk is done, the
workers have not read yet) must not make the survey read outside ROOT; a FIFO where a DICOM file or a
catalog should be must never block it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from container_app.demo import synth
from container_app.demo.synth import ScanSpec
from container_app.survey import anchored_reads, pipeline
from container_app.survey.discover import Selection, discover
from tests.helpers.survey import STUDY, files_of, resource_of

RESOURCE = "SCANS/1/DICOM"
#: The study of the sentinel files outside ROOT: its UIDs must appear in no report.
OUTSIDE = synth.InstanceSpec(sop_instance_uid=synth.uid("outside", "placeholder"),
                             study_instance_uid=synth.uid("outside", "study-never-to-be-read"))


def _session(root: Path) -> None:
    synth.build_session(root, "S", "P", [
        ScanSpec.conforming("1", synth.series_instances(STUDY, 1, 3)),
        ScanSpec.conforming("2", synth.series_instances(STUDY, 2, 2)),
    ])


def _swap_for_link(root: Path, elsewhere: Path) -> None:
    """SCANS/1 moved out of ROOT, its files rewritten there with other UIDs, and a link put in its place."""
    scan = root / "SCANS" / "1"
    shutil.move(scan, elsewhere)
    resource = elsewhere / "DICOM"
    for (path, spec) in zip(sorted(p for p in resource.iterdir() if p.suffix == ".dcm"),
                            synth.series_instances(OUTSIDE, 1, 3), strict=True):
        synth.write_instance(path, spec)
    scan.symlink_to(elsewhere, target_is_directory=True)


@pytest.fixture
def swap_after_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The survey's discovery, then SCANS/1 swapped for a link out of ROOT before any file is read."""
    elsewhere = tmp_path / "elsewhere"
    real = discover

    def discover_then_swap(root: str, selection: Selection, *args: Any, **kwargs: Any) -> Iterator[Any]:
        found = list(real(root, selection, *args, **kwargs))
        _swap_for_link(Path(root), elsewhere)
        return iter(found)

    monkeypatch.setattr(pipeline, "discover", discover_then_swap)
    return elsewhere


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_folder_swapped_for_a_link_after_discovery_is_never_read(
        tmp_path: Path, survey_lib: Any, swap_after_discovery: Path, jobs: int) -> None:
    root = tmp_path / "session"
    _session(root)
    report = survey_lib(root, jobs=jobs)
    assert (root / "SCANS" / "1").is_symlink()  # the swap happened, the sentinel files are there
    text = json.dumps(report)
    for spec in synth.series_instances(OUTSIDE, 1, 3):
        assert spec.sop_instance_uid not in text
        assert spec.series_instance_uid not in text
    assert OUTSIDE.study_instance_uid not in text
    swapped = files_of(resource_of(report, RESOURCE))
    assert len(swapped) == 3
    for entry in swapped.values():
        assert entry["status"] == "BAD", entry
        assert "UNREADABLE" in entry["reasons"], entry
        assert "never followed" in json.dumps(entry), entry
    # The untouched scan is surveyed as ever.
    assert all(f["status"] != "BAD" for f in files_of(resource_of(report, "SCANS/2/DICOM")).values())


def test_a_folder_swapped_for_a_link_during_the_walk_is_refused_with_the_reason(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "session", tmp_path / "elsewhere"
    _session(root)
    walk = discover(str(root), Selection())
    first = next(walk)  # the walk has listed SCANS and holds it open; SCANS/2 is not opened yet
    assert first.rel_path == RESOURCE
    shutil.move(root / "SCANS" / "2", elsewhere)
    (root / "SCANS" / "2").symlink_to(elsewhere, target_is_directory=True)
    [refused] = list(walk)
    assert refused.rel_path == "SCANS/2"
    assert refused.files == ()
    [folder] = refused.unreadable
    assert "never followed" in folder.error


def test_a_fifo_as_a_dicom_file_and_as_a_catalog_never_blocks(tmp_path: Path, cli: Any) -> None:
    root, out = tmp_path / "session", tmp_path / "out"
    _session(root)
    resource = root / "SCANS" / "1" / "DICOM"
    victim = sorted(p for p in resource.iterdir() if p.suffix == ".dcm")[0]
    victim.unlink()
    os.mkfifo(victim)  # opening it for reading without O_NONBLOCK would wait for a writer forever
    catalog = next(resource.glob("*_catalog.xml"))
    catalog.unlink()
    os.mkfifo(catalog)
    result = cli("survey", root, "--output", out, "--jobs", "2", timeout=60)
    assert result.report is not None, result.stderr
    entry = resource_of(result.report, RESOURCE)
    assert files_of(entry)[victim.name]["reasons"] == ["NOT_A_REGULAR_FILE"]
    assert "not a regular file" in json.dumps(entry)


def test_a_root_that_cannot_be_opened_is_reported_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "session"
    _session(root)

    def refuse(cls: Any, path: str, **kwargs: Any) -> Any:  # as the system answers for a folder chmod 000
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(anchored_reads.Anchor, "open", classmethod(refuse))
    [resource] = list(discover(str(root), Selection()))
    assert resource.rel_path == "."
    assert [(u.path, u.error) for u in resource.unreadable] == [(".", "Permission denied")]


def _cached(path: Path) -> bool:
    """Asked as read_ahead asks (RWF_NOWAIT). On a miss the kernel starts reading the file: ask once per file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.preadv(fd, [bytearray(1)], 0, os.RWF_NOWAIT) == 1
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _drain_read_ahead() -> None:
    pool = anchored_reads._read_ahead_pool
    if pool is not None:
        pool.shutdown(wait=True)
        anchored_reads._read_ahead_pool = None


@pytest.fixture
def many_files(tmp_path: Path) -> tuple[Path, list[str]]:
    folder = tmp_path / "resource"
    folder.mkdir()
    names = [f"{i:03d}.dcm" for i in range(80)]
    for name in [*names, "sentinel"]:
        (folder / name).write_bytes(os.urandom(9000))
    os.sync()  # written back, so that the page cache may drop them
    _evict(folder / "sentinel")
    if _cached(folder / "sentinel"):
        pytest.skip("this file system keeps files in memory whatever posix_fadvise says")
    return folder, names


def test_read_ahead_warms_files_not_in_memory(many_files: tuple[Path, list[str]]) -> None:
    folder, names = many_files
    for name in names:
        _evict(folder / name)
    anchored_reads.read_ahead(str(folder), names)
    _drain_read_ahead()
    assert all(_cached(folder / n) for n in names)


def test_read_ahead_skips_files_in_memory(many_files: tuple[Path, list[str]],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Warm, it only asks the first, middle and last files whether they are cached (RWF_NOWAIT)."""
    folder, names = many_files
    for name in names:
        (folder / name).read_bytes()
    opened: list[str] = []
    real = anchored_reads._open_checked

    def counting(folder_fd: int, name: str, *args: Any) -> int:
        opened.append(name)
        return real(folder_fd, name, *args)

    monkeypatch.setattr(anchored_reads, "_open_checked", counting)
    anchored_reads.read_ahead(str(folder), names)
    _drain_read_ahead()
    assert opened == [names[0], names[40], names[-1]]
    _evict(folder / names[40])
    opened.clear()
    anchored_reads.read_ahead(str(folder), names)  # one of the three is not in memory: every file is read ahead
    _drain_read_ahead()
    assert sorted(set(opened) - {names[0], names[40]}) == sorted(set(names) - {names[0], names[40]})
