#!/usr/bin/env python3
"""Resolve a wrapper's command line the way XNAT's Container Service does, and split it as it does.

Behaviour matched (container-service 3.x, CommandResolutionServiceImpl and ShellSplitter):

- each command input's value is the launch value if given, else its ``default-value``;
- a ``boolean`` input's value becomes ``true-value`` when it reads as ``true`` (Java's
  ``Boolean.parseBoolean``: case-insensitive ``"true"``), else ``false-value`` (if those are set);
- a blank value puts nothing on the command line (the flag too is dropped);
- otherwise the command-line value is ``command-line-flag`` + ``command-line-separator`` (default ``" "``)
  + value, or just the value when there is no flag;
- a resolved value (after the boolean mapping) containing any of ``ILLEGAL_INPUT_STRINGS`` refuses the launch
  (``checkForIllegalInputValue``: ``IllegalInputError`` here, XNAT's ``IllegalInputException``);
- every replacement key (``replacement-key``, default ``#name#``) is replaced literally (``String.replace``);
- with ``override-entrypoint`` false the resolved line is tokenised by ShellSplitter (whitespace splits,
  ``'`` and ``"`` quote, ``\\`` escapes; no expansion of any kind) and appended to the image's ENTRYPOINT.

    python container/xnat_launch.py resource-survey-session [name=value ...]   # prints the argv as JSON
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_COMMAND_JSON = Path(__file__).resolve().parent.parent / "command.json"
#: CommandResolutionService.ILLEGAL_INPUT_STRINGS, container-service 1.2 to 3.7.3 (every "(", not only "$(").
ILLEGAL_INPUT_STRINGS = (";", "&&", "||", "`", "(")


class IllegalInputError(ValueError):
    """XNAT refuses the launch: an input's resolved value holds a string it treats as shell injection."""


def replacement_key(item: Mapping[str, Any]) -> str:
    """An input's replacement key: ``replacement-key`` if not blank, else ``#name#``."""
    raw = item.get("replacement-key")
    if isinstance(raw, str) and raw.strip():
        return raw
    return f"#{item.get('name', '')}#"


def java_parse_boolean(value: str | None) -> bool:
    return value is not None and value.lower() == "true"


def check_legal(name: str, value: str | None) -> None:
    """CommandResolutionServiceImpl.checkForIllegalInputValue: refuse a value holding an illegal string."""
    for illegal in ILLEGAL_INPUT_STRINGS:
        if value is not None and illegal in value:
            raise IllegalInputError(f'Input "{name}" has a value containing illegal string "{illegal}".')


def command_line_value(command_input: Mapping[str, Any], value: str | None) -> str:
    """What one command input contributes to the command line, given its resolved value."""
    if command_input.get("type") == "boolean":
        mapped = command_input.get("true-value" if java_parse_boolean(value) else "false-value")
        if mapped is not None:
            value = str(mapped)
    check_legal(str(command_input.get("name", "")), value)
    if value is None or not value.strip():
        return ""
    flag = command_input.get("command-line-flag")
    if not isinstance(flag, str) or not flag.strip():
        return value
    separator = command_input.get("command-line-separator")
    return f"{flag}{' ' if separator is None else separator}{value}"


def resolve_command_line(command: Mapping[str, Any], values: Mapping[str, str] | None = None) -> str:
    """The command line with every command input's replacement key filled (launch values over defaults)."""
    values = values or {}
    line = str(command.get("command-line", ""))
    for command_input in command.get("inputs", []):
        name = command_input.get("name", "")
        value = values.get(name, command_input.get("default-value"))
        line = line.replace(replacement_key(command_input), command_line_value(command_input, value))
    return line


def shell_split(line: str) -> list[str]:
    """Port of the Container Service's ShellSplitter.shellSplit (tokens as Docker's Cmd receives them)."""
    tokens: list[str] = []
    current: list[str] = []
    escaping = False
    quoting = False
    quote_char = " "
    for char in line:
        if escaping:
            current.append(char)
            escaping = False
        elif char == "\\" and not (quoting and quote_char == "'"):
            escaping = True
        elif quoting and char == quote_char:
            quoting = False
        elif not quoting and char in "'\"":
            quoting = True
            quote_char = char
        elif not quoting and char.isspace():
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(char)
    if current:
        tokens.append("".join(current))
    return tokens


def find_wrapper(command: Mapping[str, Any], wrapper_name: str) -> Mapping[str, Any]:
    for wrapper in command.get("xnat", []):
        if wrapper.get("name") == wrapper_name:
            return dict(wrapper)
    known = ", ".join(str(w.get("name")) for w in command.get("xnat", []))
    raise KeyError(f"no wrapper {wrapper_name!r} (known: {known})")


def command_of_wrapper(commands: Any, wrapper_name: str) -> Mapping[str, Any]:
    """The command of command.json's list (or a single command) that has the wrapper ``wrapper_name``."""
    for command in commands if isinstance(commands, list) else [commands]:
        if any(w.get("name") == wrapper_name for w in command.get("xnat") or []):
            return command
    raise KeyError(f"no command has the wrapper {wrapper_name!r}")


def container_argv(command: Mapping[str, Any], wrapper_name: str, values: Mapping[str, str] | None = None) -> list[str]:
    """The arguments XNAT hands the container for a launch of ``wrapper_name`` (after the ENTRYPOINT).

    Only the command line is modelled; wrapper inputs in this command provide files, never values.
    With ``override-entrypoint`` true XNAT would instead run ``/bin/sh -c <line>``.
    """
    find_wrapper(command, wrapper_name)
    line = resolve_command_line(command, values)
    if command.get("override-entrypoint"):
        return ["/bin/sh", "-c", line]
    return shell_split(line)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        sys.stdout.write(__doc__ or "")
        return 0 if args else 2
    with DEFAULT_COMMAND_JSON.open(encoding="utf-8") as handle:
        document = json.load(handle)
    values = dict(arg.split("=", 1) for arg in args[1:])
    try:
        argv_out = container_argv(command_of_wrapper(document, args[0]), args[0], values)
    except (IllegalInputError, KeyError) as exc:
        sys.stderr.write(f"xnat_launch.py: {exc.args[0] if exc.args else exc}\n")
        return 1
    sys.stdout.write(json.dumps(argv_out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
