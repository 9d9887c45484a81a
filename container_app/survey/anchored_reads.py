"""The survey's reads below ROOT, all through `support.anchored`: no link in any folder is ever followed.

The pipeline hands its workers absolute paths (a resource's folder and the names in it). Opening those
paths as they are would follow a folder of ROOT swapped for a link while the survey runs, so each process
keeps ROOT's descriptor (`anchor_root`, called by `discover` before the workers fork, or by the worker
itself) and the descriptor of the resource folder it reads now: that folder is walked from ROOT once,
one component at a time without following links, and its files are then opened relative to it (stat
first, `O_NOFOLLOW | O_NONBLOCK`, the same inode), with no per-file walk from ROOT.

A path that is not below the registered ROOT (a caller that never surveyed, such as a test reading one
file) is anchored at its own folder, which the caller named: what is inside it is still never followed.
Not thread-safe by design: the survey's workers are processes, each with its own descriptors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from container_app.core.errors import FileProblem
from container_app.support.anchored import Anchor, components

__all__ = ["anchor_root", "hold_root", "lstat_in", "open_in", "open_path", "read_ahead"]

T = TypeVar("T")

_root: Anchor | None = None
_folder: Anchor | None = None  # the resource folder read last: a worker reads a resource's files together


def anchor_root(root: str) -> Anchor:
    """Hold `root` (ROOT, as the admin named it: a link there is followed once) for the reads that follow.

    A survey of a new ROOT, or the same path opened anew, forgets the folders held for the previous one.
    """
    global _root
    _forget_folder()
    if _root is not None:
        _root.close()
    _root = Anchor.open(root)
    return _root


def hold_root(root: str) -> None:
    """`anchor_root` unless this process already holds `root` (a forked worker inherits it from `discover`)."""
    if _root is None or _root.path != os.path.abspath(root):
        anchor_root(root)


def _forget_folder() -> None:
    global _folder
    if _folder is not None:
        _folder.close()
        _folder = None


def _below_root(directory: str) -> str | None:
    """`directory` relative to the registered ROOT, or None when it is not below it."""
    if _root is None:
        return None
    if directory == _root.path:
        return "."
    prefix = _root.path.rstrip("/") + "/"
    return directory[len(prefix):] if directory.startswith(prefix) else None


def _open_folder(directory: str) -> Anchor:
    """The held descriptor of `directory`, or a new one: walked from ROOT without following links."""
    global _folder
    if _folder is not None and _folder.path == directory:  # the common case, per file: no path work
        return _folder
    directory = os.path.abspath(directory)
    if _folder is not None and _folder.path == directory:
        return _folder
    _forget_folder()
    rel = _below_root(directory)
    if rel is None:
        folder = Anchor.open(directory)
    else:
        assert _root is not None
        try:
            folder = _root.descend(rel)
        except FileNotFoundError:
            if not _deleted(_root):
                raise
            # ROOT itself was removed and made again since it was held (tests rebuild archives in place).
            folder = anchor_root(_root.path).descend(rel)
        folder.path = directory
    _folder = folder
    return folder


def _deleted(anchor: Anchor) -> bool:
    return os.fstat(anchor.fd).st_nlink == 0


@contextlib.contextmanager
def _parent(directory: str, name: str) -> Iterator[tuple[int, str]]:
    """(descriptor of the folder holding `name`, its last component); `name` may be `sub/x.dcm`."""
    folder = _open_folder(directory)
    if "/" not in name:
        components(name)  # refuses "", "." and ".."
        yield folder.fd, name
        return
    with folder.parent_of(name) as pair:
        yield pair


def _retrying(action: Callable[[], T]) -> T:
    """`action`, once more on a fresh walk if the held folder was removed since (then the name is gone)."""
    try:
        return action()
    except FileNotFoundError:
        if not _stale():
            raise
        return action()


def lstat_in(directory: str, name: str) -> os.stat_result:
    """The entry's own status (a link is not followed). Raises OSError or FileProblem."""
    if "/" not in name and name not in _NOT_NAMES:  # the common case, per file: no generator, no closure
        try:
            return os.stat(name, dir_fd=_open_folder(directory).fd, follow_symlinks=False)
        except FileNotFoundError:
            if not _stale():
                raise
            return os.stat(name, dir_fd=_open_folder(directory).fd, follow_symlinks=False)

    def action() -> os.stat_result:
        with _parent(directory, name) as (fd, last):
            return os.stat(last, dir_fd=fd, follow_symlinks=False)
    return _retrying(action)


def open_in(directory: str, name: str, before: os.stat_result | None = None) -> int:
    """A read-only descriptor of the regular file `name` in `directory`: its `lstat` (`before`, when the
    caller just took it), then opened `O_NOFOLLOW | O_NONBLOCK` relative to the folder's descriptor and
    checked to be that inode, as `anchored.open_regular_at` does. Raises OSError or FileProblem."""
    if "/" not in name and name not in _NOT_NAMES:
        try:
            return _open_checked(_open_folder(directory).fd, name, name, before)
        except FileNotFoundError:
            if not _stale():
                raise
            return _open_checked(_open_folder(directory).fd, name, name, before)

    def action() -> int:
        with _parent(directory, name) as (fd, last):
            return _open_checked(fd, last, name, before)
    return _retrying(action)


def _open_checked(fd: int, name: str, shown: str, before: os.stat_result | None) -> int:
    st = before if before is not None else os.stat(name, dir_fd=fd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise FileProblem(f"{shown} is not a regular file (links, FIFOs and devices are never read)")
    opened = _open_at(fd, name)
    try:
        now = os.fstat(opened)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise FileProblem(f"{shown} was replaced while it was opened; not read")
        os.set_blocking(opened, True)
    except BaseException:
        os.close(opened)
        raise
    return opened


def _stale() -> bool:
    """Whether the held folder was removed since it was opened (then forgotten, for a fresh walk)."""
    if _folder is None or not _deleted(_folder):
        return False
    _forget_folder()
    return True


_NOT_NAMES = frozenset({"", ".", ".."})
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_PROC_FD = os.path.isdir("/proc/self/fd")


def _open_at(fd: int, name: str) -> int:
    """openat(fd, name, O_NOFOLLOW | O_NONBLOCK). Spelled `/proc/self/fd/<fd>/<name>` where /proc is
    mounted: the kernel resolves that link to the open folder itself, never to a path looked up again,
    so it is the same open, and the name it is given is the file's real path for whoever watches opens
    (strace, audit logs, the tests' spies)."""
    if _PROC_FD:
        return os.open(f"/proc/self/fd/{fd}/{name}", _FILE_FLAGS)
    return os.open(name, _FILE_FLAGS, dir_fd=fd)


def open_path(path: str) -> int:
    """`open_in` for an absolute path: relative to the held resource folder when it is below it.

    Raises OSError only (a refusal is one, its message as strerror): its callers (content checks,
    pydicom's opener) handle an unreadable file as OSError.
    """
    if not path.startswith("/"):  # `..` in an absolute path is refused below, as a component
        path = os.path.abspath(path)
    folder = _folder.path if _folder is not None else None
    held = folder.rstrip("/") + "/" if folder is not None else None
    try:
        if folder is not None and held is not None and path.startswith(held):
            return open_in(folder, path[len(held):])
        directory, name = os.path.split(path)
        return open_in(directory, name)
    except FileProblem as exc:
        raise OSError(errno.EINVAL, str(exc), path) from exc


# --- reading ahead -----------------------------------------------------------------------------------------

#: Reads kept in flight per process: on a cold cache (real archives never are in the page cache, and network
#: storage answers each read late) one read at a time leaves the disk idle; 32 readers reach its floor.
READ_AHEAD_THREADS = 32
_HEAD_BYTES = 8192
_read_ahead_pool: ThreadPoolExecutor | None = None
_read_ahead_pid = 0


def read_ahead(directory: str, names: Sequence[str]) -> None:
    """Start reading the first bytes of `names` in threads, so that the reads the survey then makes one
    after the other find them in the page cache. Only warms the cache: nothing read here is used, and each
    file is opened as `open_in` opens it (`_open_checked`: a regular file only, no link followed, no FIFO
    waited on). The threads get their own descriptor of the folder, closed when they are done, so the
    folder this process holds may change meanwhile."""
    global _read_ahead_pool, _read_ahead_pid
    plain = [n for n in names if "/" not in n and n not in _NOT_NAMES]
    if not plain:
        return
    if _read_ahead_pool is None or _read_ahead_pid != os.getpid():  # threads do not survive a fork
        _read_ahead_pool = ThreadPoolExecutor(READ_AHEAD_THREADS, thread_name_prefix="read-ahead")
        _read_ahead_pid = os.getpid()
    try:
        folder_fd = os.dup(_open_folder(directory).fd)
    except (OSError, FileProblem):
        return  # the reads themselves will say why
    if _in_page_cache(folder_fd, plain):
        os.close(folder_fd)
        return
    # Thread i warms names i, i+N, i+2N...: the threads move down the list together, in the order the survey
    # reads it, with one task per thread rather than per file (a task costs about what a warm open does).
    stripes = [plain[i::READ_AHEAD_THREADS] for i in range(min(READ_AHEAD_THREADS, len(plain)))]
    remaining = [len(stripes)]
    lock = threading.Lock()

    def warm(stripe: Sequence[str]) -> None:
        try:
            for name in stripe:
                try:
                    fd = _open_checked(folder_fd, name, name, None)
                    try:
                        os.pread(fd, _HEAD_BYTES, 0)
                    finally:
                        os.close(fd)
                except (OSError, FileProblem):
                    pass  # only a hint: the survey's own read reports the problem
        finally:
            with lock:  # the last one closes the folder's descriptor
                remaining[0] -= 1
                last = remaining[0] == 0
            if last:
                os.close(folder_fd)

    for stripe in stripes:
        _read_ahead_pool.submit(warm, stripe)


def _in_page_cache(folder_fd: int, names: Sequence[str]) -> bool:
    """Whether the first, middle and last files' first bytes are in memory already: then so, most likely, is
    the rest, and reading ahead would only cost CPU (about 70 us a file, 13% of a warm survey, issue 17).

    Asked with RWF_NOWAIT, which reads only what is cached and never waits for a disk read (on a miss the
    kernel starts reading that file, which does no harm). Where it is not supported, the answer is no:
    reading ahead is then always done, as it is harmless.
    """
    probe = bytearray(1)
    for name in dict.fromkeys((names[0], names[len(names) // 2], names[-1])):
        try:
            fd = _open_checked(folder_fd, name, name, None)
        except (OSError, FileProblem):
            return False
        try:
            if os.preadv(fd, [probe], 0, os.RWF_NOWAIT) != 1:
                return False
        except OSError:  # EAGAIN: not cached; EOPNOTSUPP: not supported; any other error: read ahead anyway
            return False
        finally:
            os.close(fd)
    return True
