#!/usr/bin/env python3
"""Print the value of the image label ``org.nrg.commands``, generated from ``command.json``.

The label is a JSON list holding the command, exactly ``json.dumps([command])``. command.json is the single
source: the label is never written by hand.

    python container/label.py                      # prints the label value
    python container/label.py --check-env COMMANDS # exit 1 unless $COMMANDS equals the generated value

The second form runs inside the image build (see Dockerfile): a build whose ``COMMANDS`` build argument
does not match the command.json being built fails, so the label cannot drift from the file.
Standard library only: it runs on the build host and in the bare base image.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DEFAULT_COMMAND_JSON = Path(__file__).resolve().parent.parent / "command.json"


def load_command(path: Path = DEFAULT_COMMAND_JSON) -> dict[str, Any]:
    """Read command.json; it must hold one command object."""
    with path.open(encoding="utf-8") as handle:
        command = json.load(handle)
    if not isinstance(command, dict):
        raise ValueError(f"{path}: expected one command object, found {type(command).__name__}")
    return command


def label_value(command: dict[str, Any]) -> str:
    """The label's value: a JSON list holding the command (ASCII, as json.dumps writes it)."""
    return json.dumps([command])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--command-json", type=Path, default=DEFAULT_COMMAND_JSON, help="path to command.json")
    parser.add_argument(
        "--check-env",
        metavar="VAR",
        help="compare the environment variable VAR with the generated label instead of printing it",
    )
    args = parser.parse_args(argv)
    expected = label_value(load_command(args.command_json))
    if args.check_env is None:
        sys.stdout.write(expected)
        return 0
    actual = os.environ.get(args.check_env, "")
    if actual == expected:
        return 0
    if not actual:
        sys.stderr.write(
            f"label.py: build argument {args.check_env} is empty; build with container/build.sh or pass\n"
            f'  --build-arg {args.check_env}="$(python3 container/label.py)"\n'
        )
    else:
        sys.stderr.write(
            f"label.py: build argument {args.check_env} does not match {args.command_json.name} "
            "(regenerate it with container/label.py)\n"
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())
