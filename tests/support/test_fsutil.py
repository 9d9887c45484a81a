"""The shared file-system helpers: one atomic write, one verified copy, and temporaries that are only ever ours."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from container_app.core.errors import FileProblem
from container_app.support.fsutil import (
    TEMPORARY_SUFFIX,
    SaveFile,
    is_inside,
    sha256_of,
    verified_copy,
    write_atomically,
)


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_the_with_block_is_the_commit(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", "utf-8")
    with SaveFile(str(target)) as handle:
        handle.write("new")
        assert target.read_text("utf-8") == "old"  # nothing under the name until the block ends
        assert len(names(tmp_path)) == 2
    assert target.read_text("utf-8") == "new"
    assert names(tmp_path) == {"report.json"}


def test_an_exception_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", "utf-8")
    with pytest.raises(RuntimeError), SaveFile(str(target)) as handle:
        handle.write("half")
        raise RuntimeError("disk full, say")
    assert target.read_text("utf-8") == "old"
    assert names(tmp_path) == {"report.json"}


def test_names_that_are_not_utf8_are_written_as_escapes(tmp_path: Path) -> None:
    target = tmp_path / "names.txt"
    with SaveFile(str(target)) as handle:
        handle.write(os.fsdecode(b"\xff.dcm"))
    assert target.read_bytes() == b"\\udcff.dcm"


def test_the_directory_descriptor_form(tmp_path: Path) -> None:
    folder = tmp_path / "resource"
    folder.mkdir()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write_atomically("scan_1_catalog.xml", b"<catalog/>", dir_fd=fd)
        assert sha256_of("scan_1_catalog.xml", dir_fd=fd) == hashlib.sha256(b"<catalog/>").hexdigest()
        with pytest.raises(ValueError, match="must be a name"):
            write_atomically("sub/x.xml", b"", dir_fd=fd)
    finally:
        os.close(fd)
    assert (folder / "scan_1_catalog.xml").read_bytes() == b"<catalog/>"
    assert oct((folder / "scan_1_catalog.xml").stat().st_mode & 0o777) == oct(0o644 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_files_that_look_like_temporaries_are_never_touched(tmp_path: Path) -> None:
    """An archive file called like an old-style temporary (`IM0001.part-1`, as PID 1 in a container would
    have named it) or like ours is neither overwritten nor removed by a write or a copy beside it."""
    archive = tmp_path / "archive"
    archive.mkdir()
    source = archive / "IM0001"
    source.write_bytes(b"dicom")
    look_alikes = {archive / "IM0001.part-1": b"other", archive / f".IM0001.0000{TEMPORARY_SUFFIX}": b"more"}
    for path, data in look_alikes.items():
        path.write_bytes(data)
    backup = tmp_path / "backup"
    verified_copy(str(source), str(backup / "IM0001"), hashlib.sha256(b"dicom").hexdigest())
    write_atomically(str(archive / "IM0001.part"), b"catalog")
    for path, data in look_alikes.items():
        assert path.read_bytes() == data
    assert names(backup) == {"IM0001"}


def test_a_copy_is_verified_and_never_overwrites(tmp_path: Path) -> None:
    source = tmp_path / "a.dcm"
    source.write_bytes(b"bytes")
    destination = tmp_path / "backup" / "a.dcm"
    sha = verified_copy(str(source), str(destination), None)
    assert sha == hashlib.sha256(b"bytes").hexdigest() == sha256_of(str(destination))
    with pytest.raises(FileProblem, match="never overwritten"):
        verified_copy(str(source), str(destination), sha)
    with pytest.raises(FileProblem, match="changed since the survey"):
        verified_copy(str(source), str(tmp_path / "backup" / "b.dcm"), "0" * 64)
    assert names(destination.parent) == {"a.dcm"}


def test_a_link_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError):
        sha256_of(str(tmp_path / "link"))
    with pytest.raises(FileProblem):
        verified_copy(str(tmp_path / "link"), str(tmp_path / "copy"), None)


def test_inside(tmp_path: Path) -> None:
    (tmp_path / "root" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path / "elsewhere")
    assert is_inside(str(tmp_path / "root" / "sub"), str(tmp_path / "root"))
    assert is_inside(str(tmp_path / "root"), str(tmp_path / "root"))
    assert not is_inside(str(tmp_path / "root" / "link"), str(tmp_path / "root"))
    assert not is_inside(str(tmp_path / "rootless"), str(tmp_path / "root"))
