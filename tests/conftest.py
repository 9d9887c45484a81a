"""Shared fixtures: conformance data, the CLI as a subprocess, and snapshots of a folder tree.

Conformance data is read from `tests/data/conformance/` (a copy of `../shared/conformance/`, so a
clean clone has it); the shared folder is only a fallback, and tests skip when neither is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[1]
LOCAL_CONFORMANCE = REPO / "tests" / "data" / "conformance"
SHARED_CONFORMANCE = REPO.parent / "shared" / "conformance"
SCAN5 = "xnat-scan5-duplicates"
SCAN5_EXPECTED = "expectedNames.txt"
SUBCOMMANDS = frozenset({"survey", "demo", "mitigate", "restore", "rollup"})


@pytest.fixture(scope="session", autouse=True)
def _compiled_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled schemas and templates go to a folder of the test session, not the user's ~/.cache
    (the CLI subprocesses inherit the setting)."""
    os.environ["XNAT_RESOURCE_SURVEY_CACHE"] = str(tmp_path_factory.mktemp("compiled-cache"))
    yield


def _conformance_root() -> Path | None:
    for candidate in (LOCAL_CONFORMANCE, SHARED_CONFORMANCE):
        if (candidate / "xnat_naming_vectors.json").is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def conformance() -> Path:
    """The folder of XNAT's conformance data (vectors, legacy names, scan 5, legacy-named files)."""
    root = _conformance_root()
    if root is None:
        pytest.skip("conformance data not found in tests/data/conformance or ../shared/conformance")
    return root


@pytest.fixture(scope="session")
def naming_vectors(conformance: Path) -> list[dict[str, str]]:
    vectors: list[dict[str, str]] = json.loads((conformance / "xnat_naming_vectors.json").read_text("utf-8"))
    return vectors


@pytest.fixture(scope="session")
def legacy_names(conformance: Path) -> list[dict[str, str]]:
    names: list[dict[str, str]] = json.loads((conformance / "xnat_legacy_names.json").read_text("utf-8"))
    return names


@dataclass(frozen=True)
class Scan5:
    """XNAT's scan-5 resource copied into a session mount: `root/SCANS/5/DICOM/`."""

    root: Path  # the session mount (ROOT of a survey)
    resource: Path  # root/SCANS/5/DICOM
    expected_names: frozenset[str]  # XNAT's expected result, not part of the resource

    @property
    def rel(self) -> str:
        return "SCANS/5/DICOM"


@pytest.fixture
def scan5(conformance: Path, tmp_path: Path) -> Scan5:
    source = conformance / SCAN5
    if not source.is_dir():
        pytest.skip(f"{source} is missing")
    root = tmp_path / "mount"
    resource = root / "SCANS" / "5" / "DICOM"
    resource.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name != SCAN5_EXPECTED:
            shutil.copyfile(entry, resource / entry.name)
    expected = frozenset((source / SCAN5_EXPECTED).read_text("utf-8").split())
    return Scan5(root=root, resource=resource, expected_names=expected)


# --- the CLI, run as users run it ------------------------------------------------------------------


class CliResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None  # OUT/survey-report.json when the run wrote one

    def log_lines(self) -> list[dict[str, Any]]:
        """stdout parsed as JSON lines; fails the test on any line that is not JSON."""
        lines = []
        for line in self.stdout.splitlines():
            if line.strip():
                try:
                    lines.append(json.loads(line))
                except json.JSONDecodeError:
                    pytest.fail(f"stdout line is not JSON: {line!r}")
        return lines


def _output_of(args: tuple[str, ...]) -> Path | None:
    for i, arg in enumerate(args):
        if arg == "--output" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--output="):
            return Path(arg.split("=", 1)[1])
    return None


CliRunner = Callable[..., CliResult]


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    """Run `python -m container_app ARGS... --log-format json`; returns (returncode, stdout, stderr, report)."""

    def run(*args: str | os.PathLike[str], log_format: str | None = "json", timeout: float = 120) -> CliResult:
        argv = tuple(str(a) for a in args)
        if log_format is not None and argv and argv[0] in SUBCOMMANDS:
            argv = (*argv, "--log-format", log_format)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        env.pop("COLUMNS", None)
        completed = subprocess.run(
            [sys.executable, "-m", "container_app", *argv],
            capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path, check=False,
        )
        report = None
        out = _output_of(argv)
        if out is not None and (out / "survey-report.json").is_file():
            report = json.loads((out / "survey-report.json").read_text("utf-8"))
        return CliResult(completed.returncode, completed.stdout, completed.stderr, report)

    return run


# --- snapshots: proof that a run changed nothing ---------------------------------------------------


Snapshot = dict[str, tuple[str, int, int, str]]


def take_snapshot(root: Path) -> Snapshot:
    """Every entry below `root` (root included): kind, mode, mtime_ns and content digest or link target."""
    result: Snapshot = {}
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [".", *sorted(dirnames), *sorted(filenames)]:
            path = Path(directory) if name == "." else Path(directory) / name
            rel = path.relative_to(root).as_posix()
            if name == "." and rel != ".":
                continue
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                content = "link:" + os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                content = "dir"
            result[rel] = (content, stat.S_IMODE(st.st_mode), st.st_mtime_ns, stat.filemode(st.st_mode))
    return result


@pytest.fixture
def snapshot() -> Callable[[Path], Snapshot]:
    return take_snapshot


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """`chmod -R a-w` a tree for the test, restoring the modes afterwards (mtimes of folders kept)."""
    changed: list[tuple[Path, int]] = []

    def make_read_only(root: Path) -> None:
        paths = [root, *(p for p in root.rglob("*") if not p.is_symlink())]
        for path in paths:
            mode = stat.S_IMODE(path.lstat().st_mode)
            changed.append((path, mode))
        for path, mode in changed:
            path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    yield make_read_only
    for path, mode in reversed(changed):
        if path.exists():
            path.chmod(mode)


# --- reports ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def report_schema() -> Callable[[dict[str, Any]], None]:
    """Validate a whole survey report against the shipped schema, read straight from the file."""
    import jsonschema

    shipped = REPO / "container_app" / "reports" / "schemas" / "survey-report.schema.json"
    schema = json.loads(shipped.read_text("utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)

    def validate(document: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5]]

    return validate


SurveyLib = Callable[..., dict[str, Any]]


@pytest.fixture
def survey_lib(tmp_path: Path) -> SurveyLib:
    """Survey in-process with `cli.commands.survey.survey_archive`; returns the report document."""
    from container_app.cli.commands.survey import survey_archive
    from container_app.cli.settings import Common, SurveySettings
    from container_app.core.naming import DEFAULT_TEMPLATE, parse_template

    counter = [0]

    def run(root: Path, *, template: str = DEFAULT_TEMPLATE, labels: frozenset[str] = frozenset({"DICOM"}),
            all_resources: bool = False, since: Any = None, jobs: int = 1, output: Path | None = None,
            ) -> dict[str, Any]:
        counter[0] += 1
        out = output or tmp_path / f"lib-out-{counter[0]}"
        settings = SurveySettings(common=Common(log_format="json", verbose=False), root=str(root), output=str(out),
                                  template=parse_template(template), labels=labels, all_resources=all_resources,
                                  since=since, jobs=jobs, fail_on_divergent=False)
        outcome = survey_archive(settings, print_summary=False)
        document: dict[str, Any] = json.loads(Path(outcome.report_path).read_text("utf-8"))
        return document

    return run
