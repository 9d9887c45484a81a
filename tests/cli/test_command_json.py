"""command.json, the list of Container Service commands (the survey, the roll-up) that ships as the image label:
they pass `container/validate_command.py` (the Container Service's rules and ours), the facts the issues fix
(mounts, inputs, wrappers, handlers, versions, resource limits) hold, and the Dockerfile carries the label
generated from them.

The validator's rules fire on broken commands: test_command_json_rules.py. Its command lines parse with the
CLI's own parser: test_command_json_launch.py.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

import container_app
from container_app.cli.main import parse_settings
from container_app.cli.settings import RollupSettings
from tests.helpers.cli import (
    COMMAND,
    COMMAND_JSON,
    INPUTS,
    REPO,
    ROLLUP,
    WRAPPERS,
    XNAT_DEFAULT_TEMPLATE,
    label,
    launch,
    rules,
    validator,
)

DOCKERFILE = REPO / "Dockerfile"

# ---------------------------------------------------------------------------------------------------
# The command passes, and its fixed facts hold


def test_command_json_passes_the_validator() -> None:
    assert validator.validate_command(COMMAND) == []


def test_validator_main_reports_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert validator.main([str(COMMAND_JSON)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")
    assert validator.main([]) == 0  # command.json by default, each command of its list
    assert capsys.readouterr().out.splitlines() == [f"{COMMAND_JSON}[0]: OK", f"{COMMAND_JSON}[1]: OK"]


def test_validator_main_says_what_is_wrong_with_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert validator.main([str(broken), str(tmp_path / "missing.json")]) == 1
    out = capsys.readouterr().out
    assert out.count("cannot be read as JSON") == 2 and "Traceback" not in out


def test_command_identity_matches_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["dynamic"] == ["version"]  # read from the package, the one place it is written
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "container_app.__version__"}
    version = container_app.__version__
    assert COMMAND["schema-version"] == "1.0"
    assert COMMAND["type"] == "docker"
    assert COMMAND["version"] == version
    assert COMMAND["image"] == f"xnat-resource-survey:{version}"


def test_mounts_and_the_one_output() -> None:
    mounts = {m["name"]: (m["path"], m["writable"]) for m in COMMAND["mounts"]}
    assert mounts == {"input": ("/input", False), "output": ("/output", True)}
    assert [(o["name"], o["mount"], o.get("path")) for o in COMMAND["outputs"]] == [("reports", "output", None)]


def test_command_line_runs_the_tool_without_a_shell() -> None:
    assert COMMAND["override-entrypoint"] is False
    line = COMMAND["command-line"]
    assert line.split()[:6] == ["xnat-resource-survey", "#MODE#", "/input", "--output", "/output", "--backup-dir"]
    assert "/output/backup" in line.split()


def test_inputs_map_onto_the_cli() -> None:
    assert INPUTS["mode"]["type"] == "select-one"
    assert INPUTS["mode"]["select-values"] == ["survey", "mitigate"]
    assert INPUTS["mode"]["default-value"] == "survey"
    assert INPUTS["keep"]["select-values"] == ["newest", "oldest", "expected-name"]
    assert INPUTS["keep"]["default-value"] == "newest"
    assert INPUTS["executor"]["select-values"] == ["auto", "filesystem", "xnat"]
    assert INPUTS["executor"]["default-value"] == "auto"
    assert INPUTS["rest_file_operations"]["select-values"] == ["refuse", "allow"]
    assert INPUTS["rest_file_operations"]["default-value"] == "refuse"
    assert INPUTS["resource_labels"]["default-value"] == "DICOM"
    for name in ("dry_run", "fail_on_divergent"):
        assert INPUTS[name]["type"] == "boolean"
        assert INPUTS[name]["default-value"] == "false"
    for name in ("template", "resource_labels", "keep", "executor", "rest_file_operations"):
        assert INPUTS[name]["command-line-separator"] == "=", name


def test_template_default_is_xnats_default() -> None:
    assert INPUTS["template"]["default-value"] == XNAT_DEFAULT_TEMPLATE
    naming = pytest.importorskip("container_app.core.naming")
    assert naming.DEFAULT_TEMPLATE == XNAT_DEFAULT_TEMPLATE


@pytest.mark.parametrize(
    ("wrapper", "context", "input_type", "parent"),
    [
        ("resource-survey-session", "xnat:imageSessionData", "Session", "session"),
        ("resource-survey-scan", "xnat:imageScanData", "Scan", "scan"),
        ("resource-survey-project", "xnat:projectData", "Project", "project"),
    ],
)
def test_wrappers(wrapper: str, context: str, input_type: str, parent: str) -> None:
    spec = WRAPPERS[wrapper]
    assert spec["contexts"] == [context]
    assert spec["label"].strip() and spec["description"].strip()
    (external,) = spec["external-inputs"]
    assert (external["name"], external["type"], external["provides-files-for-command-mount"]) == (
        parent,
        input_type,
        "input",
    )
    (handler,) = spec["output-handlers"]
    assert handler["accepts-command-output"] == "reports"
    assert handler["as-a-child-of"] == parent
    assert (handler["type"], handler["label"]) == ("Resource", "RESOURCE_SURVEY")


def test_exactly_the_three_wrappers() -> None:
    assert set(WRAPPERS) == {"resource-survey-session", "resource-survey-scan", "resource-survey-project"}


def test_rollup_command_passes_the_validator() -> None:
    assert validator.validate_command(ROLLUP) == []


def test_rollup_command_is_the_same_image_and_version() -> None:
    for key in ("version", "image", "schema-version", "type", "override-entrypoint"):
        assert ROLLUP[key] == COMMAND[key], key
    assert ROLLUP["name"] != COMMAND["name"]


def test_rollup_runs_from_the_projects_actions_menu_and_uploads_to_the_project() -> None:
    (wrapper,) = ROLLUP["xnat"]
    assert wrapper["contexts"] == ["xnat:projectData"]
    (external,) = wrapper["external-inputs"]
    assert (external["name"], external["type"]) == ("project", "Project")
    # It reads reports through XNAT's REST API, never the archive: no files mounted, only /output.
    assert "provides-files-for-command-mount" not in external
    assert {m["name"]: (m["path"], m["writable"]) for m in ROLLUP["mounts"]} == {"output": ("/output", True)}
    (derived,) = wrapper["derived-inputs"]
    assert (derived["derived-from-wrapper-input"], derived["derived-from-xnat-object-property"]) == ("project", "id")
    assert derived["provides-value-for-command-input"] == "xnat_project"
    (handler,) = wrapper["output-handlers"]
    # ContainerFinalizeServiceImpl uploads a Resource under the parent input's URI (a Project input's value
    # is its URI, /archive/projects/ID), after Permissions.canEdit on it: the launching user must be able to
    # edit the project.
    assert (handler["as-a-child-of"], handler["type"], handler["label"]) == (
        "project", "Resource", "RESOURCE_SURVEY_ROLLUP")
    assert handler["accepts-command-output"] == "rollup"
    assert {w["name"] for w in ROLLUP["xnat"]}.isdisjoint(WRAPPERS)


def test_rollup_launch_parses_with_the_cli() -> None:
    """The argv XNAT would hand the image, parsed by the CLI's own parser: a roll-up of that project."""
    argv = launch.container_argv(ROLLUP, "resource-survey-rollup-project", {"xnat_project": "PRJ_1"})
    assert argv[:2] == ["xnat-resource-survey", "rollup"]
    settings = parse_settings(argv[1:])
    assert isinstance(settings, RollupSettings)
    assert settings.output == "/output"
    assert "PRJ_1" in repr(settings)
    assert settings.common.log_format == "json"


@pytest.mark.parametrize("command", [COMMAND, ROLLUP], ids=["survey", "rollup"])
def test_resource_limits_are_set_and_consistent(command: dict[str, Any]) -> None:
    """Swarm and Kubernetes place containers by reserve-memory and cap them by limit-*: MiB and CPUs, as
    Container.reserveMemoryBytes (MIB_TO_BYTES) and KubernetesClientImpl read them; figures in docs/ADMIN.md."""
    reserve, limit, cpu = command["reserve-memory"], command["limit-memory"], command["limit-cpu"]
    assert isinstance(reserve, int) and isinstance(limit, int) and isinstance(cpu, float)
    assert 0 < reserve <= limit and cpu >= 1.0
    admin = (REPO / "docs" / "ADMIN.md").read_text(encoding="utf-8")
    assert f"`reserve-memory` {reserve}" in admin and f"`limit-memory` {limit}" in admin, "ADMIN.md's figures"


@pytest.mark.parametrize(
    ("key", "value"), [("reserve-memory", 256.5), ("limit-memory", "1024"), ("limit-cpu", 0), ("limit-cpu", True)]
)
def test_validator_refuses_resource_limits_xnat_cannot_read(key: str, value: Any) -> None:
    broken = copy.deepcopy(COMMAND)
    broken[key] = value
    assert rules(broken) == {"json-type"}


# ---------------------------------------------------------------------------------------------------
# What XNAT refuses at launch: every "(" (CommandResolutionService.ILLEGAL_INPUT_STRINGS, 1.2 to 3.7.3)


@pytest.mark.parametrize("value", ["DICOM(1)", "a(b", "$(id)", "DICOM;x", "a`b"])
def test_a_default_xnat_would_refuse_is_reported(value: str) -> None:
    broken = copy.deepcopy(COMMAND)
    next(i for i in broken["inputs"] if i["name"] == "resource_labels")["default-value"] = value
    assert rules(broken) == {"illegal-value"}


def test_the_launch_refuses_a_value_with_a_parenthesis_as_xnat_does() -> None:
    with pytest.raises(launch.IllegalInputError, match=r'Input "resource_labels" .* illegal string "\("'):
        launch.container_argv(COMMAND, "resource-survey-session", {"resource_labels": "DICOM(copy)"})
    # The launch script and the validator carry the same list (two scripts, each standard-library only).
    assert launch.ILLEGAL_INPUT_STRINGS == sys.modules["command_rules.vocabulary"].ILLEGAL_INPUT_STRINGS


# ---------------------------------------------------------------------------------------------------
# The label: command.json's list of commands, carried literally by the Dockerfile


def test_label_is_the_commands_in_a_list() -> None:
    commands = label.load_commands()
    assert commands == [COMMAND, ROLLUP] == json.loads(COMMAND_JSON.read_text(encoding="utf-8"))
    assert [c["name"] for c in commands] == ["xnat-resource-survey", "xnat-resource-survey-rollup"]
    value = label.label_value(commands)
    assert value == json.dumps([COMMAND, ROLLUP])
    assert value.isascii()


def test_the_dockerfile_carries_the_current_label() -> None:
    """Fails when command.json changed without `python3 container/label.py --write`."""
    assert label.check_dockerfile(label.load_commands(), DOCKERFILE), "run: python3 container/label.py --write"
    lines = DOCKERFILE.read_text(encoding="utf-8").splitlines()
    assert sum(line.startswith("LABEL org.nrg.commands=") for line in lines) == 1
    assert "ARG COMMANDS" not in DOCKERFILE.read_text(encoding="utf-8")  # no build argument needed


def dockerfile_unquote(word: str) -> str:
    """A double-quoted Dockerfile word as the builder reads it (moby/buildkit shell lexer, processDoubleQuote):
    inside the quotes a backslash escapes `"`, `$` and itself and is kept before anything else; an unescaped
    `$` would start a variable."""
    assert word.startswith('"') and word.endswith('"')
    out: list[str] = []
    chars = iter(word[1:-1])
    for char in chars:
        if char == "\\":
            following = next(chars)
            out.append(following if following in '"$\\' else "\\" + following)
        else:
            assert char not in '"$', f"unescaped {char!r} in the LABEL value"
            out.append(char)
    return "".join(out)


def test_the_dockerfile_label_reads_back_as_the_json() -> None:
    line = next(line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
                if line.startswith("LABEL org.nrg.commands="))
    assert json.loads(dockerfile_unquote(line.removeprefix("LABEL org.nrg.commands="))) == [COMMAND, ROLLUP]


@pytest.mark.parametrize("text", ['say "hi"', "${StudyInstanceUID}-$X", "C:\\dir\\", 'a\\"b', "\\$\\"])
def test_escaping_round_trips(text: str) -> None:
    command = {"description": text}
    line = label.dockerfile_line([command])
    assert json.loads(dockerfile_unquote(line.removeprefix("LABEL org.nrg.commands="))) == [command]


def test_label_script_prints_writes_and_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert label.main([]) == 0
    assert capsys.readouterr().out == json.dumps([COMMAND, ROLLUP])
    dockerfile = tmp_path / "Dockerfile"
    shutil.copy(DOCKERFILE, dockerfile)
    assert label.main(["--check", "--dockerfile", str(dockerfile)]) == 0
    changed = copy.deepcopy(COMMAND)
    changed["description"] += " Changed."
    changed_json = tmp_path / "command.json"
    changed_json.write_text(json.dumps([changed, ROLLUP]), encoding="utf-8")
    files = ["--command-json", str(changed_json)]
    assert label.main(["--check", "--dockerfile", str(dockerfile), *files]) == 1
    assert "label.py --write" in capsys.readouterr().err
    before = dockerfile.read_text(encoding="utf-8").splitlines()
    assert label.main(["--write", "--dockerfile", str(dockerfile), *files]) == 0
    after = dockerfile.read_text(encoding="utf-8").splitlines()
    assert label.main(["--check", "--dockerfile", str(dockerfile), *files]) == 0
    # Only the label line changed.
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [
        next(i for i, line in enumerate(before) if line.startswith("LABEL org.nrg.commands="))]


def test_label_script_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_a_command = tmp_path / "list.json"
    not_a_command.write_text("[1]", encoding="utf-8")
    assert label.main(["--command-json", str(not_a_command)]) == 2
    assert "expected a list of command objects" in capsys.readouterr().err
    no_label = tmp_path / "Dockerfile"
    no_label.write_text("FROM x\n", encoding="utf-8")
    assert label.main(["--check", "--dockerfile", str(no_label)]) == 2
    assert "found 0" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# The Event Service subscription


def test_event_subscription_targets_the_session_wrapper() -> None:
    text = (REPO / "container" / "event-subscription.json").read_text(encoding="utf-8")
    # One template, posted once per status: EventFilter.status (xnat-web 1.8, eventservice.model) holds one
    # status, and SessionEvent.Status is CREATED, MERGED or DELETED. Merges are where duplicates come from.
    for status in ("CREATED", "MERGED"):
        subscription = json.loads(text.replace("EVENT_STATUS", status))
        event_filter = subscription["event-filter"]
        assert event_filter["event-type"] == "org.nrg.xnat.eventservice.events.SessionEvent"
        assert event_filter["status"] == status
        assert status.lower() in subscription["name"].lower()
    assert subscription["action-key"].startswith("org.nrg.containers.services.CommandActionProvider:")
    # Automated launches use defaults apart from what the subscription sets: they must only survey.
    attributes = subscription.get("attributes", {})
    assert attributes.get("mode", INPUTS["mode"]["default-value"]) == "survey"
    assert set(attributes) <= set(INPUTS)
