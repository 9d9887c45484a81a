"""The one way survey, mitigate and restore touch the archive and the backups: below an anchored folder.

An `Anchor` holds a directory descriptor of ROOT or BACKUP (or of a resource folder below one) and does
every operation by a relative path, walked one component at a time with
`O_DIRECTORY | O_NOFOLLOW` relative to its parent's descriptor. `O_NOFOLLOW` guards only the last
component of a path and `os` has no `openat2(RESOLVE_BENEATH)`, so the walk is what makes the guarantee:
no link in any component is ever followed, so neither a header value, nor a report, nor a folder
swapped for a link while the run goes on can steer a read or a write outside the anchor.

Files are looked at with `lstat` first, opened `O_NOFOLLOW | O_NONBLOCK` and checked to be that same
inode, regular files only: a FIFO or device put where a file was is refused without blocking. Names
never replace: a move is `link` + `unlink`, or `renameat2(RENAME_NOREPLACE)` where the file system has
no hard links. Paths are `/`-separated strings; names that are not UTF-8 arrive as surrogate escapes
(`os.fsencode` turns them back into the bytes on disk).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType

from container_app.core.errors import FileProblem
from container_app.support import faults
from container_app.support.fsutil import (
    TEMPORARY_SUFFIX,
    copy_fd,
    fsync_folder,
    sha256_of_fd,
    sync_filesystem_fd,
    temporary_name,
    write_atomically,
)

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_NOREPLACE = 1
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK, errno.EOPNOTSUPP})


def components(rel: str) -> list[str]:
    """The components of a relative path, refused (FileProblem) when one could climb or is empty."""
    if rel in ("", "."):
        return []
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") or "\0" in p for p in parts):
        raise FileProblem(f"the path {rel!r} is not a plain path below its folder; refused")
    return parts


def _not_followed(rel: str, exc: OSError) -> FileProblem:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return FileProblem(f"{rel} passes through a link or a non-folder; never followed")
    return FileProblem(f"{rel}: {exc.strerror or exc}")


def _find_renameat2() -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    return function


_RENAMEAT2 = _find_renameat2()


def rename_noreplace(source: str, target: str, *, dir_fd: int, target_dir_fd: int | None = None) -> None:
    """renameat2(RENAME_NOREPLACE): the kernel refuses (FileExistsError) if `target` exists."""
    if _RENAMEAT2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    result = _RENAMEAT2(dir_fd, os.fsencode(source), target_dir_fd if target_dir_fd is not None else dir_fd,
                        os.fsencode(target), _RENAME_NOREPLACE)
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), target)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What says a file is still the one seen before: ctime cannot be set by a user, inode and device
    change when the file is replaced."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileIdentity:
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Anchor:
    """A folder held open, and every file operation below it (see the module's docstring).

    `Anchor.open(path)` opens a folder the admin named (a link there is the admin's choice and is
    followed once); `descend(rel)` an anchor below it, walked without following any link.
    """

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path  # for messages and reports only: never opened again
        # Folders held open below the anchor (`hold`), by their relative path: a file in one is reached
        # from its descriptor, not by walking every component again (~40 opens per file otherwise).
        self._held: dict[str, int] = {}

    @classmethod
    def open(cls, path: str, *, create: bool = False) -> Anchor:
        path = os.path.abspath(path)
        if create:
            os.makedirs(path, exist_ok=True)
        return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), path)

    def close(self) -> None:
        for rel in list(self._held):
            self.release(rel)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Anchor:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def display(self, rel: str) -> str:
        return self.path if rel in ("", ".") else os.path.join(self.path, *rel.split("/"))

    # --- walking ------------------------------------------------------------------------------

    def _walk(self, parts: list[str], rel: str, create: bool) -> int:
        """A new descriptor of the folder `parts` below the anchor (the caller closes it)."""
        fd = os.dup(self.fd)
        try:
            for part in parts:
                try:
                    child = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o700, dir_fd=fd)
                    child = os.open(part, _FOLDER_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as exc:
            os.close(fd)
            if isinstance(exc, FileNotFoundError):
                raise
            raise _not_followed(rel, exc) from exc
        return fd

    def descend(self, rel: str, *, create: bool = False) -> Anchor:
        """The anchor of the folder `rel` below this one (FileNotFoundError if it is not there)."""
        held = self._held.get(rel)
        if held is not None:
            return Anchor(os.dup(held), self.display(rel))
        return Anchor(self._walk(components(rel), rel, create), self.display(rel))

    def hold(self, rel: str, *, create: bool = False) -> int:
        """Hold the folder `rel` open until `release(rel)`: operations on its entries start from this
        descriptor. It is the folder as it was when held (walked without following links, as always): a
        folder swapped for a link afterwards is never entered, the held one is still the one acted on.
        Returns the descriptor (owned by the anchor); holding a held folder again returns it."""
        held = self._held.get(rel)
        if held is None:
            held = self._held[rel] = self._walk(components(rel), rel, create)
        return held

    def release(self, rel: str) -> None:
        """Close a folder `hold` opened; nothing if it is not held."""
        held = self._held.pop(rel, None)
        if held is not None:
            os.close(held)

    @contextlib.contextmanager
    def parent_of(self, rel: str, *, create: bool = False) -> Iterator[tuple[int, str]]:
        """(descriptor of the folder holding `rel`, last component), for the length of the block."""
        parts = components(rel)
        if not parts:
            raise FileProblem("the anchor itself is not a file")
        held = self._held.get("/".join(parts[:-1]) or ".") if self._held else None
        if held is not None:
            yield held, parts[-1]
            return
        fd = self._walk(parts[:-1], rel, create)
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    # --- looking --------------------------------------------------------------------------------

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry's own status (a link is not followed), or None when it is not there."""
        try:
            with self.parent_of(rel) as (fd, name):
                return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def exists(self, rel: str) -> bool:
        return self.lstat(rel) is not None

    def is_regular(self, rel: str) -> bool:
        st = self.lstat(rel)
        return st is not None and stat.S_ISREG(st.st_mode)

    def same_file(self, first: str, second: str) -> bool:
        a, b = self.lstat(first), self.lstat(second)
        return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)

    def list(self, rel: str = ".") -> list[tuple[str, os.stat_result]]:
        """The entries of a folder with their own status (links not followed), sorted by name."""
        with self.descend(rel) as folder:
            names = sorted(os.listdir(folder.fd))
            found = []
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    found.append((name, os.stat(name, dir_fd=folder.fd, follow_symlinks=False)))
            return found

    def open_regular(self, rel: str) -> int:
        """A read-only descriptor of the regular file `rel`: stat first, then opened without following
        a link or blocking on a FIFO, and checked to be the inode that was stat'ed."""
        with self.parent_of(rel) as (fd, name):
            return open_regular_at(fd, name, rel)

    def sha256(self, rel: str) -> str:
        fd = self.open_regular(rel)
        try:
            return sha256_of_fd(fd)
        finally:
            os.close(fd)

    def read_bytes(self, rel: str, limit: int | None = None) -> bytes:
        """The file's bytes; a file over `limit` bytes is refused rather than read."""
        fd = self.open_regular(rel)
        with os.fdopen(fd, "rb") as handle:
            if limit is not None and os.fstat(handle.fileno()).st_size > limit:
                raise FileProblem(f"{rel} is larger than {limit} bytes; not read")
            return handle.read()

    # --- changing ---------------------------------------------------------------------------------

    def unlink(self, rel: str) -> None:
        with self.parent_of(rel) as (fd, name):
            faults.before_unlink()
            os.unlink(name, dir_fd=fd)

    def move(self, source: str, target: str) -> None:
        """Give `source` the name `target` (both below this anchor), never replacing an existing name:
        FileExistsError if `target` exists."""
        with self.parent_of(source) as (source_fd, source_name), \
                self.parent_of(target) as (target_fd, target_name):
            try:
                os.link(source_name, target_name, src_dir_fd=source_fd, dst_dir_fd=target_fd,
                        follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in _NO_HARD_LINKS:
                    raise
                # No hard links here (some network and FUSE file systems): the kernel's no-replace rename.
                rename_noreplace(source_name, target_name, dir_fd=source_fd, target_dir_fd=target_fd)
                return
            os.unlink(source_name, dir_fd=source_fd)

    def write_atomically(self, rel: str, data: bytes, *, durable: bool = True, token: str | None = None) -> None:
        with self.parent_of(rel, create=True) as (fd, name):
            write_atomically(name, data, durable=durable, dir_fd=fd, token=token)

    def remove_temporary(self, rel: str) -> bool:
        """Remove a temporary this package made (journaled by name before it was created); True if removed."""
        if not rel.endswith(TEMPORARY_SUFFIX):
            raise FileProblem(f"{rel} is not one of our temporaries; never removed")
        try:
            with self.parent_of(rel) as (fd, name):
                os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        return True

    def sync(self) -> None:
        """Make everything written on this anchor's file system durable."""
        sync_filesystem_fd(self.fd)


def open_regular_at(dir_fd: int, name: str, shown: str | None = None) -> int:
    """`Anchor.open_regular` for a name in an open folder."""
    shown = shown or name
    try:
        before = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise _not_followed(shown, exc) from exc
    if not stat.S_ISREG(before.st_mode):
        raise FileProblem(f"{shown} is not a regular file (links, FIFOs and devices are never read)")
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(now.st_mode):
            raise FileProblem(f"{shown} was replaced while it was opened; not read")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def copy_verified(source: Anchor, source_rel: str, destination: Anchor, destination_rel: str,
                  expected_sha256: str | None, *, durable: bool = True, token: str | None = None,
                  source_unchanged: Callable[[os.stat_result], bool] | None = None) -> str:
    """Copy a file from one anchor to another (the destination must not exist) and prove the copy.

    The copy goes to a temporary beside the destination, created with O_EXCL under a random name (with
    `token`, one the caller journaled before, so that a rerun after a kill removes exactly this
    temporary: `temporary_name(name, token)`); it is read back and compared with the source's sha256
    (and `expected_sha256`), and only then linked into place, never replacing anything.
    `source_unchanged`: asked of the source as it is once copied (its descriptor's stat); False refuses the
    copy, so bytes written to the file while, or before, it was read are never taken for its surveyed bytes.
    Returns the sha256. Raises FileProblem.
    """
    parts = components(destination_rel)
    temporary_rel = "/".join([*parts[:-1], temporary_name(parts[-1], token)])
    created = False
    try:
        with destination.parent_of(destination_rel, create=True) as (folder_fd, name):
            temporary = temporary_rel.rsplit("/", 1)[-1]
            source_fd = source.open_regular(source_rel)
            try:
                out_fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=folder_fd)
                created = True
                # With the surveyed sha256 known, the copy read back is what proves the bytes; the source is
                # hashed as it is read only when there is nothing to compare with (or, below, to say whether
                # a mismatch is the source's change or a bad copy). One read and hash less per file.
                digest = hashlib.sha256() if expected_sha256 is None else None
                try:
                    faults.before_backup_write()
                    copy_fd(source_fd, out_fd, digest)
                    # The copy carries the original's permission bits and modification time (as `cp -p`
                    # would), so a restore from it puts back the file as it was, not a 0600 file dated now.
                    source_stat = os.fstat(source_fd)
                    if source_unchanged is not None and not source_unchanged(source_stat):
                        raise FileProblem("the file changed since the survey (size, times or inode); not touched")
                    os.fchmod(out_fd, stat.S_IMODE(source_stat.st_mode) & 0o777)
                    os.utime(out_fd, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
                    if durable:
                        os.fsync(out_fd)
                finally:
                    os.close(out_fd)
            finally:
                os.close(source_fd)
            check_fd = open_regular_at(folder_fd, temporary)
            try:
                read_back = sha256_of_fd(check_fd)
            finally:
                os.close(check_fd)
            copied = digest.hexdigest() if digest is not None else expected_sha256
            if read_back != copied:
                if expected_sha256 is not None and source.sha256(source_rel) != expected_sha256:
                    raise FileProblem("the file changed since the survey (sha256 differs); not touched")
                raise FileProblem("the copy reads back different bytes; not touched")
            assert copied is not None
            try:
                try:
                    os.link(temporary, name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd, follow_symlinks=False)
                except OSError as exc:
                    if exc.errno not in _NO_HARD_LINKS:
                        raise
                    rename_noreplace(temporary, name, dir_fd=folder_fd)
                    created = False
            except FileExistsError:
                raise FileProblem(f"{destination.display(destination_rel)} already exists; never overwritten") from None
            if durable:
                fsync_folder(dir_fd=folder_fd)
            return copied
    except OSError as exc:
        raise FileProblem(f"copy failed: {exc.strerror or exc}") from exc
    finally:
        if created:  # only the temporary this call made (O_EXCL) is ever removed
            with contextlib.suppress(OSError, FileProblem):
                destination.remove_temporary(temporary_rel)
