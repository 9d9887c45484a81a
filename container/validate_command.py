#!/usr/bin/env python3
"""Check a Container Service command (command.json) against the rules XNAT applies, and then some.

    python container/validate_command.py [FILE ...]   # default command.json, each command; exit 1 on problems

``validate_command(command)`` returns a list of messages; each ends with a rule code in brackets
(``[name-chars]``, ``[output-unhandled]`` ...; all listed in ``RULES``) so tests can tell which rule fired.

How strict it is, in three layers:

1. Everything ``Command.validate()`` of XNAT's container-service 3.x rejects on ``POST /xapi/commands``:
   blank names, names outside ``[A-Za-z0-9_-]`` (inputs, outputs, wrapper inputs, output handlers; this
   checker applies it to wrappers and mounts too), duplicate names, an image without a tag, select inputs
   without select-values or with a default outside them, select-values on a non-select, outputs on an
   unknown mount, derived inputs from an unknown or their own wrapper input, output handlers on an unknown
   output or parent, Resource handlers without a label, command outputs not handled by every wrapper.
2. What makes a command usable from XNAT's UI and launch paths although XNAT accepts it anyway: every
   wrapper has a label, a description, contexts and exactly one external input (else it is missing from the
   Run Containers menu and Event Service actions); the external input's type fits the contexts; input
   values contain none of the strings XNAT refuses at launch (``;`` ``&&`` ``||`` backtick ``(``);
   replacement keys appear in the command line, and every ``#KEY#`` in it belongs to an input.
3. This project's conventions, stricter than XNAT: keys are known (a typo such as ``replacement_key`` is
   silently ignored by XNAT), ``schema-version`` is "1.0", ``type`` is "docker", descriptions on the
   command, its inputs and outputs and the wrapper inputs, mounts that receive files are read-only and
   output mounts writable, required command inputs have defaults (automated launches cannot ask), and with
   ``override-entrypoint`` false (no shell) the command line has no shell syntax and no default, select
   value, true-value or false-value contains whitespace, quotes or backslashes, which the Container
   Service's splitter would break apart or strip; ``reserve-memory`` and ``limit-memory`` whole MiB and
   ``limit-cpu`` a positive number.

The rules live in ``command_rules/`` beside this script, one module per part of the command
(its ``__init__`` lists them). Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# This script is run by path (container/build.sh) and loaded by path from the tests
# (tests/container_scripts.py), never imported as part of a package, so its rules package beside it is
# found only if this folder is on the import path. Running it as a script puts it there already; a load by
# path does not, hence this.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from command_rules.validate import validate_command  # noqa: E402  (needs the path set above)
from command_rules.vocabulary import RULES  # noqa: E402

__all__ = ["RULES", "main", "validate_command"]


#: The image's commands: command.json holds the label's list of them (container/label.py).
COMMAND_FILES = (Path(__file__).resolve().parent.parent / "command.json",)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    failed = False
    for path in [Path(arg) for arg in args] or list(COMMAND_FILES):
        try:
            with path.open(encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError) as exc:
            sys.stdout.write(f"{path}: cannot be read as JSON: {exc} [json-type]\n")
            failed = True
            continue
        # command.json is the label's list of commands; a file of one command object is checked the same way.
        commands = document if isinstance(document, list) and document else [document]
        for index, command in enumerate(commands):
            where = f"{path}[{index}]" if isinstance(document, list) else str(path)
            problems = validate_command(command)
            for problem in problems:
                sys.stdout.write(f"{where}: {problem}\n")
            if not problems:
                sys.stdout.write(f"{where}: OK\n")
            failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
