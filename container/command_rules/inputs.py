"""Command inputs: types, select values, defaults, boolean values, flags and replacement keys."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .base import Checker, is_blank, replacement_key
from .vocabulary import COMMAND_INPUT_TYPES, INPUT_KEYS, MULTIPLE_DELIMITERS, REPLACEMENT_KEY_IN_LINE_RE, SELECT_TYPES


def check_inputs(checker: Checker, line: str) -> dict[str, Mapping[str, Any]]:
    """The command inputs by name (for the wrapper input rules); ``line`` is the command line their keys fill."""
    inputs: dict[str, Mapping[str, Any]] = {}
    seen: set[str] = set()
    keys_seen: dict[str, str] = {}
    for index, item in enumerate(checker.objects("inputs", checker.command.get("inputs"))):
        name = checker.name(f"inputs[{index}]", item, seen, "command input")
        where = f"inputs[{name or index}]"
        checker.keys(where, item, INPUT_KEYS)
        checker.text(where, item, "description", "description")
        checker.boolean(where, item, "required")
        checker.boolean(where, item, "sensitive")
        kind = item.get("type", "string")
        if kind not in COMMAND_INPUT_TYPES:
            checker.error(where, f"type {kind!r} is not one of {sorted(COMMAND_INPUT_TYPES)}", "input-type")
        select_values = item.get("select-values") or []
        if not isinstance(select_values, list):
            checker.error(where, "select-values must be a list", "json-type")
            select_values = []
        if kind in SELECT_TYPES and not select_values:
            checker.error(where, f"type {kind} needs select-values", "select-values")
        if kind not in SELECT_TYPES and select_values:
            checker.error(where, "has select-values but is not a select type", "select-values")
        for value in select_values:
            checker.launch_value(where, "select value", value)
        default = item.get("default-value")
        if default is not None:
            check_default(checker, where, item, kind, default, select_values)
        elif item.get("required") is True:
            checker.error(
                where,
                "is required but has no default-value; automated launches cannot supply one",
                "required-default",
            )
        if kind == "boolean":
            for key in ("true-value", "false-value"):
                if key not in item:
                    checker.error(where, f"boolean input needs {key}", "boolean-values")
                elif item[key] != "":
                    checker.launch_value(where, key, item[key])
            if not is_blank(item.get("command-line-flag")):
                checker.error(
                    where,
                    "boolean input with a command-line-flag puts the flag before its true-value/false-value",
                    "boolean-values",
                )
        delimiter = item.get("multiple-delimiter")
        if delimiter is not None and delimiter not in MULTIPLE_DELIMITERS:
            checker.error(
                where,
                f"multiple-delimiter {delimiter!r} is not one of {sorted(MULTIPLE_DELIMITERS)}",
                "multiple-delimiter",
            )
        flag = item.get("command-line-flag")
        if flag is not None and not is_blank(flag):
            checker.launch_value(where, "command-line-flag", flag)
        separator = item.get("command-line-separator")
        if separator is not None and separator not in {" ", "="}:
            checker.launch_value(where, "command-line-separator", separator)
        key = replacement_key(item)
        if key in keys_seen:
            checker.error(where, f"replacement key {key} is also used by input {keys_seen[key]!r}", "unique-name")
        keys_seen[key] = name
        if key not in line:
            checker.error(
                where,
                f"replacement key {key} does not appear in the command-line",
                "replacement-key-missing",
            )
        if name:
            inputs[name] = item
    for key in sorted(set(REPLACEMENT_KEY_IN_LINE_RE.findall(line)) - set(keys_seen)):
        checker.error("command", f"command-line has {key}, which no input fills", "unknown-replacement-key")
    return inputs


def check_default(
    checker: Checker, where: str, item: Mapping[str, Any], kind: Any, default: Any, select_values: list[Any]
) -> None:
    """A default XNAT can launch with: a string, inside the select-values, and safe on the command line."""
    if not isinstance(default, str):
        checker.error(where, "default-value must be a string (XNAT stores every value as text)", "json-type")
        return
    if kind == "boolean":
        if default not in {"true", "false"}:
            checker.error(
                where,
                f'boolean default-value must be "true" or "false", found {default!r}',
                "boolean-values",
            )
        return
    if kind == "select-many":
        try:
            defaults = json.loads(default)
        except ValueError:
            defaults = [default]
        if not isinstance(defaults, list):
            defaults = [default]
    else:
        defaults = [default]
    if select_values and not set(defaults) <= set(select_values):
        checker.error(
            where,
            f"default-value {default!r} is not one of the select-values {select_values}",
            "select-default",
        )
    if default:
        checker.launch_value(where, "default-value", default)
