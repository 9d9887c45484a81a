"""A wrapper's output handlers: known outputs and parents, types, labels, every output handled."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Checker, is_blank
from .vocabulary import HANDLER_KEYS, HANDLER_TYPES, NAME_RE


def check_handlers(
    checker: Checker,
    where: str,
    wrapper: Mapping[str, Any],
    wrapper_inputs: Mapping[str, Mapping[str, Any]],
    multiple: set[str],
    outputs: set[str],
) -> None:
    """One wrapper's output handlers; ``multiple`` names its derived inputs that allow multiple values."""
    handled: set[str] = set()
    seen: set[str] = set()
    for index, handler in enumerate(checker.objects(f"{where}.output-handlers", wrapper.get("output-handlers"))):
        name = checker.name(f"{where}.output-handlers[{index}]", handler, seen, "output handler")
        item_where = f"{where}.output-handlers[{name or index}]"
        checker.keys(item_where, handler, HANDLER_KEYS)
        output = handler.get("accepts-command-output")
        if is_blank(output):
            checker.error(item_where, "accepts-command-output cannot be blank", "handler-output")
        elif output not in outputs:
            checker.error(
                item_where,
                f"accepts unknown command output {output!r}; known: {sorted(outputs)}",
                "handler-output",
            )
        else:
            handled.add(str(output))
        parent = handler.get("as-a-child-of", handler.get("as-a-child-of-wrapper-input"))
        if is_blank(parent):
            checker.error(item_where, "as-a-child-of cannot be blank", "handler-parent")
        elif parent not in wrapper_inputs and parent not in seen - {name}:
            checker.error(
                item_where,
                f"as-a-child-of {parent!r} is neither a wrapper input nor an earlier output handler",
                "handler-parent",
            )
        elif parent in multiple:
            checker.error(
                item_where,
                f"as-a-child-of {parent!r}, an input allowing multiple values",
                "handler-parent",
            )
        elif parent in wrapper_inputs:
            prop = wrapper_inputs[str(parent)].get("derived-from-xnat-object-property")
            if prop is not None and prop != "uri":
                checker.error(
                    item_where,
                    f"as-a-child-of {parent!r}, whose value is its {prop!r}, not its uri: the upload would fail",
                    "handler-parent",
                )
        kind = handler.get("type", "Resource")
        if kind not in HANDLER_TYPES:
            checker.error(item_where, f"type {kind!r} is not one of {sorted(HANDLER_TYPES)}", "handler-type")
        label = handler.get("label")
        if kind == "Resource":
            if is_blank(label):
                checker.error(item_where, "a Resource handler needs a label", "handler-label")
            elif not NAME_RE.match(str(label)):
                checker.error(
                    item_where,
                    f"resource label {label!r} may contain only A-Z a-z 0-9 _ -",
                    "handler-label",
                )
    for output in sorted(outputs - handled):
        checker.error(where, f"command output {output!r} is not handled by any output handler", "output-unhandled")
