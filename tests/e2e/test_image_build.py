"""The image itself: its label, entrypoint, contents and compiled caches."""

from __future__ import annotations

import json

import pytest

from tests.helpers.cli import label
from tests.helpers.container_image import COMMAND, Engine

pytestmark = pytest.mark.container


def test_label_reads_back_as_the_command_files(engine: Engine, image: str) -> None:
    """Byte for byte command.json's list of commands (the survey, then the roll-up)."""
    proc = engine.podman("image", "inspect", image)
    assert proc.returncode == 0, proc.stderr
    (info,) = json.loads(proc.stdout)
    labels = info.get("Labels") or info["Config"]["Labels"]
    commands = label.load_commands()
    assert commands[0] == COMMAND and commands[1]["name"] == "xnat-resource-survey-rollup"
    assert labels["org.nrg.commands"] == json.dumps(commands)


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
    code = "from container_app.survey.dicom import native; print(native.ACCELERATED)"
    proc = engine.podman("run", "--rm", "--entrypoint", "/opt/xnat-resource-survey/bin/python", image, "-c", code)
    assert (proc.returncode, proc.stdout.strip()) == (0, "True"), proc.stderr


# ---------------------------------------------------------------------------------------------------
# Each wrapper, as XNAT launches it


def test_the_image_starts_with_compiled_schemas_and_templates(engine: Engine, image: str) -> None:
    """Warmed at build time, readable by any container user, writable by none but root."""
    script = ("cd /opt/xnat-resource-survey/cache/*/ && ls validator-*.bytecode templates/__jinja2_* >/dev/null "
              "&& test -z \"$(find . -perm /022)\" && test -z \"$(find . -type f ! -perm -044)\"")
    proc = engine.podman("run", "--rm", "--user", "1234:1234", "--entrypoint", "/bin/sh", image, "-c", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
