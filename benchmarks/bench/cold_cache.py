"""Cold-cache runs without root: every file of the corpus evicted from the page cache with
``posix_fadvise(DONTNEED)`` before each run, and the read floor with N concurrent readers (the first 8 KB of
every file, what a header reader cannot avoid), which bounds what a survey with N reads in flight can reach."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# N threads, each doing open + pread(8192) + close on its share of the files (the GIL is released in the
# system calls, so N threads keep N reads in flight, like N processes would)
FLOOR_THREADS = r"""
import os, sys
from concurrent.futures import ThreadPoolExecutor
def walk(d):
    with os.scandir(d) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                yield from walk(e.path)
            elif e.is_file(follow_symlinks=False):
                yield e.path
def head(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        return len(os.pread(fd, 8192, 0))
    finally:
        os.close(fd)
with ThreadPoolExecutor(int(sys.argv[2])) as ex:
    n = sum(1 for _ in ex.map(head, walk(sys.argv[1]), chunksize=64))
print(n)
"""


def floor_threads_cmd(root: Path, readers: int) -> list[str]:
    return [sys.executable, "-c", FLOOR_THREADS, str(root), str(readers)]


def evict(root: Path) -> int:
    """Drop every file under ``root`` from the page cache (works without root); the number of files."""
    n = 0
    for dirpath, _, names in os.walk(root):
        for name in names:
            try:
                fd = os.open(os.path.join(dirpath, name), os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
            n += 1
    return n
