#!/usr/bin/env python3
"""Check a Container Service command (command.json) against the rules XNAT applies, and then some.

    python container/validate_command.py [command.json]     # prints problems, exit 1 if any

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
   values contain none of the strings XNAT refuses at launch (``;`` ``&&`` ``||`` backtick ``$(``);
   replacement keys appear in the command line, and every ``#KEY#`` in it belongs to an input.
3. This project's conventions, stricter than XNAT: keys are known (a typo such as ``replacement_key`` is
   silently ignored by XNAT), ``schema-version`` is "1.0", ``type`` is "docker", descriptions on the
   command, its inputs and outputs and the wrapper inputs, mounts that receive files are read-only and
   output mounts writable, required command inputs have defaults (automated launches cannot ask), and with
   ``override-entrypoint`` false (no shell) the command line has no shell syntax and no default, select
   value, true-value or false-value contains whitespace, quotes or backslashes, which the Container
   Service's splitter would break apart or strip.

Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
#: Container Service: an image "has a tag" when it matches this (Command.HAS_TAG).
IMAGE_WITH_TAG_RE = re.compile(r"^.+:[a-zA-Z0-9_.-]+$")
CONTEXT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*:[A-Za-z][A-Za-z0-9_]*$")
REPLACEMENT_KEY_IN_LINE_RE = re.compile(r"#[A-Za-z0-9_-]+#")
#: CommandResolutionService.ILLEGAL_INPUT_STRINGS: launches with these in a value are refused.
ILLEGAL_INPUT_STRINGS = (";", "&&", "||", "`", "$(")
#: Characters the Container Service's ShellSplitter treats specially (with override-entrypoint false).
SPLIT_UNSAFE_RE = re.compile(r"[\s'\"\\]")
#: Shell syntax that only works through /bin/sh -c (override-entrypoint true).
SHELL_SYNTAX_RE = re.compile(r"[|;&<>`]|\$\(")

#: Every rule code this checker reports, with what it means.
RULES = {
    "json-type": "a value has the wrong JSON type",
    "unknown-key": "a key XNAT does not know (XNAT ignores it silently: usually a typo)",
    "required-field": "a required field is missing or blank, or the command has no wrappers",
    "name-chars": "a name is blank or has characters outside A-Z a-z 0-9 _ -",
    "unique-name": "a name or replacement key is used twice where it must be unique",
    "name-clash": "a wrapper input has the name of a command input",
    "description": "a description is missing (command, inputs, outputs, wrappers, wrapper inputs)",
    "wrapper-label": "a wrapper has no label",
    "schema-version": "schema-version is not 1.0",
    "image-tag": "the image has no tag",
    "command-type": "the command type is not docker",
    "mount-path": "a mount path is not absolute",
    "input-type": "unknown command input type",
    "select-values": "a select without select-values, or select-values on a non-select",
    "select-default": "a select default outside its select-values",
    "boolean-values": "a boolean without true-value/false-value, with a flag, or a default not true/false",
    "required-default": "a required command input without a default",
    "multiple-delimiter": "unknown multiple-delimiter",
    "replacement-key-missing": "an input's replacement key is not in the command line",
    "unknown-replacement-key": "the command line has a #KEY# no input fills",
    "illegal-value": "a value holds a string XNAT refuses at launch",
    "split-unsafe": "a value the Container Service would split or strip (no shell)",
    "shell-syntax": "shell syntax in a command line that runs without a shell",
    "output-mount": "an output on a blank or unknown mount",
    "output-mount-readonly": "an output on a read-only mount",
    "contexts": "a wrapper without contexts, or a context that is not an XSI type",
    "context-type": "a context the external input's type cannot serve",
    "external-input-count": "a wrapper without exactly one external input",
    "wrapper-input-type": "unknown wrapper input type",
    "mount-ref": "files provided for an unknown mount, or by an input with no archive directory",
    "input-mount-writable": "a mount receiving archive files is writable",
    "command-input-ref": "a wrapper input provides a value for an unknown or select command input",
    "derived-from": "a derived input derived from nothing, itself or an unknown input",
    "derived-multiple": "a multiple derived input that mounts files or feeds no command input",
    "handler-output": "an output handler for a blank or unknown command output",
    "handler-parent": "an output handler on an unknown, multiple or non-uri parent",
    "handler-type": "unknown output handler type",
    "handler-label": "a Resource handler without a valid label",
    "output-unhandled": "a command output some wrapper does not handle",
}

COMMAND_KEYS = _words(
    """name label description version schema-version info-url image container-name type index hash
    working-directory command-line override-entrypoint mounts environment-variables ports inputs outputs xnat
    reserve-memory limit-memory limit-cpu runtime ipc-mode auto-remove shm-size network container-labels gpus
    generic-resources ulimits secrets"""
)
REQUIRED_COMMAND_KEYS = _words(
    """name label version schema-version image type command-line override-entrypoint mounts inputs outputs
    xnat"""
)
MOUNT_KEYS = frozenset({"name", "writable", "path"})
INPUT_KEYS = _words(
    """name label description type required matcher default-value replacement-key command-line-flag
    command-line-separator true-value false-value sensitive select-values multiple-delimiter"""
)
OUTPUT_KEYS = frozenset({"name", "description", "required", "mount", "path", "glob"})
WRAPPER_KEYS = frozenset(
    {"name", "label", "description", "contexts", "external-inputs", "derived-inputs", "output-handlers"}
)
EXTERNAL_INPUT_KEYS = _words(
    """name label description type matcher provides-value-for-command-input provides-files-for-command-mount
    via-setup-command default-value user-settable replacement-key required load-children sensitive"""
)
DERIVED_INPUT_KEYS = EXTERNAL_INPUT_KEYS | {
    "derived-from-wrapper-input",
    "derived-from-xnat-object-property",
    "multiple",
    "parser",
}
HANDLER_KEYS = _words(
    """name accepts-command-output as-a-child-of as-a-child-of-wrapper-input via-wrapup-command type label
    format description content tags"""
)

COMMAND_INPUT_TYPES = frozenset({"string", "boolean", "number", "file", "select-one", "select-many"})
SELECT_TYPES = frozenset({"select-one", "select-many"})
MULTIPLE_DELIMITERS = frozenset({"quoted-space", "space", "comma", "flag"})
WRAPPER_INPUT_TYPES = _words(
    """string boolean number Directory File[] File Project ProjectAsset Subject Session Scan Assessor Resource
    Config SubjectAssessor"""
)
XNAT_OBJECT_INPUT_TYPES = frozenset(
    {"Project", "ProjectAsset", "Subject", "Session", "Scan", "Assessor", "Resource", "SubjectAssessor"}
)
HANDLER_TYPES = frozenset({"Resource", "Assessor", "Scan"})
#: Which contexts an external input of these types can serve (suffix of the context's xsi type).
CONTEXT_SUFFIX_FOR_TYPE = {
    "Project": ("projectData",),
    "Subject": ("subjectData",),
    "Session": ("SessionData",),
    "Scan": ("ScanData",),
}


def _is_blank(value: Any) -> bool:
    return not isinstance(value, str) or not value.strip()


def _replacement_key(item: Mapping[str, Any]) -> str:
    raw = item.get("replacement-key")
    return raw if isinstance(raw, str) and raw.strip() else f"#{item.get('name', '')}#"


class _Checker:
    def __init__(self, command: Mapping[str, Any]) -> None:
        self.command = command
        self.errors: list[str] = []

    def error(self, where: str, message: str, rule: str) -> None:
        assert rule in RULES, rule
        self.errors.append(f"{where}: {message} [{rule}]")

    # -- shared helpers -------------------------------------------------------------------------------
    def objects(self, where: str, value: Any) -> list[Mapping[str, Any]]:
        """A list of JSON objects (anything else is reported and skipped)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(where, f"must be a list, found {type(value).__name__}", "json-type")
            return []
        items: list[Mapping[str, Any]] = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                items.append(item)
            else:
                self.error(f"{where}[{index}]", "must be an object", "json-type")
        return items

    def keys(self, where: str, item: Mapping[str, Any], known: Iterable[str]) -> None:
        for key in sorted(set(item) - set(known)):
            self.error(where, f"unknown key {key!r}", "unknown-key")

    def name(self, where: str, item: Mapping[str, Any], seen: set[str], kind: str) -> str:
        name = item.get("name")
        if _is_blank(name):
            self.error(where, f"{kind} name cannot be blank", "name-chars")
            return ""
        assert isinstance(name, str)
        if not NAME_RE.match(name):
            self.error(where, f"{kind} name {name!r} may contain only A-Z a-z 0-9 _ -", "name-chars")
        if name in seen:
            self.error(where, f"{kind} name {name!r} is not unique", "unique-name")
        seen.add(name)
        return name

    def text(self, where: str, item: Mapping[str, Any], key: str, rule: str) -> None:
        if _is_blank(item.get(key)):
            self.error(where, f"{key} must be present and not blank", rule)

    def boolean(self, where: str, item: Mapping[str, Any], key: str, *, required: bool = False) -> None:
        if key in item and not isinstance(item[key], bool):
            self.error(where, f"{key} must be true or false (a JSON boolean)", "json-type")
        elif required and key not in item:
            self.error(where, f"{key} must be set", "required-field")

    def launch_value(self, where: str, what: str, value: Any) -> None:
        """Values XNAT puts on the command line: refused strings, and splitting without a shell."""
        if not isinstance(value, str):
            self.error(where, f"{what} must be a string", "json-type")
            return
        for illegal in ILLEGAL_INPUT_STRINGS:
            if illegal in value:
                self.error(where, f"{what} {value!r} contains {illegal!r}, which XNAT refuses", "illegal-value")
        if self.command.get("override-entrypoint") is False and SPLIT_UNSAFE_RE.search(value):
            self.error(
                where,
                f"{what} {value!r} contains whitespace, a quote or a backslash; without a shell the "
                "Container Service splits or strips it",
                "split-unsafe",
            )

    # -- the command ----------------------------------------------------------------------------------
    def run(self) -> list[str]:
        command = self.command
        self.keys("command", command, COMMAND_KEYS)
        for key in sorted(REQUIRED_COMMAND_KEYS):
            if key not in command:
                self.error("command", f"required field {key!r} is missing", "required-field")
        if _is_blank(command.get("name")):
            self.error("command", "name cannot be blank", "name-chars")
        elif not re.match(r"^[A-Za-z0-9_.-]+$", str(command["name"])):
            self.error("command", f"name {command['name']!r} may contain only A-Z a-z 0-9 _ . -", "name-chars")
        for key in ("label", "version"):
            if key in command:
                self.text("command", command, key, "required-field")
        self.text("command", command, "description", "description")
        if "schema-version" in command and command.get("schema-version") != "1.0":
            self.error(
                "command",
                f'schema-version must be "1.0", found {command.get("schema-version")!r}',
                "schema-version",
            )
        image = command.get("image")
        if _is_blank(image):
            self.error("command", "image cannot be blank", "image-tag")
        elif not IMAGE_WITH_TAG_RE.match(str(image)):
            self.error("command", f"image {image!r} must include a tag, e.g. name:1.0", "image-tag")
        if "type" in command and command.get("type") != "docker":
            self.error("command", f'type must be "docker", found {command.get("type")!r}', "command-type")
        self.boolean("command", command, "override-entrypoint")
        line = command.get("command-line")
        if _is_blank(line):
            if "command-line" in command:
                self.error("command", "command-line cannot be blank", "required-field")
            line = ""
        assert isinstance(line, str)
        if command.get("override-entrypoint") is False and SHELL_SYNTAX_RE.search(line):
            self.error(
                "command",
                "command-line uses shell syntax but override-entrypoint is false (no shell)",
                "shell-syntax",
            )

        mounts = self.check_mounts()
        inputs = self.check_inputs(line)
        outputs = self.check_outputs(mounts)
        self.check_wrappers(mounts, inputs, outputs)
        return self.errors

    def check_mounts(self) -> dict[str, Mapping[str, Any]]:
        mounts: dict[str, Mapping[str, Any]] = {}
        seen: set[str] = set()
        for index, mount in enumerate(self.objects("mounts", self.command.get("mounts"))):
            where = f"mounts[{index}]"
            self.keys(where, mount, MOUNT_KEYS)
            name = self.name(where, mount, seen, "mount")
            path = mount.get("path")
            if _is_blank(path) or not str(path).startswith("/"):
                self.error(where, f"path must be an absolute path, found {path!r}", "mount-path")
            self.boolean(where, mount, "writable", required=True)
            if name:
                mounts[name] = mount
        return mounts

    def check_inputs(self, line: str) -> dict[str, Mapping[str, Any]]:
        inputs: dict[str, Mapping[str, Any]] = {}
        seen: set[str] = set()
        keys_seen: dict[str, str] = {}
        for index, item in enumerate(self.objects("inputs", self.command.get("inputs"))):
            name = self.name(f"inputs[{index}]", item, seen, "command input")
            where = f"inputs[{name or index}]"
            self.keys(where, item, INPUT_KEYS)
            self.text(where, item, "description", "description")
            self.boolean(where, item, "required")
            self.boolean(where, item, "sensitive")
            kind = item.get("type", "string")
            if kind not in COMMAND_INPUT_TYPES:
                self.error(where, f"type {kind!r} is not one of {sorted(COMMAND_INPUT_TYPES)}", "input-type")
            select_values = item.get("select-values") or []
            if not isinstance(select_values, list):
                self.error(where, "select-values must be a list", "json-type")
                select_values = []
            if kind in SELECT_TYPES and not select_values:
                self.error(where, f"type {kind} needs select-values", "select-values")
            if kind not in SELECT_TYPES and select_values:
                self.error(where, "has select-values but is not a select type", "select-values")
            for value in select_values:
                self.launch_value(where, "select value", value)
            default = item.get("default-value")
            if default is not None:
                self.check_default(where, item, kind, default, select_values)
            elif item.get("required") is True:
                self.error(
                    where,
                    "is required but has no default-value; automated launches cannot supply one",
                    "required-default",
                )
            if kind == "boolean":
                for key in ("true-value", "false-value"):
                    if key not in item:
                        self.error(where, f"boolean input needs {key}", "boolean-values")
                    elif item[key] != "":
                        self.launch_value(where, key, item[key])
                if not _is_blank(item.get("command-line-flag")):
                    self.error(
                        where,
                        "boolean input with a command-line-flag puts the flag before its true-value/false-value",
                        "boolean-values",
                    )
            delimiter = item.get("multiple-delimiter")
            if delimiter is not None and delimiter not in MULTIPLE_DELIMITERS:
                self.error(
                    where,
                    f"multiple-delimiter {delimiter!r} is not one of {sorted(MULTIPLE_DELIMITERS)}",
                    "multiple-delimiter",
                )
            flag = item.get("command-line-flag")
            if flag is not None and not _is_blank(flag):
                self.launch_value(where, "command-line-flag", flag)
            separator = item.get("command-line-separator")
            if separator is not None and separator not in {" ", "="}:
                self.launch_value(where, "command-line-separator", separator)
            key = _replacement_key(item)
            if key in keys_seen:
                self.error(where, f"replacement key {key} is also used by input {keys_seen[key]!r}", "unique-name")
            keys_seen[key] = name
            if key not in line:
                self.error(
                    where,
                    f"replacement key {key} does not appear in the command-line",
                    "replacement-key-missing",
                )
            if name:
                inputs[name] = item
        for key in sorted(set(REPLACEMENT_KEY_IN_LINE_RE.findall(line)) - set(keys_seen)):
            self.error("command", f"command-line has {key}, which no input fills", "unknown-replacement-key")
        return inputs

    def check_default(
        self, where: str, item: Mapping[str, Any], kind: Any, default: Any, select_values: list[Any]
    ) -> None:
        if not isinstance(default, str):
            self.error(where, "default-value must be a string (XNAT stores every value as text)", "json-type")
            return
        if kind == "boolean":
            if default not in {"true", "false"}:
                self.error(
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
            self.error(
                where,
                f"default-value {default!r} is not one of the select-values {select_values}",
                "select-default",
            )
        if default:
            self.launch_value(where, "default-value", default)

    def check_outputs(self, mounts: Mapping[str, Mapping[str, Any]]) -> set[str]:
        outputs: set[str] = set()
        seen: set[str] = set()
        for index, output in enumerate(self.objects("outputs", self.command.get("outputs"))):
            name = self.name(f"outputs[{index}]", output, seen, "command output")
            where = f"outputs[{name or index}]"
            self.keys(where, output, OUTPUT_KEYS)
            self.text(where, output, "description", "description")
            self.boolean(where, output, "required")
            mount = output.get("mount")
            if _is_blank(mount):
                self.error(where, "mount cannot be blank", "output-mount")
            elif mount not in mounts:
                self.error(where, f"references unknown mount {mount!r}; known: {sorted(mounts)}", "output-mount")
            elif mounts[str(mount)].get("writable") is not True:
                self.error(where, f"mount {mount!r} is not writable", "output-mount-readonly")
            if name:
                outputs.add(name)
        return outputs

    # -- wrappers -------------------------------------------------------------------------------------
    def check_wrappers(
        self,
        mounts: Mapping[str, Mapping[str, Any]],
        inputs: Mapping[str, Mapping[str, Any]],
        outputs: set[str],
    ) -> None:
        wrappers = self.objects("xnat", self.command.get("xnat"))
        if "xnat" in self.command and not wrappers:
            self.error("xnat", "the command has no wrappers, so XNAT cannot launch it", "required-field")
        seen: set[str] = set()
        for index, wrapper in enumerate(wrappers):
            name = self.name(f"xnat[{index}]", wrapper, seen, "wrapper")
            where = f"xnat[{name or index}]"
            self.keys(where, wrapper, WRAPPER_KEYS)
            self.text(where, wrapper, "label", "wrapper-label")
            self.text(where, wrapper, "description", "description")
            contexts = wrapper.get("contexts")
            if not isinstance(contexts, list) or not contexts:
                self.error(where, "contexts must list at least one XNAT data type", "contexts")
                contexts = []
            for context in contexts:
                if not isinstance(context, str) or not CONTEXT_RE.match(context):
                    self.error(
                        where,
                        f"context {context!r} is not an XSI type such as xnat:imageSessionData",
                        "contexts",
                    )
            self.check_wrapper(where, wrapper, [c for c in contexts if isinstance(c, str)], mounts, inputs, outputs)

    def check_wrapper(
        self,
        where: str,
        wrapper: Mapping[str, Any],
        contexts: list[str],
        mounts: Mapping[str, Mapping[str, Any]],
        inputs: Mapping[str, Mapping[str, Any]],
        outputs: set[str],
    ) -> None:
        wrapper_inputs: dict[str, Mapping[str, Any]] = {}
        externals = self.objects(f"{where}.external-inputs", wrapper.get("external-inputs"))
        if len(externals) != 1:
            self.error(
                where,
                f"has {len(externals)} external inputs; a wrapper shows in XNAT's menus only with exactly one",
                "external-input-count",
            )
        for index, item in enumerate(externals):
            self.check_wrapper_input(
                f"{where}.external-inputs[{index}]", item, EXTERNAL_INPUT_KEYS, wrapper_inputs, mounts, inputs
            )
            kind = item.get("type")
            for context in contexts:
                suffixes = CONTEXT_SUFFIX_FOR_TYPE.get(str(kind))
                if suffixes and not context.endswith(suffixes):
                    self.error(where, f"context {context} does not fit external input type {kind}", "context-type")
        multiple: set[str] = set()
        derived_inputs = self.objects(f"{where}.derived-inputs", wrapper.get("derived-inputs"))
        for index, item in enumerate(derived_inputs):
            item_where = f"{where}.derived-inputs[{index}]"
            parent = item.get("derived-from-wrapper-input")
            name = item.get("name")
            if _is_blank(parent):
                self.error(item_where, "derived-from-wrapper-input cannot be blank", "derived-from")
            elif parent == name:
                self.error(item_where, f"derived input {name!r} is derived from itself", "derived-from")
            elif parent not in wrapper_inputs:
                self.error(
                    item_where,
                    f"derived from unknown wrapper input {parent!r}; known (so far): {sorted(wrapper_inputs)}",
                    "derived-from",
                )
            self.check_wrapper_input(item_where, item, DERIVED_INPUT_KEYS, wrapper_inputs, mounts, inputs)
            if item.get("multiple") is True:
                multiple.add(str(name))
                if not _is_blank(item.get("provides-files-for-command-mount")):
                    self.error(
                        item_where,
                        "a multiple derived input cannot provide files for a mount",
                        "derived-multiple",
                    )
                if _is_blank(item.get("provides-value-for-command-input")):
                    self.error(
                        item_where,
                        "a multiple derived input must provide a value for a command input",
                        "derived-multiple",
                    )
        self.check_handlers(where, wrapper, wrapper_inputs, multiple, outputs)

    def check_wrapper_input(
        self,
        where: str,
        item: Mapping[str, Any],
        known_keys: Iterable[str],
        wrapper_inputs: dict[str, Mapping[str, Any]],
        mounts: Mapping[str, Mapping[str, Any]],
        inputs: Mapping[str, Mapping[str, Any]],
    ) -> None:
        self.keys(where, item, known_keys)
        name = self.name(where, item, set(wrapper_inputs), "wrapper input")
        if name in inputs:
            self.error(
                where,
                f"wrapper input {name!r} has the name of a command input; their replacement keys would collide",
                "name-clash",
            )
        self.text(where, item, "description", "description")
        for key in ("required", "load-children", "user-settable", "sensitive", "multiple"):
            self.boolean(where, item, key)
        kind = item.get("type")
        if kind not in WRAPPER_INPUT_TYPES:
            self.error(where, f"type {kind!r} is not one of {sorted(WRAPPER_INPUT_TYPES)}", "wrapper-input-type")
        mount = item.get("provides-files-for-command-mount")
        if mount is not None:
            if mount not in mounts:
                self.error(where, f"provides files for unknown mount {mount!r}; known: {sorted(mounts)}", "mount-ref")
            elif mounts[str(mount)].get("writable") is not False:
                self.error(
                    where,
                    f"mount {mount!r} receives archive files but is writable (XNAT then copies "
                    "the whole archive directory to a build folder)",
                    "input-mount-writable",
                )
            if kind not in XNAT_OBJECT_INPUT_TYPES:
                self.error(where, f"a {kind} input has no archive directory to provide", "mount-ref")
        target = item.get("provides-value-for-command-input")
        if target is not None:
            if target not in inputs:
                self.error(where, f"provides a value for unknown command input {target!r}", "command-input-ref")
            elif inputs[str(target)].get("type", "string") in SELECT_TYPES:
                self.error(where, f"provides a value for select input {target!r}", "command-input-ref")
        if not _is_blank(item.get("via-setup-command")) and mount is None:
            self.error(where, "via-setup-command needs provides-files-for-command-mount", "mount-ref")
        if name:
            wrapper_inputs[name] = item

    def check_handlers(
        self,
        where: str,
        wrapper: Mapping[str, Any],
        wrapper_inputs: Mapping[str, Mapping[str, Any]],
        multiple: set[str],
        outputs: set[str],
    ) -> None:
        handled: set[str] = set()
        seen: set[str] = set()
        for index, handler in enumerate(self.objects(f"{where}.output-handlers", wrapper.get("output-handlers"))):
            name = self.name(f"{where}.output-handlers[{index}]", handler, seen, "output handler")
            item_where = f"{where}.output-handlers[{name or index}]"
            self.keys(item_where, handler, HANDLER_KEYS)
            output = handler.get("accepts-command-output")
            if _is_blank(output):
                self.error(item_where, "accepts-command-output cannot be blank", "handler-output")
            elif output not in outputs:
                self.error(
                    item_where,
                    f"accepts unknown command output {output!r}; known: {sorted(outputs)}",
                    "handler-output",
                )
            else:
                handled.add(str(output))
            parent = handler.get("as-a-child-of", handler.get("as-a-child-of-wrapper-input"))
            if _is_blank(parent):
                self.error(item_where, "as-a-child-of cannot be blank", "handler-parent")
            elif parent not in wrapper_inputs and parent not in seen - {name}:
                self.error(
                    item_where,
                    f"as-a-child-of {parent!r} is neither a wrapper input nor an earlier output handler",
                    "handler-parent",
                )
            elif parent in multiple:
                self.error(
                    item_where,
                    f"as-a-child-of {parent!r}, an input allowing multiple values",
                    "handler-parent",
                )
            elif parent in wrapper_inputs:
                prop = wrapper_inputs[str(parent)].get("derived-from-xnat-object-property")
                if prop is not None and prop != "uri":
                    self.error(
                        item_where,
                        f"as-a-child-of {parent!r}, whose value is its {prop!r}, not its uri: the upload would fail",
                        "handler-parent",
                    )
            kind = handler.get("type", "Resource")
            if kind not in HANDLER_TYPES:
                self.error(item_where, f"type {kind!r} is not one of {sorted(HANDLER_TYPES)}", "handler-type")
            label = handler.get("label")
            if kind == "Resource":
                if _is_blank(label):
                    self.error(item_where, "a Resource handler needs a label", "handler-label")
                elif not NAME_RE.match(str(label)):
                    self.error(
                        item_where,
                        f"resource label {label!r} may contain only A-Z a-z 0-9 _ -",
                        "handler-label",
                    )
        for output in sorted(outputs - handled):
            self.error(where, f"command output {output!r} is not handled by any output handler", "output-unhandled")


def validate_command(command: Any) -> list[str]:
    """All problems found in one command object (empty when it passes)."""
    if not isinstance(command, Mapping):
        return [f"command: must be a JSON object, found {type(command).__name__} [json-type]"]
    return _Checker(command).run()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else Path(__file__).resolve().parent.parent / "command.json"
    with path.open(encoding="utf-8") as handle:
        command = json.load(handle)
    problems = validate_command(command)
    for problem in problems:
        sys.stdout.write(f"{path}: {problem}\n")
    if not problems:
        sys.stdout.write(f"{path}: OK\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
