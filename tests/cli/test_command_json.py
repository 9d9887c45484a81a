"""command.json, the Container Service command that ships in the image label: it passes
`container/validate_command.py` (the Container Service's rules and ours), and the facts the issue fixes
(mounts, inputs, wrappers, handlers, versions) hold.

The validator's rules fire on broken commands: test_command_json_rules.py. Its command lines parse with the
CLI's own parser: test_command_json_launch.py.
"""

from __future__ import annotations

import json
import tomllib

import pytest

import container_app
from tests.helpers.cli import COMMAND, COMMAND_JSON, INPUTS, REPO, WRAPPERS, XNAT_DEFAULT_TEMPLATE, label, validator

# ---------------------------------------------------------------------------------------------------
# The command passes, and its fixed facts hold


def test_command_json_passes_the_validator() -> None:
    assert validator.validate_command(COMMAND) == []


def test_validator_main_reports_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert validator.main([str(COMMAND_JSON)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


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


def test_label_is_the_command_in_a_list() -> None:
    value = label.label_value(COMMAND)
    assert value == json.dumps([COMMAND])
    assert json.loads(value) == [COMMAND]
    assert value.isascii()


def test_label_script_prints_and_checks(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert label.main([]) == 0
    printed = capsys.readouterr().out
    assert printed == json.dumps([COMMAND])
    monkeypatch.setenv("COMMANDS", printed)
    assert label.main(["--check-env", "COMMANDS"]) == 0
    monkeypatch.setenv("COMMANDS", printed.replace("survey", "surfey", 1))
    assert label.main(["--check-env", "COMMANDS"]) == 1
    monkeypatch.setenv("COMMANDS", "")
    assert label.main(["--check-env", "COMMANDS"]) == 1


def test_event_subscription_targets_the_session_wrapper() -> None:
    subscription = json.loads((REPO / "container" / "event-subscription.json").read_text(encoding="utf-8"))
    event_filter = subscription["event-filter"]
    assert event_filter["event-type"] == "org.nrg.xnat.eventservice.events.SessionEvent"
    assert event_filter["status"] == "CREATED"
    assert subscription["action-key"].startswith("org.nrg.containers.services.CommandActionProvider:")
    # Automated launches use defaults apart from what the subscription sets: they must only survey.
    attributes = subscription.get("attributes", {})
    assert attributes.get("mode", INPUTS["mode"]["default-value"]) == "survey"
    assert set(attributes) <= set(INPUTS)

