"""support.anchored: no link in any component is followed, nothing is replaced, nothing blocks."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from container_app.core.errors import FileProblem
from container_app.support.anchored import Anchor, components, copy_verified, rename_noreplace


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.dcm").write_bytes(b"inside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.dcm").write_bytes(b"outside")
    (root / "link").symlink_to(outside, target_is_directory=True)
    return root


@pytest.mark.parametrize("rel", ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/\0"])
def test_paths_that_could_climb_are_refused(rel: str) -> None:
    if rel == "":
        assert components(rel) == []
        return
    with pytest.raises(FileProblem):
        components(rel)


def test_a_link_in_any_component_is_never_followed(tree: Path) -> None:
    with Anchor.open(str(tree)) as root:
        assert root.read_bytes("a/b/f.dcm") == b"inside"
        for operation in (lambda: root.read_bytes("link/f.dcm"), lambda: root.sha256("link/f.dcm"),
                          lambda: root.unlink("link/f.dcm"), lambda: root.descend("link"),
                          lambda: root.write_atomically("link/new", b"x"), lambda: root.move("a/b/f.dcm", "link/g")):
            with pytest.raises((FileProblem, OSError)):
                operation()
        with pytest.raises(FileProblem, match="never followed"):
            root.lstat("link/f.dcm")
        assert root.lstat("link") is not None  # the link itself is looked at, never through
    assert (tree.parent / "outside" / "f.dcm").read_bytes() == b"outside"
    assert sorted(p.name for p in (tree.parent / "outside").iterdir()) == ["f.dcm"]


def test_a_link_as_the_last_component_is_not_read(tree: Path) -> None:
    (tree / "a" / "b" / "l.dcm").symlink_to(tree.parent / "outside" / "f.dcm")
    with Anchor.open(str(tree)) as root, pytest.raises(FileProblem, match="not a regular file"):
        root.read_bytes("a/b/l.dcm")


def test_a_fifo_is_refused_without_blocking(tree: Path) -> None:
    os.mkfifo(tree / "a" / "pipe")
    with Anchor.open(str(tree)) as root, pytest.raises(FileProblem, match="not a regular file"):
        root.sha256("a/pipe")


def test_a_move_never_replaces(tree: Path) -> None:
    (tree / "a" / "b" / "g.dcm").write_bytes(b"other")
    with Anchor.open(str(tree)) as root:
        with pytest.raises(FileExistsError):
            root.move("a/b/f.dcm", "a/b/g.dcm")
        root.move("a/b/f.dcm", "a/h.dcm")
    assert (tree / "a" / "b" / "g.dcm").read_bytes() == b"other"
    assert (tree / "a" / "h.dcm").read_bytes() == b"inside" and not (tree / "a" / "b" / "f.dcm").exists()


def test_without_hard_links_the_move_is_the_kernels_no_replace_rename(tree: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(*_args: object, **_kwargs: object) -> None:
        raise OSError(errno.EPERM, "hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    (tree / "a" / "b" / "g.dcm").write_bytes(b"other")
    with Anchor.open(str(tree)) as root:
        try:
            with pytest.raises(FileExistsError):
                root.move("a/b/f.dcm", "a/b/g.dcm")
        except OSError as exc:  # a kernel or libc without renameat2
            pytest.skip(f"renameat2 unavailable: {exc}")
        root.move("a/b/f.dcm", "a/b/moved.dcm")
    assert (tree / "a" / "b" / "moved.dcm").read_bytes() == b"inside"
    assert (tree / "a" / "b" / "g.dcm").read_bytes() == b"other"


def test_rename_noreplace_refuses_an_existing_name(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"1")
    (tmp_path / "y").write_bytes(b"2")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            rename_noreplace("x", "y", dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EINVAL):
            pytest.skip("renameat2 unavailable")
        raise
    finally:
        os.close(fd)
    assert (tmp_path / "y").read_bytes() == b"2"


def test_copy_verified_never_overwrites_and_leaves_no_temporary(tree: Path, tmp_path: Path) -> None:
    backup_folder = tmp_path / "backup"
    with Anchor.open(str(tree)) as root, Anchor.open(str(backup_folder), create=True) as backup:
        copied = copy_verified(root, "a/b/f.dcm", backup, "x/y/f.dcm", None, token="0123456789abcdef")
        with pytest.raises(FileProblem, match="never overwritten"):
            copy_verified(root, "a/b/f.dcm", backup, "x/y/f.dcm", None, token="0123456789abcdef")
        with pytest.raises(FileProblem, match="changed since the survey"):
            copy_verified(root, "a/b/f.dcm", backup, "x/y/g.dcm", "0" * 64)
    assert copied == __import__("hashlib").sha256(b"inside").hexdigest()
    assert sorted(p.name for p in (backup_folder / "x" / "y").iterdir()) == ["f.dcm"]


def test_only_our_temporaries_are_removed(tree: Path) -> None:
    with Anchor.open(str(tree)) as root, pytest.raises(FileProblem, match="not one of our temporaries"):
        root.remove_temporary("a/b/f.dcm")
    assert (tree / "a" / "b" / "f.dcm").exists()
