"""Command outputs: a description, and a known, writable mount."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Checker, is_blank
from .vocabulary import OUTPUT_KEYS


def check_outputs(checker: Checker, mounts: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The output names, for the handler rules (every output must be handled by every wrapper)."""
    outputs: set[str] = set()
    seen: set[str] = set()
    for index, output in enumerate(checker.objects("outputs", checker.command.get("outputs"))):
        name = checker.name(f"outputs[{index}]", output, seen, "command output")
        where = f"outputs[{name or index}]"
        checker.keys(where, output, OUTPUT_KEYS)
        checker.text(where, output, "description", "description")
        checker.boolean(where, output, "required")
        mount = output.get("mount")
        if is_blank(mount):
            checker.error(where, "mount cannot be blank", "output-mount")
        elif mount not in mounts:
            checker.error(where, f"references unknown mount {mount!r}; known: {sorted(mounts)}", "output-mount")
        elif mounts[str(mount)].get("writable") is not True:
            checker.error(where, f"mount {mount!r} is not writable", "output-mount-readonly")
        if name:
            outputs.add(name)
    return outputs
