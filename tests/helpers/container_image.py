"""Building and running the OCI image as XNAT's Container Service runs it, for tests/e2e/ (podman + buildah).

Skipped, with the reason, when podman and buildah cannot be set up on this machine.
"""


from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import container_scripts

ROOT = Path(__file__).resolve().parents[2]
COMMAND = json.loads((ROOT / "command.json").read_text(encoding="utf-8"))[0]  # the survey command
LOCAL_IMAGE_SH = Path(os.environ.get("LOCAL_IMAGE_SH", "/work/shared/tools/local-image.sh"))
TAG = "localhost/xnat-resource-survey:pytest"
SCHEMA = ROOT / "container_app" / "reports" / "schemas" / "survey-report.schema.json"
REQUIRED_OUTPUTS = {"survey-report.json", "survey-summary.csv"}
OPTIONAL_OUTPUTS = {"report.html", "rollup.json", "rollup.csv", "rollup.html"}  # roll-up: project runs
XNAT_ENV = {"XNAT_HOST": "http://localhost:1", "XNAT_USER": "u", "XNAT_PASS": "p"}


_load = container_scripts.load


launch = _load("xnat_launch")


# ---------------------------------------------------------------------------------------------------
# podman, the image


def container_env() -> tuple[dict[str, str] | None, str, str]:
    """(environment for podman, builder for build.sh, reason when unavailable)."""
    if LOCAL_IMAGE_SH.is_file():
        # local-image.sh installs podman/buildah if missing and exports the storage/engine configuration.
        script = (
            'source "$1" >/dev/null 2>&1 && command -v podman >/dev/null && command -v buildah >/dev/null && env -0'
        )
        try:
            proc = subprocess.run(
                ["bash", "-c", script, "_", str(LOCAL_IMAGE_SH)], capture_output=True, timeout=900, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, "", f"setting up podman/buildah with {LOCAL_IMAGE_SH} failed: {exc}"
        if proc.returncode != 0:
            return None, "", f"podman/buildah are not installable here ({LOCAL_IMAGE_SH} exited {proc.returncode})"
        env = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
        return env, "local", ""
    if shutil.which("podman"):
        return dict(os.environ), "podman", ""
    return None, "", f"no podman on PATH and no {LOCAL_IMAGE_SH} to install it"


@dataclass(frozen=True)
class Engine:
    env: dict[str, str]
    builder: str  # for container/build.sh: local (local-image.sh) or podman

    def podman(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )


# ---------------------------------------------------------------------------------------------------
# Running as XNAT does


@dataclass(frozen=True)
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (
            f"argv {self.argv}\nexit {self.returncode}\nstdout:\n{self.stdout[-3000:]}\nstderr:\n{self.stderr[-5000:]}"
        )


def run_as_xnat(
    engine: Engine,
    image: str,
    wrapper: str,
    input_dir: Path,
    output_dir: Path,
    values: Mapping[str, str] | None = None,
    *,
    podman_args: Sequence[str] = (),
    override_entrypoint: bool = False,
    env: Mapping[str, str] | None = None,
) -> Run:
    """`podman run` with the mounts, environment and arguments XNAT would give the container."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if override_entrypoint:
        # XNAT with "override-entrypoint": true clears the ENTRYPOINT and runs /bin/sh -c <command line>.
        argv = ["-c", launch.resolve_command_line(COMMAND, values)]
        podman_args = [*podman_args, "--entrypoint", "/bin/sh"]
    else:
        argv = launch.container_argv(COMMAND, wrapper, values)
    env_args = [arg for key, value in (env or XNAT_ENV).items() for arg in ("-e", f"{key}={value}")]
    proc = engine.podman(
        "run",
        "--rm",
        "-v",
        f"{input_dir}:/input:ro",
        "-v",
        f"{output_dir}:/output",
        *env_args,
        *podman_args,
        image,
        *argv,
    )
    return Run(argv=argv, returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)


def snapshot(tree: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under `tree` with its mode, size and mtime: equal snapshots mean nothing was written."""
    result = {}
    for path in sorted(tree.rglob("*")):
        info = path.lstat()
        result[str(path.relative_to(tree))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return result


def check_upload(output_dir: Path, run: Run) -> dict[str, Any]:
    """What the output handler would upload: reports valid, logs JSON lines, all readable by others."""
    names = {p.name for p in output_dir.iterdir()}
    assert names >= REQUIRED_OUTPUTS, run.explain()
    assert names <= REQUIRED_OUTPUTS | OPTIONAL_OUTPUTS, f"unexpected files in /output: {names}"

    report = json.loads((output_dir / "survey-report.json").read_text(encoding="utf-8"))
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.validators.validator_for(schema)(schema).validate(report)

    with (output_dir / "survey-summary.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + len(report["resources"]), rows

    log_lines = [line for stream in (run.stdout, run.stderr) for line in stream.splitlines() if line.strip()]
    assert log_lines, run.explain()
    for line in log_lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"log line is not JSON: {line!r}\n{run.explain()}")
        assert isinstance(record, dict) and "event" in record, line

    for path in [output_dir, *output_dir.rglob("*")]:
        mode = path.stat().st_mode
        wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
        assert mode & wanted == wanted, f"{path} is not readable by XNAT's user: {stat.filemode(mode)}"
    return report


def statuses_by_scan(report: Mapping[str, Any]) -> dict[str, str]:
    """Scan ID -> request status, from resource paths like `SCANS/3/DICOM`."""
    result = {}
    for resource in report["resources"]:
        parts = resource["path"].split("/")
        result[parts[parts.index("SCANS") + 1]] = resource["requestStatus"]
    return result
