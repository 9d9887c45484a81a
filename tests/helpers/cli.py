"""Shared by the CLI's tests: command.json as shipped and the scripts in container/ that check it and launch
it as XNAT does (tests/cli/test_command_json*.py); what a user must never see (no_traceback).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.helpers import container_scripts

REPO = Path(__file__).resolve().parents[2]
COMMAND_JSON = REPO / "command.json"
XNAT_DEFAULT_TEMPLATE = "${StudyInstanceUID}-${SeriesNumber}-${InstanceNumber}-${HashSOPClassUIDWithSOPInstanceUID}"

validator = container_scripts.load("validate_command")
launch = container_scripts.load("xnat_launch")
label = container_scripts.load("label")


def load_commands() -> list[dict[str, Any]]:
    """command.json: the list of the image's commands, the label's value."""
    with COMMAND_JSON.open(encoding="utf-8") as handle:
        commands: list[dict[str, Any]] = json.load(handle)
    return commands


COMMANDS = load_commands()
COMMAND, ROLLUP = COMMANDS  # the survey (three wrappers), then the project roll-up
WRAPPERS = {w["name"]: w for w in COMMAND["xnat"]}
INPUTS = {i["name"]: i for i in COMMAND["inputs"]}


def rules(command: Any) -> set[str]:
    """The rule codes of every problem the validator reports."""
    return {problem.rsplit("[", 1)[1].rstrip("]") for problem in validator.validate_command(command)}


def no_traceback(*texts: str) -> None:
    """Errors are one clear line: no Python traceback in any of the texts (stdout, stderr)."""
    for text in texts:
        assert "Traceback" not in text
        assert 'File "' not in text
