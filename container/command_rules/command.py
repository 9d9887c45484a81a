"""The command's own fields: required keys, name, schema-version, image tag, type, command line."""

from __future__ import annotations

import re

from .base import Checker, is_blank
from .vocabulary import COMMAND_KEYS, IMAGE_WITH_TAG_RE, REQUIRED_COMMAND_KEYS, SHELL_SYNTAX_RE


def check_command(checker: Checker) -> str:
    """The command's own fields; returns its command line ("" when missing or blank) for the input rules."""
    command = checker.command
    checker.keys("command", command, COMMAND_KEYS)
    for key in sorted(REQUIRED_COMMAND_KEYS):
        if key not in command:
            checker.error("command", f"required field {key!r} is missing", "required-field")
    if is_blank(command.get("name")):
        checker.error("command", "name cannot be blank", "name-chars")
    elif not re.match(r"^[A-Za-z0-9_.-]+$", str(command["name"])):
        checker.error("command", f"name {command['name']!r} may contain only A-Z a-z 0-9 _ . -", "name-chars")
    for key in ("label", "version"):
        if key in command:
            checker.text("command", command, key, "required-field")
    checker.text("command", command, "description", "description")
    if "schema-version" in command and command.get("schema-version") != "1.0":
        checker.error(
            "command",
            f'schema-version must be "1.0", found {command.get("schema-version")!r}',
            "schema-version",
        )
    image = command.get("image")
    if is_blank(image):
        checker.error("command", "image cannot be blank", "image-tag")
    elif not IMAGE_WITH_TAG_RE.match(str(image)):
        checker.error("command", f"image {image!r} must include a tag, e.g. name:1.0", "image-tag")
    if "type" in command and command.get("type") != "docker":
        checker.error("command", f'type must be "docker", found {command.get("type")!r}', "command-type")
    checker.boolean("command", command, "override-entrypoint")
    check_resource_limits(checker)
    line = command.get("command-line")
    if is_blank(line):
        if "command-line" in command:
            checker.error("command", "command-line cannot be blank", "required-field")
        line = ""
    assert isinstance(line, str)
    if command.get("override-entrypoint") is False and SHELL_SYNTAX_RE.search(line):
        checker.error(
            "command",
            "command-line uses shell syntax but override-entrypoint is false (no shell)",
            "shell-syntax",
        )

    return line


def check_resource_limits(checker: Checker) -> None:
    """reserve-memory, limit-memory and limit-cpu as the Container Service reads them.

    Command (container-service 3.7.3) declares them ``Long reserveMemory``, ``Long limitMemory`` (MiB:
    Container.reserveMemoryBytes multiplies by MIB_TO_BYTES) and ``Double limitCpu``: Jackson refuses a
    fraction or a string for a Long. Reported as json-type (tests/cli/test_command_json_rules.py holds one
    broken command per rule code).
    """
    command = checker.command
    for key in ("reserve-memory", "limit-memory"):
        value = command.get(key)
        if key in command and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            checker.error("command", f"{key} must be a positive whole number of MiB, found {value!r}", "json-type")
    cpu = command.get("limit-cpu")
    if "limit-cpu" in command and (isinstance(cpu, bool) or not isinstance(cpu, int | float) or cpu <= 0):
        checker.error("command", f"limit-cpu must be a positive number of CPUs, found {cpu!r}", "json-type")
