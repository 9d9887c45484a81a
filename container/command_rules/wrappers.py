"""Wrappers (the ``xnat`` list) and their external and derived inputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .base import Checker, is_blank
from .handlers import check_handlers
from .vocabulary import (
    CONTEXT_RE,
    CONTEXT_SUFFIX_FOR_TYPE,
    DERIVED_INPUT_KEYS,
    EXTERNAL_INPUT_KEYS,
    SELECT_TYPES,
    WRAPPER_INPUT_TYPES,
    WRAPPER_KEYS,
    XNAT_OBJECT_INPUT_TYPES,
)


def check_wrappers(
    checker: Checker,
    mounts: Mapping[str, Mapping[str, Any]],
    inputs: Mapping[str, Mapping[str, Any]],
    outputs: set[str],
) -> None:
    """Every wrapper: its label, description and contexts, then its inputs and output handlers."""
    wrappers = checker.objects("xnat", checker.command.get("xnat"))
    if "xnat" in checker.command and not wrappers:
        checker.error("xnat", "the command has no wrappers, so XNAT cannot launch it", "required-field")
    seen: set[str] = set()
    for index, wrapper in enumerate(wrappers):
        name = checker.name(f"xnat[{index}]", wrapper, seen, "wrapper")
        where = f"xnat[{name or index}]"
        checker.keys(where, wrapper, WRAPPER_KEYS)
        checker.text(where, wrapper, "label", "wrapper-label")
        checker.text(where, wrapper, "description", "description")
        contexts = wrapper.get("contexts")
        if not isinstance(contexts, list) or not contexts:
            checker.error(where, "contexts must list at least one XNAT data type", "contexts")
            contexts = []
        for context in contexts:
            if not isinstance(context, str) or not CONTEXT_RE.match(context):
                checker.error(
                    where,
                    f"context {context!r} is not an XSI type such as xnat:imageSessionData",
                    "contexts",
                )
        check_wrapper(checker, where, wrapper, [c for c in contexts if isinstance(c, str)], mounts, inputs, outputs)


def check_wrapper(
    checker: Checker,
    where: str,
    wrapper: Mapping[str, Any],
    contexts: list[str],
    mounts: Mapping[str, Mapping[str, Any]],
    inputs: Mapping[str, Mapping[str, Any]],
    outputs: set[str],
) -> None:
    """One wrapper's inputs, in order (a derived input may only derive from one before it)."""
    wrapper_inputs: dict[str, Mapping[str, Any]] = {}
    externals = checker.objects(f"{where}.external-inputs", wrapper.get("external-inputs"))
    if len(externals) != 1:
        checker.error(
            where,
            f"has {len(externals)} external inputs; a wrapper shows in XNAT's menus only with exactly one",
            "external-input-count",
        )
    for index, item in enumerate(externals):
        check_wrapper_input(checker,
            f"{where}.external-inputs[{index}]", item, EXTERNAL_INPUT_KEYS, wrapper_inputs, mounts, inputs
        )
        kind = item.get("type")
        for context in contexts:
            suffixes = CONTEXT_SUFFIX_FOR_TYPE.get(str(kind))
            if suffixes and not context.endswith(suffixes):
                checker.error(where, f"context {context} does not fit external input type {kind}", "context-type")
    multiple: set[str] = set()
    derived_inputs = checker.objects(f"{where}.derived-inputs", wrapper.get("derived-inputs"))
    for index, item in enumerate(derived_inputs):
        item_where = f"{where}.derived-inputs[{index}]"
        parent = item.get("derived-from-wrapper-input")
        name = item.get("name")
        if is_blank(parent):
            checker.error(item_where, "derived-from-wrapper-input cannot be blank", "derived-from")
        elif parent == name:
            checker.error(item_where, f"derived input {name!r} is derived from itself", "derived-from")
        elif parent not in wrapper_inputs:
            checker.error(
                item_where,
                f"derived from unknown wrapper input {parent!r}; known (so far): {sorted(wrapper_inputs)}",
                "derived-from",
            )
        check_wrapper_input(checker, item_where, item, DERIVED_INPUT_KEYS, wrapper_inputs, mounts, inputs)
        if item.get("multiple") is True:
            multiple.add(str(name))
            if not is_blank(item.get("provides-files-for-command-mount")):
                checker.error(
                    item_where,
                    "a multiple derived input cannot provide files for a mount",
                    "derived-multiple",
                )
            if is_blank(item.get("provides-value-for-command-input")):
                checker.error(
                    item_where,
                    "a multiple derived input must provide a value for a command input",
                    "derived-multiple",
                )
    check_handlers(checker, where, wrapper, wrapper_inputs, multiple, outputs)


def check_wrapper_input(
    checker: Checker,
    where: str,
    item: Mapping[str, Any],
    known_keys: Iterable[str],
    wrapper_inputs: dict[str, Mapping[str, Any]],
    mounts: Mapping[str, Mapping[str, Any]],
    inputs: Mapping[str, Mapping[str, Any]],
) -> None:
    """One external or derived input; adds it to ``wrapper_inputs`` for the inputs and handlers after it."""
    checker.keys(where, item, known_keys)
    name = checker.name(where, item, set(wrapper_inputs), "wrapper input")
    if name in inputs:
        checker.error(
            where,
            f"wrapper input {name!r} has the name of a command input; their replacement keys would collide",
            "name-clash",
        )
    checker.text(where, item, "description", "description")
    for key in ("required", "load-children", "user-settable", "sensitive", "multiple"):
        checker.boolean(where, item, key)
    kind = item.get("type")
    if kind not in WRAPPER_INPUT_TYPES:
        checker.error(where, f"type {kind!r} is not one of {sorted(WRAPPER_INPUT_TYPES)}", "wrapper-input-type")
    mount = item.get("provides-files-for-command-mount")
    if mount is not None:
        if mount not in mounts:
            checker.error(where, f"provides files for unknown mount {mount!r}; known: {sorted(mounts)}", "mount-ref")
        elif mounts[str(mount)].get("writable") is not False:
            checker.error(
                where,
                f"mount {mount!r} receives archive files but is writable (XNAT then copies "
                "the whole archive directory to a build folder)",
                "input-mount-writable",
            )
        if kind not in XNAT_OBJECT_INPUT_TYPES:
            checker.error(where, f"a {kind} input has no archive directory to provide", "mount-ref")
    target = item.get("provides-value-for-command-input")
    if target is not None:
        if target not in inputs:
            checker.error(where, f"provides a value for unknown command input {target!r}", "command-input-ref")
        elif inputs[str(target)].get("type", "string") in SELECT_TYPES:
            checker.error(where, f"provides a value for select input {target!r}", "command-input-ref")
    if not is_blank(item.get("via-setup-command")) and mount is None:
        checker.error(where, "via-setup-command needs provides-files-for-command-mount", "mount-ref")
    if name:
        wrapper_inputs[name] = item
