"""support.cpus: the CPUs a process may use, from fake /proc/self/cgroup and cgroup trees (v2 and v1),
and --jobs' default through the real parser."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from container_app.cli import parser as cli_parser
from container_app.support import cpus


def fake(tmp_path: Path, proc_cgroup: str, files: dict[str, str]) -> tuple[Path, Path]:
    """A /proc/self/cgroup holding `proc_cgroup` and a cgroup root holding `files` (relative path -> text)."""
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(proc_cgroup, encoding="ascii")
    root = tmp_path / "sys-fs-cgroup"
    root.mkdir()
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="ascii")
    return proc, root


@pytest.fixture
def four_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """An affinity mask of 4 CPUs, whatever this machine has."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize(
    ("cpu_max", "quota", "usable"),
    [
        ("max 100000\n", None, 4),  # no quota: the affinity
        ("100000 100000\n", 1.0, 1),  # docker run --cpus 1
        ("150000 100000\n", 1.5, 2),  # 1.5 CPUs: rounded up
        ("10000 100000\n", 0.1, 1),  # a tenth of a CPU: still one worker
        ("800000 100000\n", 8.0, 4),  # a quota above the affinity: the affinity
        ("garbage\n", None, 4),  # unreadable: no limit
    ],
)
def test_cgroup_v2_cpu_max(tmp_path: Path, cpu_max: str, quota: float | None, usable: int) -> None:
    proc, root = fake(tmp_path, "0::/\n", {"cpu.max": cpu_max})
    limits = cpus.cpu_limits(proc, root)
    assert limits == cpus.CpuLimits(affinity=4, quota=quota)
    assert limits.usable == usable == cpus.usable_cpus(proc, root)


@pytest.mark.usefixtures("four_cpus")
def test_cgroup_v2_the_tightest_of_the_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    proc, root = fake(
        tmp_path,
        "0::/kubepods.slice/pod1/ctr\n",
        {
            "kubepods.slice/cpu.max": "300000 100000\n",
            "kubepods.slice/pod1/cpu.max": "200000 100000\n",
            "kubepods.slice/pod1/ctr/cpu.max": "max 100000\n",
        },
    )
    assert cpus.cgroup_quota(proc, root) == 2.0
    assert cpus.usable_cpus(proc, root) == 2


@pytest.mark.usefixtures("four_cpus")
def test_cgroup_v2_namespaced_path_not_mounted_reads_the_mount_root(tmp_path: Path) -> None:
    # In a container's cgroup namespace /proc/self/cgroup may name a host cgroup; the container's own
    # cgroup is the mount's root.
    proc, root = fake(tmp_path, "0::/system.slice/docker-abc.scope\n", {"cpu.max": "100000 100000\n"})
    assert cpus.usable_cpus(proc, root) == 1


@pytest.mark.usefixtures("four_cpus")
@pytest.mark.parametrize("mount", ["cpu,cpuacct", "cpu"])
def test_cgroup_v1_cfs_quota(tmp_path: Path, mount: str) -> None:
    proc, root = fake(
        tmp_path,
        f"12:memory:/docker/abc\n4:{mount}:/docker/abc\n1:name=systemd:/docker/abc\n",
        {
            f"{mount}/docker/abc/cpu.cfs_quota_us": "250000\n",
            f"{mount}/docker/abc/cpu.cfs_period_us": "100000\n",
            f"{mount}/cpu.cfs_quota_us": "-1\n",
            f"{mount}/cpu.cfs_period_us": "100000\n",
        },
    )
    assert cpus.cgroup_quota(proc, root) == 2.5
    assert cpus.usable_cpus(proc, root) == 3


@pytest.mark.usefixtures("four_cpus")
def test_cgroup_v1_no_quota_and_no_cgroup_files(tmp_path: Path) -> None:
    proc, root = fake(tmp_path, "4:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                                                      "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cpus.cpu_limits(proc, root) == cpus.CpuLimits(affinity=4, quota=None)
    assert cpus.usable_cpus(tmp_path / "no-such-file", tmp_path / "no-such-root") == 4


def test_affinity_is_the_mask_not_the_host_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert cpus.affinity_count() == 1


def test_affinity_without_sched_getaffinity_is_the_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert cpus.affinity_count() == 3


def test_this_process_is_within_its_affinity() -> None:
    usable = cpus.usable_cpus()
    assert 1 <= usable <= len(os.sched_getaffinity(0))


def test_jobs_defaults_to_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_parser, "usable_cpus", lambda: 3)
    parser = cli_parser.CommandParser(prog="t")
    cli_parser.add_selection_options(parser)
    assert parser.parse_args([]).jobs == 3
    assert parser.parse_args(["--jobs", "5"]).jobs == 5
    assert parser.parse_args(["--jobs", "auto"]).jobs == 3


def test_jobs_run_in_a_one_cpu_affinity(tmp_path: Path) -> None:
    """The real CLI under taskset: the survey report's options record one job, not the host's count."""
    if shutil.which("taskset") is None:
        pytest.skip("taskset is not installed")
    root = tmp_path / "root"
    root.mkdir()
    out = tmp_path / "out"
    proc = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-m", "container_app", "survey", str(root), "--output", str(out),
         "--log-format", "json"],
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "survey-report.json").read_text(encoding="utf-8"))
    assert report["options"]["jobs"] == 1
