#!/usr/bin/env python3
"""The image label ``org.nrg.commands``, generated from the command files, and the Dockerfile line carrying it.

The label is a JSON list of the image's commands, exactly ``json.dumps(<command.json>)``: command.json holds
that list (the survey, with its three wrappers, then the project roll-up) and is the single source; the label
is never written by hand. (``POST /xapi/commands`` takes one command at a time: ``jq '.[0]' command.json``.)

As NRG's own images do (``command2label.py`` in NrgXnat/docker-images), the Dockerfile carries the label
literally, so that a plain ``docker build -t xnat-resource-survey .`` makes an image with the right label and
no build argument. That line is generated here:

    python container/label.py            # prints the label value
    python container/label.py --write    # rewrites the Dockerfile's LABEL org.nrg.commands line
    python container/label.py --check    # exit 1 unless the Dockerfile's line is what --write would write

A Dockerfile expands ``$VAR`` and ``${VAR}`` inside a double-quoted LABEL value and takes ``\\`` as its escape
character, so the value is escaped as command2label.py escapes it (``"`` and ``$``), and ``\\`` first as well
(command2label.py does not, which breaks any command holding a JSON escape such as ``\\"``). The build's
parser undoes exactly these escapes, so the label reads back byte for byte as the JSON above.
Standard library only: it runs on the build host without the package installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The commands in the label, in this order: the survey (its three wrappers) and the project roll-up.
COMMAND_FILES = (REPO / "command.json",)
DOCKERFILE = REPO / "Dockerfile"
LABEL_KEY = "org.nrg.commands"
LINE_PREFIX = f"LABEL {LABEL_KEY}="


class LabelError(Exception):
    """A command file or the Dockerfile is not as this script needs it; the message says which and why."""


def load_command_file(path: Path) -> list[dict[str, Any]]:
    """The commands of one file: a JSON list of command objects (command.json), or one command object."""
    try:
        with path.open(encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise LabelError(f"{path}: cannot read a command from it: {exc}") from None
    commands = document if isinstance(document, list) else [document]
    if not commands or not all(isinstance(command, dict) for command in commands):
        raise LabelError(f"{path}: expected a list of command objects (or one), found {type(document).__name__}")
    return commands


def load_commands(paths: Sequence[Path] = COMMAND_FILES) -> list[dict[str, Any]]:
    """Every command of the files, in order: the label's list."""
    return [command for path in paths for command in load_command_file(path)]


def label_value(commands: Sequence[dict[str, Any]]) -> str:
    """The label's value: a JSON list of the commands (ASCII, as json.dumps writes it)."""
    return json.dumps(list(commands))


def dockerfile_escape(value: str) -> str:
    """``value`` as the inside of a double-quoted Dockerfile word: ``\\``, ``"`` and ``$`` escaped with ``\\``."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def dockerfile_line(commands: Sequence[dict[str, Any]]) -> str:
    """The Dockerfile instruction carrying the label (one line: no continuation to get wrong)."""
    return f'{LINE_PREFIX}"{dockerfile_escape(label_value(commands))}"'


def label_line_index(lines: Sequence[str], dockerfile: Path) -> int:
    """Where the Dockerfile's one ``LABEL org.nrg.commands=`` line is."""
    found = [index for index, line in enumerate(lines) if line.startswith(LINE_PREFIX)]
    if len(found) != 1:
        raise LabelError(
            f"{dockerfile}: expected exactly one line starting {LINE_PREFIX!r}, found {len(found)}"
        )
    return found[0]


def check_dockerfile(commands: Sequence[dict[str, Any]], dockerfile: Path = DOCKERFILE) -> bool:
    """True when the Dockerfile's label line is the one generated from ``commands``."""
    lines = dockerfile.read_text(encoding="utf-8").splitlines()
    return lines[label_line_index(lines, dockerfile)] == dockerfile_line(commands)


def write_dockerfile(commands: Sequence[dict[str, Any]], dockerfile: Path = DOCKERFILE) -> bool:
    """Rewrite the Dockerfile's label line from ``commands``; True when it changed."""
    text = dockerfile.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    index = label_line_index([line.rstrip("\r\n") for line in lines], dockerfile)
    wanted = dockerfile_line(commands) + "\n"
    if lines[index] == wanted:
        return False
    lines[index] = wanted
    dockerfile.write_text("".join(lines), encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--command-json", type=Path, action="append", dest="commands", metavar="FILE",
                        help="a command file, repeatable, in label order (default: command.json)")
    parser.add_argument("--dockerfile", type=Path, default=DOCKERFILE, help="the Dockerfile (default: ./Dockerfile)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="rewrite the Dockerfile's LABEL org.nrg.commands line")
    mode.add_argument("--check", action="store_true", help="exit 1 unless the Dockerfile's label line is current")
    args = parser.parse_args(argv)
    try:
        commands = load_commands(tuple(args.commands) if args.commands else COMMAND_FILES)
        if args.write:
            changed = write_dockerfile(commands, args.dockerfile)
            sys.stderr.write(f"label.py: {args.dockerfile} {'updated' if changed else 'already current'}\n")
        elif args.check:
            if not check_dockerfile(commands, args.dockerfile):
                sys.stderr.write(
                    f"label.py: the {LABEL_KEY} label in {args.dockerfile} differs from the command files; "
                    "regenerate it with: python3 container/label.py --write\n"
                )
                return 1
        else:
            sys.stdout.write(label_value(commands))
    except (LabelError, OSError) as exc:
        sys.stderr.write(f"label.py: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
