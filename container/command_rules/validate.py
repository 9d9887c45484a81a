"""The whole check: the command's own fields, then mounts, inputs, outputs and wrappers, in that order.

The order is the order of the messages, and each part needs what the one before it found (outputs need
the mounts, wrappers need all three).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Checker
from .command import check_command
from .inputs import check_inputs
from .mounts import check_mounts
from .outputs import check_outputs
from .wrappers import check_wrappers


def validate_command(command: Any) -> list[str]:
    """All problems found in one command object (empty when it passes)."""
    if not isinstance(command, Mapping):
        return [f"command: must be a JSON object, found {type(command).__name__} [json-type]"]
    checker = Checker(command)
    line = check_command(checker)
    mounts = check_mounts(checker)
    inputs = check_inputs(checker, line)
    outputs = check_outputs(checker, mounts)
    check_wrappers(checker, mounts, inputs, outputs)
    return checker.errors
