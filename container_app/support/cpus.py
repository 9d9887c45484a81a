"""How many CPUs this process may use: its affinity mask, capped by its cgroup's CPU quota.

`os.cpu_count()` is the host's count. In a container limited to one CPU (Swarm's and Kubernetes'
`limit-cpu`, `docker run --cpus`) it still says 64 on a 64-core node, and a worker per host core then
thrashes inside the quota. The limits that apply are:

- the affinity mask (`taskset`, `docker run --cpuset-cpus`): `os.sched_getaffinity(0)`;
- the CFS quota of the process's cgroup or of any cgroup above it: cgroup v2 `cpu.max`
  (`"<quota> <period>"` or `"max <period>"`), cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`
  (quota `-1`: none). A quota of 1.5 periods lets 2 workers run, so it is rounded up.

Only a few small files under /proc and /sys are read; any that is missing or unreadable counts as no limit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

PROC_SELF_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Where cgroup v1 mounts the cpu controller, by distribution and runtime.
V1_CPU_MOUNTS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


@dataclass(frozen=True)
class CpuLimits:
    """The limits found: CPUs in the affinity mask, and the tightest cgroup quota in CPUs (None: no quota)."""

    affinity: int
    quota: float | None

    @property
    def usable(self) -> int:
        """Workers worth starting: the affinity, capped by the quota rounded up; at least 1."""
        count = self.affinity
        if self.quota is not None:
            count = min(count, math.ceil(self.quota))
        return max(1, count)


def affinity_count() -> int:
    """CPUs the scheduler may run this process on (the host's count where affinity is not available)."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        try:
            return max(1, len(getaffinity(0)))
        except OSError:
            pass
    return os.cpu_count() or 1


def _cgroup_paths(proc_self_cgroup: Path) -> Iterator[tuple[str, str]]:
    """(controllers, path) per line of /proc/self/cgroup: `hierarchy:controllers:path`; v2 has empty controllers."""
    try:
        text = proc_self_cgroup.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            yield parts[1], parts[2]


def _upwards(base: Path, cgroup_path: str) -> Iterator[Path]:
    """`base/<cgroup_path>` and every folder above it up to `base`, deepest first.

    Inside a container's cgroup namespace the path may name a host cgroup that is not mounted there (the
    container sees its own cgroup at the mount's root): folders that do not exist are simply not there to read.
    """
    parts = PurePosixPath("/", cgroup_path).parts[1:]
    for depth in range(len(parts), -1, -1):
        candidate = base.joinpath(*parts[:depth]) if depth else base
        if ".." not in parts[:depth] and candidate.is_dir():
            yield candidate


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return None


def _v2_quota(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")
    if not text:
        return None
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v1_quota(folder: Path) -> float | None:
    quota_text, period_text = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    if quota_text is None or period_text is None:
        return None
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_quota(proc_self_cgroup: Path = PROC_SELF_CGROUP, cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The tightest CPU quota, in CPUs, of this process's cgroups and their ancestors (v2 and v1); None: none."""
    quotas: list[float] = []
    for controllers, path in _cgroup_paths(proc_self_cgroup):
        if controllers == "":
            folders = _upwards(cgroup_root, path)
            quotas.extend(q for q in map(_v2_quota, folders) if q is not None)
        elif "cpu" in controllers.split(","):
            for mount in V1_CPU_MOUNTS:
                if (cgroup_root / mount).is_dir():
                    quotas.extend(q for q in map(_v1_quota, _upwards(cgroup_root / mount, path)) if q is not None)
                    break
    return min(quotas) if quotas else None


def cpu_limits(proc_self_cgroup: Path = PROC_SELF_CGROUP, cgroup_root: Path = CGROUP_ROOT) -> CpuLimits:
    return CpuLimits(affinity=affinity_count(), quota=cgroup_quota(proc_self_cgroup, cgroup_root))


def usable_cpus(proc_self_cgroup: Path = PROC_SELF_CGROUP, cgroup_root: Path = CGROUP_ROOT) -> int:
    """The default number of worker processes: the CPUs this process may actually use, at least 1."""
    return cpu_limits(proc_self_cgroup, cgroup_root).usable
