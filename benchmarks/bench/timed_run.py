"""Running one command and measuring it: wall time, exit code, CPU of its tree, peak RSS, and how busy the
rest of the machine was meanwhile (a shared machine's load skews the figures, so it is recorded and waited out).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.process_tree import TreeSampler
from bench.progress import log

GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class RunResult:
    seconds: float
    returncode: int
    maxrss_kib: int  # largest single process of the tree (GNU time %M, else wait4 rusage)
    cpu_s: float  # user + system of the tree (waited-for descendants included)
    tree_peak_kib: int | None = None  # sampled summed PSS of the tree (only when sampling)
    stderr_tail: str = ""
    foreign_cpu_s: float | None = None  # CPU used meanwhile by processes outside the tree (machine busy?)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user/nice
    return (sum(fields) - idle - guest) / CLK_TCK


def run_measured(cmd: Sequence[str], *, stdout: Any = subprocess.DEVNULL, sample_tree: bool = False,
                 env: dict[str, str] | None = None, cwd: str | Path | None = None,
                 stdin_data: bytes | None = None) -> RunResult:
    """Run ``cmd``; wall time, exit code, peak RSS of its largest process, CPU of the whole tree.

    The command runs under GNU time when available: Linux folds the RSS of the pre-exec image into
    ru_maxrss, so a child forked straight from this (large) Python process would report at least our own
    RSS. GNU time is small, so the %M it reports for its child is the command's own.
    """
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *cmd] if USE_GNU_TIME else list(cmd)
        busy0 = busy_cpu_s()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=stdout, stderr=err, env=env, cwd=cwd,
                                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid) if sample_tree else None
        if sampler:
            sampler.start()
        if stdin_data is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin_data)
            proc.stdin.close()
        _, status, ru = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        busy1 = busy_cpu_s()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler:
            sampler.stop()
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
        maxrss = ru.ru_maxrss
        if USE_GNU_TIME:
            text = rss.read().split()
            # GNU time also writes "Command exited with non-zero status N" before the figure
            if text and text[-1].isdigit():
                maxrss = int(text[-1])
    cpu = ru.ru_utime + ru.ru_stime
    foreign = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu)
    return RunResult(elapsed, proc.returncode, maxrss, cpu, sampler.peak_kib if sampler else None, tail,
                     foreign)


def wait_quiet(limit_s: float, threshold: float = 0.10) -> None:
    """Wait (up to limit_s) until the machine's CPUs are less than ``threshold`` busy over one second."""
    if limit_s <= 0:
        return
    cores = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + limit_s
    share = 1.0
    while time.monotonic() < deadline:
        b0 = busy_cpu_s()
        time.sleep(1.0)
        b1 = busy_cpu_s()
        if b0 is None or b1 is None:
            return
        share = (b1 - b0) / cores
        if share < threshold:
            return
    log(f"machine still busy ({100 * share:.0f}% of the CPUs) after waiting {limit_s:g} s: measuring anyway")


def busy_note(runs: Sequence[RunResult], best: RunResult) -> str | None:
    """Say so when other processes took a noticeable share of the CPUs while we measured."""
    cores = len(os.sched_getaffinity(0))

    def share_of(r: RunResult) -> float:
        foreign = r.foreign_cpu_s or 0.0
        # /proc/stat counts in clock ticks (10 ms): ignore a few stray ticks on very short runs
        return 0.0 if foreign < 5 / CLK_TCK else foreign / max(r.seconds * cores, 1e-9)

    worst = max(share_of(r) for r in runs)
    share = share_of(best)
    if share >= 0.10:
        return (f"BUSY MACHINE: other processes used {100 * share:.0f}% of the CPUs during the best run "
                f"(up to {100 * worst:.0f}% during the others)")
    if worst >= 0.10:
        return f"best run quiet; others disturbed (up to {100 * worst:.0f}% of the CPUs used by other processes)"
    return None


def _gnu_time_works() -> bool:
    if not os.access(GNU_TIME, os.X_OK):
        return False
    with tempfile.NamedTemporaryFile("r") as fh:
        r = subprocess.run([GNU_TIME, "-q", "-f", "%M", "-o", fh.name, "true"], capture_output=True)
        return r.returncode == 0 and fh.read().strip().isdigit()


# Probed once, at import: every run and the tables' footnote depend on it (without a working GNU time,
# peak RSS comes from wait4 rusage and is an upper bound)
USE_GNU_TIME = _gnu_time_works()
