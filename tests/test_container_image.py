"""The OCI image, built and run as XNAT's Container Service runs it (podman + buildah, no Docker engine).

The image is built once per module with container/build.sh. Each run gets the wrapper's command line
resolved and split as XNAT does (container/xnat_launch.py), `/input` mounted read-only with a realistic
session, scan or project archive (catalogs included), `/output` writable, and XNAT's environment set.
Checked: the label equals command.json, exit codes, the files the output handler would upload (survey
report valid against its schema, CSV), logs as JSON lines, permissions, and that `/input` is untouched.

Skipped, with the reason, when podman and buildah cannot be set up on this machine.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests import container_scripts

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parent.parent
COMMAND = json.loads((ROOT / "command.json").read_text(encoding="utf-8"))
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


def _container_env() -> tuple[dict[str, str] | None, str, str]:
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


@pytest.fixture(scope="module")
def engine() -> Engine:
    env, builder, reason = _container_env()
    if env is None:
        pytest.skip(reason)
    return Engine(env, builder)


@pytest.fixture(scope="module")
def image(engine: Engine) -> Iterator[str]:
    """Build the image once for the module with container/build.sh; remove it afterwards."""
    env = {**engine.env, "BUILDER": engine.builder, "PYTHON": sys.executable, "LOCAL_IMAGE_SH": str(LOCAL_IMAGE_SH)}
    proc = subprocess.run(
        [str(ROOT / "container" / "build.sh"), TAG], env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"container/build.sh failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    yield TAG
    engine.podman("rmi", "-f", TAG)


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


@pytest.fixture
def demo(tmp_path: Path) -> Any:
    demo_archive = pytest.importorskip("container_app.demo.archive")
    return demo_archive.build_demo_archive(tmp_path / "archive")


# ---------------------------------------------------------------------------------------------------
# The image itself


def test_label_reads_back_as_command_json(engine: Engine, image: str) -> None:
    proc = engine.podman("image", "inspect", image)
    assert proc.returncode == 0, proc.stderr
    (info,) = json.loads(proc.stdout)
    labels = info.get("Labels") or info["Config"]["Labels"]
    assert labels["org.nrg.commands"] == json.dumps([COMMAND])


def test_entrypoint_is_a_shim_not_the_tool(engine: Engine, image: str) -> None:
    proc = engine.podman("image", "inspect", image, "--format", "{{json .Config.Entrypoint}} {{json .Config.Cmd}}")
    assert proc.returncode == 0, proc.stderr
    entrypoint, cmd = (json.loads(part) for part in proc.stdout.split(" ", 1))
    assert entrypoint == ["/usr/local/bin/xnat-resource-survey-entrypoint"]
    assert cmd == ["xnat-resource-survey", "--help"]


def test_no_compilers_or_pip_caches(engine: Engine, image: str) -> None:
    script = "for c in gcc cc make; do command -v $c && exit 1; done; ls /root/.cache/pip 2>/dev/null && exit 1; exit 0"
    proc = engine.podman("run", "--rm", "--entrypoint", "/bin/sh", image, "-c", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_runs_the_c_walker(engine: Engine, image: str) -> None:
    """The build stage had a compiler (from Debian's mirror) and the final stage keeps only the module."""
    code = "from container_app.survey.dicom import headers; print(headers.ACCELERATED)"
    proc = engine.podman("run", "--rm", "--entrypoint", "/opt/xnat-resource-survey/bin/python", image, "-c", code)
    assert (proc.returncode, proc.stdout.strip()) == (0, "True"), proc.stderr


# ---------------------------------------------------------------------------------------------------
# Each wrapper, as XNAT launches it


def test_session_wrapper(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    before = snapshot(demo.session_root)
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-session", demo.session_root, out)
    assert run.returncode == 0, run.explain()
    report = check_upload(out, run)
    expected = demo.expected_totals()
    assert {key: report["totals"][key] for key in expected} == expected
    assert statuses_by_scan(report) == demo.resource_status
    assert snapshot(demo.session_root) == before  # the read-only mount was not written to


def test_scan_wrapper(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    scan_dir = demo.session_root / "SCANS" / "3"  # XNAT mounts the scan folder: DICOM/<files> + catalog
    before = snapshot(scan_dir)
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-scan", scan_dir, out)
    assert run.returncode == 0, run.explain()
    report = check_upload(out, run)
    assert len(report["resources"]) == 1
    assert report["resources"][0]["requestStatus"] == "DIVERGENT"
    assert report["totals"]["duplicates"] == 4
    assert report["totals"]["filesInDuplicates"] == 8
    assert snapshot(scan_dir) == before


def test_project_wrapper(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    synth = pytest.importorskip("container_app.demo.synth")
    project, second = demo.layout.project, "DEMO_MR2"
    study = synth.InstanceSpec(
        sop_instance_uid=synth.uid(project, second, "x"), study_instance_uid=synth.uid(project, second, "study")
    )
    synth.build_session(
        synth.session_root(demo.root, project, second),
        second,
        project,
        [synth.ScanSpec.conforming("1", synth.series_instances(study, 1, 3))],
    )
    # XNAT's project "directory" is the project's current arc folder: the mount holds <SESSION>/SCANS/...
    project_dir = demo.root / project / "arc001"
    before = snapshot(project_dir)
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-project", project_dir, out)
    assert run.returncode == 0, run.explain()
    report = check_upload(out, run)
    assert report["totals"]["files"] == demo.total_files + 3
    assert len(report["resources"]) == len(demo.resource_status) + 1
    paths = [resource["path"] for resource in report["resources"]]
    for session in (demo.layout.session_label, second):
        assert any(session in path.split("/") for path in paths), (session, paths)
    assert snapshot(project_dir) == before


# ---------------------------------------------------------------------------------------------------
# Exit codes and launch variants


def test_fail_on_divergent_exits_1_after_writing_reports(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_as_xnat(engine, image, "resource-survey-session", demo.session_root, out, {"fail_on_divergent": "true"})
    assert run.returncode == 1, run.explain()
    check_upload(out, run)


def test_invalid_template_is_a_usage_error(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    values = {"template": "${StudyInstanceUID}-${HashSOPInstanceUID}"}  # Hash without With: invalid in XNAT
    run = run_as_xnat(engine, image, "resource-survey-session", demo.session_root, out, values)
    assert run.returncode == 2, run.explain()


def test_works_when_xnat_overrides_the_entrypoint(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    # Through /bin/sh -c a ${...} template would be expanded by the shell, which is why the command sets
    # override-entrypoint false; with the template left blank (the CLI's default) the shell path works too.
    out = tmp_path / "out"
    run = run_as_xnat(
        engine, image, "resource-survey-session", demo.session_root, out, {"template": ""}, override_entrypoint=True
    )
    assert run.returncode == 0, run.explain()
    check_upload(out, run)


def test_runs_as_an_unprivileged_container_user(engine: Engine, image: str, demo: Any, tmp_path: Path) -> None:
    # XNAT's Container Service may be configured to run containers as XNAT's own uid:gid.
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    run = run_as_xnat(
        engine, image, "resource-survey-session", demo.session_root, out, podman_args=["--user", "4321:4321"]
    )
    assert run.returncode == 0, run.explain()
    check_upload(out, run)
    assert {p.stat().st_uid for p in out.iterdir()} == {4321}


def test_mitigate_dry_run_leaves_the_read_only_mount_alone(
    engine: Engine, image: str, demo: Any, tmp_path: Path
) -> None:
    if not (ROOT / "container_app" / "mitigate.py").is_file():  # what the image was built from
        pytest.skip("mitigation is not implemented yet (container_app/mitigation/run.py)")
    before = snapshot(demo.session_root)
    out = tmp_path / "out"
    run = run_as_xnat(
        engine, image, "resource-survey-session", demo.session_root, out, {"mode": "mitigate", "dry_run": "true"}
    )
    assert run.returncode == 0, run.explain()
    assert (out / "mitigation-plan.json").is_file(), run.explain()
    assert snapshot(demo.session_root) == before


def test_mitigate_inside_xnat_through_the_standin(engine: Engine, image: str, tmp_path: Path) -> None:
    """Mitigate mode as XNAT launches it: the session read-only at /input, changes through XNAT's API.

    The XNAT stand-in (a local HTTP server playing XNAT 1.8.8+ with its mitigation API) serves the
    archive folder that is mounted; the container reaches it over the host's network.
    """
    standin = pytest.importorskip("tests.xnat_standin", reason="the XNAT stand-in is not there")
    conformance = ROOT / "tests" / "data" / "conformance" / "xnat-scan5-duplicates"
    if not conformance.is_dir():
        pytest.skip("conformance data not found")
    archive = tmp_path / "archive"
    session = archive / "Test" / "arc001" / "SESS"
    resource = session / "SCANS" / "5" / "DICOM"
    resource.mkdir(parents=True)
    for entry in sorted(conformance.iterdir()):
        if entry.name != "expectedNames.txt":
            shutil.copy2(entry, resource / entry.name)
    expected = set((conformance / "expectedNames.txt").read_text("utf-8").split())
    out = tmp_path / "out"
    with standin.run_standin(archive, mitigation_api=True, users={"admin": "secret"}) as site:
        alias, secret = site.issue_token("admin")
        run = run_as_xnat(
            engine, image, "resource-survey-session", session, out,
            {"mode": "mitigate", "xnat_session": site.experiment_id("Test", "SESS")},
            podman_args=["--network", "host"],
            env={"XNAT_HOST": site.url, "XNAT_USER": alias, "XNAT_PASS": secret},
        )
    assert run.returncode == 0, run.explain()
    assert {p.name for p in resource.iterdir()} - {"scan_5_catalog.xml"} == expected
    catalog = (resource / "scan_5_catalog.xml").read_text("utf-8")
    assert catalog.count('xsi:type="cat:dcmEntry"') == 60
    report = json.loads((out / "mitigation-report.json").read_text("utf-8"))
    (mitigated,) = report["resources"]
    assert report["executor"] == "xnat" and mitigated["way"] == "api", run.explain()
    assert mitigated["xnat"]["totalMovedFiles"] == 31 and mitigated["xnat"]["totalRemovedFiles"] == 36
    assert secret not in run.stdout + run.stderr + json.dumps(report)


def test_the_image_starts_with_compiled_schemas_and_templates(engine: Engine, image: str) -> None:
    """Warmed at build time, readable by any container user, writable by none but root."""
    script = ("cd /opt/xnat-resource-survey/cache/*/ && ls validator-*.bytecode templates/__jinja2_* >/dev/null "
              "&& test -z \"$(find . -perm /022)\" && test -z \"$(find . -type f ! -perm -044)\"")
    proc = engine.podman("run", "--rm", "--user", "1234:1234", "--entrypoint", "/bin/sh", image, "-c", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
