"""File-system helpers every stage shares: one atomic write, one verified copy, sha256, syncs, containment.

Each helper that names a file takes it as a path, or as `(dir_fd, name)`: a name relative to an open
directory, so that a caller holding a directory descriptor never has a path re-resolved through links
swapped in behind its back.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any

from container_app.core.errors import FileProblem
from container_app.support import faults

#: Every temporary this package creates ends so; the random part before it makes the name unique, so a
#: file that merely looks like ours (an archive file called `IM0001.part-1`) is never taken for one.
TEMPORARY_SUFFIX = ".xrs-tmp"
_CHUNK = 1 << 20
# One read buffer per thread, reused: `os.read(fd, 1 MiB)` and `hashlib.file_digest` allocate a new
# buffer per call, which above malloc's mmap threshold is an mmap, page faults and an munmap per file
# (on a mitigation of 9,911 small files, 26 GB allocated in all and a third of its system time).
_BUFFERS = threading.local()


def _read_buffer() -> bytearray:
    buffer: bytearray | None = getattr(_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _BUFFERS.buffer = bytearray(_CHUNK)
    return buffer


def sha256_of_fd(fd: int) -> str:
    """The sha256 of what is left to read from an open file."""
    digest = hashlib.sha256()
    buffer = _read_buffer()
    view = memoryview(buffer)
    while count := os.readv(fd, [buffer]):
        digest.update(view[:count])
    return digest.hexdigest()


def copy_fd(source_fd: int, out_fd: int, digest: Any = None) -> None:
    """Copy what is left of `source_fd` to `out_fd` (every byte written), feeding `digest` if given."""
    buffer = _read_buffer()
    whole = memoryview(buffer)
    while count := os.readv(source_fd, [buffer]):
        view = whole[:count]
        if digest is not None:
            digest.update(view)
        while view:
            view = view[os.write(out_fd, view):]


def temporary_name(name: str, token: str | None = None) -> str:
    """A hidden name beside `name`, created only with O_EXCL, so it can never be someone else's file.

    `token` is random per attempt; a caller that journals it before making any temporary can find
    (and remove) exactly its own after a kill, without an fsync of the journal per temporary."""
    return f".{name}.{token or secrets.token_hex(8)}{TEMPORARY_SUFFIX}"


def _split(path: str) -> tuple[str, str]:
    folder, name = os.path.split(path)
    return folder or ".", name


def fsync_folder(folder: str | None = None, *, dir_fd: int | None = None) -> None:
    """Make a folder's entries (a rename, a new link) durable."""
    if dir_fd is not None:
        os.fsync(dir_fd)
        return
    fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@functools.cache
def _find_syncfs() -> Callable[[int], int] | None:
    """libc's syncfs, found at the first sync (ctypes is not imported, nor libc opened, by a run that
    writes only its reports)."""
    import ctypes

    try:
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    return function


def sync_filesystem(path: str) -> None:
    """Make everything written on the file system holding `path` durable: one syncfs(2) for a batch of
    copies costs what a single fsync does, where an fsync per copy costs one each."""
    fd = os.open(path, os.O_RDONLY)
    try:
        sync_filesystem_fd(fd)
    finally:
        os.close(fd)


def sync_filesystem_fd(fd: int) -> None:
    """`sync_filesystem` for an open descriptor on that file system."""
    syncfs = _find_syncfs()
    if syncfs is None or syncfs(fd) != 0:
        os.sync()


class SaveFile:
    """A file that appears under its name only once it is complete, in the manner of borg's `SaveFile`.

        with SaveFile(path) as handle:      # the block is the commit
            handle.write(text)

    The data goes to a temporary in the same folder (created with O_EXCL under a random name), is
    flushed and fsynced, renamed over the name with `os.replace`, and the folder is fsynced. An exception
    in the block removes the temporary and leaves any earlier file as it was. `durable=False` skips both
    fsyncs, for callers that write a batch and sync the file system once (`sync_filesystem`).

    Text is UTF-8; file names that are not UTF-8 reach us as lone surrogates (surrogateescape) and are
    written as `\\udcXX`, which in JSON is the escape that reads back as the same name, instead of
    failing the whole run. Streaming writers that keep the file open across calls use `open()`,
    `commit()` and `abort()`, which the `with` form calls for them.
    """

    def __init__(self, path: str, *, binary: bool = False, newline: str | None = None, durable: bool = True,
                 mode: int = 0o666, dir_fd: int | None = None, token: str | None = None) -> None:
        if dir_fd is not None and "/" in path:  # the temporary must sit beside the name, in that folder
            raise ValueError(f"with dir_fd, {path!r} must be a name in that folder, not a path")
        self.folder, self.name = (".", path) if dir_fd is not None else _split(path)
        self._binary, self._newline, self._durable, self._mode = binary, newline, durable, mode
        self._given_dir_fd = dir_fd
        self._token = token  # see temporary_name: a journaled token lets a rerun find this temporary
        self._dir_fd: int | None = None
        self._temporary: str | None = None
        self.handle: IO[Any] | None = None

    def open(self) -> IO[Any]:
        self._dir_fd = (self._given_dir_fd if self._given_dir_fd is not None
                        else os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY))
        temporary = temporary_name(self.name, self._token)
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, self._mode,
                         dir_fd=self._dir_fd)
        except BaseException:
            self._close_folder()
            raise
        self._temporary = temporary
        if self._binary:
            self.handle = os.fdopen(fd, "wb")
        else:
            self.handle = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace", newline=self._newline)
        return self.handle

    def commit(self) -> None:
        assert self.handle is not None and self._temporary is not None and self._dir_fd is not None
        try:
            self.handle.flush()
            if self._durable:
                os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self._temporary, self.name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
            self._temporary = None
            if self._durable:
                fsync_folder(dir_fd=self._dir_fd)
        except BaseException:
            self.abort()
            raise
        self._close_folder()

    def abort(self) -> None:
        """Leave without a trace: the temporary (ours: created with O_EXCL) is removed, the name untouched."""
        if self.handle is not None:
            self.handle.close()
        if self._temporary is not None and self._dir_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._temporary, dir_fd=self._dir_fd)
            self._temporary = None
        self._close_folder()

    def _close_folder(self) -> None:
        if self._dir_fd is not None and self._dir_fd != self._given_dir_fd:
            os.close(self._dir_fd)
        self._dir_fd = None

    def __enter__(self) -> IO[Any]:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def write_atomically(path: str, data: bytes, *, durable: bool = True, mode: int = 0o644,
                     dir_fd: int | None = None, token: str | None = None) -> None:
    """`data` under `path`, all or nothing (see SaveFile)."""
    with SaveFile(path, binary=True, durable=durable, mode=mode, dir_fd=dir_fd, token=token) as handle:
        handle.write(data)


def open_regular(path: str, *, dir_fd: int | None = None) -> int:
    """A read-only descriptor of a regular file. A link as the last component is not followed, and a FIFO,
    device or socket put where a file was expected is refused at once: opening with O_NONBLOCK means a
    FIFO without a writer cannot hang the run."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (FIFOs, devices and sockets are never read)", path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def sha256_of(path: str, *, dir_fd: int | None = None) -> str:
    """The sha256 of a regular file's bytes (see open_regular)."""
    fd = open_regular(path, dir_fd=dir_fd)
    try:
        return sha256_of_fd(fd)
    finally:
        os.close(fd)


def verified_copy(source: str, destination: str, expected_sha256: str | None, *, durable: bool = True) -> str:
    """Copy `source` to `destination` (which must not exist) and prove the copy's bytes.

    The copy goes to a temporary name, is flushed, read back and compared with the source's sha256
    (and with `expected_sha256` when given), and only then linked into place: a half-written copy
    never carries the final name. `durable` fsyncs the copy and its folder; callers copying a batch
    pass False and call `sync_filesystem` once before relying on any of them. Returns the sha256.
    """
    folder, name = _split(destination)
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, temporary_name(name))
    created = False
    digest = hashlib.sha256()
    try:
        source_fd = open_regular(source)
        try:
            out_fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            created = True
            try:
                faults.before_backup_write()
                copy_fd(source_fd, out_fd, digest)
                if durable:
                    os.fsync(out_fd)
            finally:
                os.close(out_fd)
        finally:
            os.close(source_fd)
        copied = digest.hexdigest()
        if expected_sha256 is not None and copied != expected_sha256:
            raise FileProblem("the file changed since the survey (sha256 differs); not touched")
        if sha256_of(temporary) != copied:
            raise FileProblem("the backup copy reads back different bytes; not touched")
        try:
            os.link(temporary, destination)
        except FileExistsError:
            raise FileProblem(f"a backup already exists at {destination}; never overwritten") from None
        if durable:
            fsync_folder(folder)
        return copied
    except OSError as exc:
        raise FileProblem(f"backup failed: {exc.strerror or exc}") from exc
    finally:
        if created:  # only a temporary this call made (O_EXCL) is ever removed
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)


def is_inside(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or below it, once both are resolved (links followed)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)
