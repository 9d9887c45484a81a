"""The machine the figures were taken on, the tools' versions, and which element walker our survey runs:
printed above the tables and kept in the JSON, because figures mean little without them."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.locations import REPO


def tool_version(cmd: Sequence[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (r.stdout + r.stderr).strip().splitlines()
    return text[0] if text else "?"


def ours_walker(venv: Path, env: dict[str, str] | None) -> str:
    """Which element walker our survey runs with ``env``: "C", "Python", or "?"."""
    py = venv / "bin" / "python"
    if not py.exists():
        return "?"
    try:
        probe = "from container_app.survey.dicom import native; print(native.ACCELERATED)"
        r = subprocess.run([str(py), "-c", probe],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return {"True": "C", "False": "Python"}.get(r.stdout.strip(), "?")


def machine_info(workdir: Path, venv: Path, ours_env: dict[str, str] | None = None) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    fs = "?"
    with contextlib.suppress(OSError):
        fs = subprocess.run(["stat", "-f", "-c", "%T", str(workdir)], capture_output=True, text=True).stdout.strip()
    py = venv / "bin" / "python"
    ours_py = tool_version([str(py), "-c", "import sys, pydicom; print(sys.version.split()[0], "
                            "'pydicom', pydicom.__version__)"]) if py.exists() else "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "harness_python": platform.python_version(),
        "ours_python": ours_py,
        "ours_walker": ours_walker(venv, ours_env),
        "workdir_fs": fs,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "gdcmscanner": tool_version(["gdcmscanner", "--version"]),
        "dcmdump": tool_version(["dcmdump", "--version"]),
    }
