"""Each rule of `container/validate_command.py` fires on a command broken in memory (negative tests)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.helpers.cli import COMMAND, rules, validator

# ---------------------------------------------------------------------------------------------------
# Each rule fires (the command is broken in memory, never on disk)

Mutation = Callable[[dict[str, Any]], None]


def _wrapper(command: dict[str, Any], name: str = "resource-survey-session") -> dict[str, Any]:
    return next(w for w in command["xnat"] if w["name"] == name)


def _input(command: dict[str, Any], name: str) -> dict[str, Any]:
    return next(i for i in command["inputs"] if i["name"] == name)


def _add_derived(command: dict[str, Any], **fields: Any) -> None:
    derived = {"name": "resource", "description": "a derived input", "type": "Resource", **fields}
    _wrapper(command)["derived-inputs"].append(derived)


MUTATIONS: list[tuple[str, Mutation, str]] = [
    ("blank command name", lambda c: c.update(name=" "), "name-chars"),
    ("input name with a space", lambda c: _input(c, "keep").update(name="keep policy"), "name-chars"),
    ("output name with !", lambda c: c["outputs"][0].update(name="reports!"), "name-chars"),
    ("wrapper name with /", lambda c: _wrapper(c).update(name="session/survey"), "name-chars"),
    ("handler name with .", lambda c: _wrapper(c)["output-handlers"][0].update(name="a.b"), "name-chars"),
    ("external input name with a space", lambda c: _wrapper(c)["external-inputs"][0].update(name="the session"),
     "name-chars"),
    ("duplicate mount", lambda c: c["mounts"].append(dict(c["mounts"][0])), "unique-name"),
    ("duplicate input", lambda c: c["inputs"].append(dict(c["inputs"][1])), "unique-name"),
    ("duplicate output", lambda c: c["outputs"].append(dict(c["outputs"][0])), "unique-name"),
    ("duplicate wrapper", lambda c: c["xnat"].append(copy.deepcopy(c["xnat"][0])), "unique-name"),
    ("duplicate handler", lambda c: _wrapper(c)["output-handlers"].append(dict(_wrapper(c)["output-handlers"][0])),
     "unique-name"),
    ("derived input named like the external one", lambda c: _add_derived(c, name="session",
                                                                         **{"derived-from-wrapper-input": "session"}),
     "unique-name"),
    ("shared replacement key", lambda c: _input(c, "keep").update({"replacement-key": "#EXECUTOR#"}), "unique-name"),
    ("wrapper input named like a command input",
     lambda c: _wrapper(c)["external-inputs"][0].update(name="mode"), "name-clash"),
    ("output not handled by the scan wrapper", lambda c: _wrapper(c, "resource-survey-scan").update(
        {"output-handlers": []}), "output-unhandled"),
    ("a second output nobody handles", lambda c: c["outputs"].append(
        {"name": "extra", "description": "x", "mount": "output"}), "output-unhandled"),
    ("two external inputs", lambda c: _wrapper(c)["external-inputs"].append(
        {"name": "other", "description": "x", "type": "Session"}), "external-input-count"),
    ("no external input", lambda c: _wrapper(c).update({"external-inputs": []}), "external-input-count"),
    ("blank wrapper description", lambda c: _wrapper(c).update(description=""), "description"),
    ("no command description", lambda c: c.pop("description"), "description"),
    ("no input description", lambda c: _input(c, "keep").pop("description"), "description"),
    ("no external input description", lambda c: _wrapper(c)["external-inputs"][0].pop("description"),
     "description"),
    ("no wrapper label", lambda c: _wrapper(c).pop("label"), "wrapper-label"),
    ("select default outside its values", lambda c: _input(c, "keep").update({"default-value": "largest"}),
     "select-default"),
    ("select without values", lambda c: _input(c, "mode").pop("select-values"), "select-values"),
    ("string with select values", lambda c: _input(c, "template").update({"select-values": ["a"]}),
     "select-values"),
    ("replacement key missing from the command line",
     lambda c: c.update({"command-line": c["command-line"].replace(" #KEEP#", "")}), "replacement-key-missing"),
    ("command line key no input fills", lambda c: c.update({"command-line": c["command-line"] + " #BOGUS#"}),
     "unknown-replacement-key"),
    ("derived from an unknown input", lambda c: _add_derived(c, **{"derived-from-wrapper-input": "nope"}),
     "derived-from"),
    ("derived from itself", lambda c: _add_derived(c, **{"derived-from-wrapper-input": "resource"}),
     "derived-from"),
    ("multiple derived input mounting files", lambda c: _add_derived(
        c, multiple=True, **{"derived-from-wrapper-input": "session", "provides-files-for-command-mount": "input"}),
     "derived-multiple"),
    ("files for an unknown mount", lambda c: _wrapper(c)["external-inputs"][0].update(
        {"provides-files-for-command-mount": "nowhere"}), "mount-ref"),
    ("input mount writable", lambda c: c["mounts"][0].update(writable=True), "input-mount-writable"),
    ("output on an unknown mount", lambda c: c["outputs"][0].update(mount="nowhere"), "output-mount"),
    ("output on a read-only mount", lambda c: c["mounts"][1].update(writable=False), "output-mount-readonly"),
    ("relative mount path", lambda c: c["mounts"][0].update(path="input"), "mount-path"),
    ("resource handler without a label", lambda c: _wrapper(c)["output-handlers"][0].pop("label"),
     "handler-label"),
    ("resource label with a space", lambda c: _wrapper(c)["output-handlers"][0].update(label="RESOURCE SURVEY"),
     "handler-label"),
    ("handler for an unknown output", lambda c: _wrapper(c)["output-handlers"][0].update(
        {"accepts-command-output": "nope"}), "handler-output"),
    ("handler on an unknown parent", lambda c: _wrapper(c)["output-handlers"][0].update(
        {"as-a-child-of": "nope"}), "handler-parent"),
    ("handler on a derived label, not a uri", lambda c: (
        _add_derived(c, **{"derived-from-wrapper-input": "session", "derived-from-xnat-object-property": "label"}),
        _wrapper(c)["output-handlers"][0].update({"as-a-child-of": "resource"})), "handler-parent"),
    ("unknown handler type", lambda c: _wrapper(c)["output-handlers"][0].update(type="Folder"), "handler-type"),
    ("image without a tag", lambda c: c.update(image="xnat-resource-survey"), "image-tag"),
    ("schema version 2", lambda c: c.update({"schema-version": "2.0"}), "schema-version"),
    ("not a docker command", lambda c: c.update(type="docker-setup"), "command-type"),
    ("no command line", lambda c: c.pop("command-line"), "required-field"),
    ("no wrappers", lambda c: c.update(xnat=[]), "required-field"),
    ("misspelt key", lambda c: _input(c, "keep").update(replacement_key="#KEEP#"), "unknown-key"),
    ("boolean without false-value", lambda c: _input(c, "dry_run").pop("false-value"), "boolean-values"),
    ("boolean default yes", lambda c: _input(c, "dry_run").update({"default-value": "yes"}), "boolean-values"),
    ("boolean with a flag", lambda c: _input(c, "dry_run").update({"command-line-flag": "--dry-run"}),
     "boolean-values"),
    ("default with a space", lambda c: _input(c, "template").update({"default-value": "${A} ${B}"}),
     "split-unsafe"),
    ("select value with a quote", lambda c: _input(c, "keep").update({"select-values": ["newest", "o'ldest"]}),
     "split-unsafe"),
    ("default XNAT refuses", lambda c: _input(c, "resource_labels").update({"default-value": "DICOM;rm"}),
     "illegal-value"),
    ("shell syntax without a shell", lambda c: c.update({"command-line": c["command-line"] + " | tee log"}),
     "shell-syntax"),
    ("override-entrypoint as a string", lambda c: c.update({"override-entrypoint": "false"}), "json-type"),
    ("session input in a project context", lambda c: _wrapper(c).update(contexts=["xnat:projectData"]),
     "context-type"),
    ("no contexts", lambda c: _wrapper(c).update(contexts=[]), "contexts"),
    ("unknown wrapper input type", lambda c: _wrapper(c)["external-inputs"][0].update(type="Sesion"),
     "wrapper-input-type"),
    ("unknown command input type", lambda c: _input(c, "template").update(type="text"), "input-type"),
    ("value for an unknown command input", lambda c: _wrapper(c)["external-inputs"][0].update(
        {"provides-value-for-command-input": "nope"}), "command-input-ref"),
    ("value for a select input", lambda c: _wrapper(c)["external-inputs"][0].update(
        {"provides-value-for-command-input": "mode"}), "command-input-ref"),
    ("required input without default", lambda c: _input(c, "template").update(
        {"required": True, "default-value": None}), "required-default"),
    ("bad multiple-delimiter", lambda c: _input(c, "template").update({"multiple-delimiter": "tab"}),
     "multiple-delimiter"),
]  # fmt: skip


@pytest.mark.parametrize(("mutation", "rule"), [(m, r) for _, m, r in MUTATIONS], ids=[i for i, _, _ in MUTATIONS])
def test_each_rule_fires(mutation: Mutation, rule: str) -> None:
    broken = copy.deepcopy(COMMAND)
    mutation(broken)
    assert rule in rules(broken), validator.validate_command(broken)


def test_every_rule_has_a_negative_test() -> None:
    assert set(validator.RULES) - {rule for _, _, rule in MUTATIONS} == set()


def test_a_command_that_is_not_an_object() -> None:
    assert rules([COMMAND]) == {"json-type"}

