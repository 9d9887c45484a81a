"""command.json, the Container Service command that ships in the image label.

Three groups of tests:
- the command passes `container/validate_command.py` (the Container Service's rules and ours), and
  each rule really fires on a command broken in memory (negative tests);
- the facts the issue fixes (mounts, inputs, wrappers, handlers, versions) hold;
- every wrapper's command line, filled as XNAT fills it (`container/xnat_launch.py`) and split as XNAT
  splits it, parses with the CLI's own parser, for the defaults and for every select value.
"""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import container_app
from tests import container_scripts

ROOT = Path(__file__).resolve().parent.parent
COMMAND_JSON = ROOT / "command.json"
XNAT_DEFAULT_TEMPLATE = "${StudyInstanceUID}-${SeriesNumber}-${InstanceNumber}-${HashSOPClassUIDWithSOPInstanceUID}"


_load = container_scripts.load


validator = _load("validate_command")
launch = _load("xnat_launch")
label = _load("label")


def load_command() -> dict[str, Any]:
    with COMMAND_JSON.open(encoding="utf-8") as handle:
        command: dict[str, Any] = json.load(handle)
    return command


COMMAND = load_command()
WRAPPERS = {w["name"]: w for w in COMMAND["xnat"]}
INPUTS = {i["name"]: i for i in COMMAND["inputs"]}


def rules(command: Any) -> set[str]:
    """The rule codes of every problem the validator reports."""
    return {problem.rsplit("[", 1)[1].rstrip("]") for problem in validator.validate_command(command)}


# ---------------------------------------------------------------------------------------------------
# The command passes, and its fixed facts hold


def test_command_json_passes_the_validator() -> None:
    assert validator.validate_command(COMMAND) == []


def test_validator_main_reports_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert validator.main([str(COMMAND_JSON)]) == 0
    assert capsys.readouterr().out.strip().endswith("OK")


def test_command_identity_matches_the_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["dynamic"] == ["version"]  # read from the package, the one place it is written
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "container_app.__version__"}
    version = container_app.__version__
    assert COMMAND["schema-version"] == "1.0"
    assert COMMAND["type"] == "docker"
    assert COMMAND["version"] == version
    assert COMMAND["image"] == f"xnat-resource-survey:{version}"


def test_mounts_and_the_one_output() -> None:
    mounts = {m["name"]: (m["path"], m["writable"]) for m in COMMAND["mounts"]}
    assert mounts == {"input": ("/input", False), "output": ("/output", True)}
    assert [(o["name"], o["mount"], o.get("path")) for o in COMMAND["outputs"]] == [("reports", "output", None)]


def test_command_line_runs_the_tool_without_a_shell() -> None:
    assert COMMAND["override-entrypoint"] is False
    line = COMMAND["command-line"]
    assert line.split()[:6] == ["xnat-resource-survey", "#MODE#", "/input", "--output", "/output", "--backup-dir"]
    assert "/output/backup" in line.split()


def test_inputs_map_onto_the_cli() -> None:
    assert INPUTS["mode"]["type"] == "select-one"
    assert INPUTS["mode"]["select-values"] == ["survey", "mitigate"]
    assert INPUTS["mode"]["default-value"] == "survey"
    assert INPUTS["keep"]["select-values"] == ["newest", "oldest", "expected-name"]
    assert INPUTS["keep"]["default-value"] == "newest"
    assert INPUTS["executor"]["select-values"] == ["auto", "filesystem", "xnat"]
    assert INPUTS["executor"]["default-value"] == "auto"
    assert INPUTS["rest_file_operations"]["select-values"] == ["refuse", "allow"]
    assert INPUTS["rest_file_operations"]["default-value"] == "refuse"
    assert INPUTS["resource_labels"]["default-value"] == "DICOM"
    for name in ("dry_run", "fail_on_divergent"):
        assert INPUTS[name]["type"] == "boolean"
        assert INPUTS[name]["default-value"] == "false"
    for name in ("template", "resource_labels", "keep", "executor", "rest_file_operations"):
        assert INPUTS[name]["command-line-separator"] == "=", name


def test_template_default_is_xnats_default() -> None:
    assert INPUTS["template"]["default-value"] == XNAT_DEFAULT_TEMPLATE
    naming = pytest.importorskip("container_app.core.naming")
    assert naming.DEFAULT_TEMPLATE == XNAT_DEFAULT_TEMPLATE


@pytest.mark.parametrize(
    ("wrapper", "context", "input_type", "parent"),
    [
        ("resource-survey-session", "xnat:imageSessionData", "Session", "session"),
        ("resource-survey-scan", "xnat:imageScanData", "Scan", "scan"),
        ("resource-survey-project", "xnat:projectData", "Project", "project"),
    ],
)
def test_wrappers(wrapper: str, context: str, input_type: str, parent: str) -> None:
    spec = WRAPPERS[wrapper]
    assert spec["contexts"] == [context]
    assert spec["label"].strip() and spec["description"].strip()
    (external,) = spec["external-inputs"]
    assert (external["name"], external["type"], external["provides-files-for-command-mount"]) == (
        parent,
        input_type,
        "input",
    )
    (handler,) = spec["output-handlers"]
    assert handler["accepts-command-output"] == "reports"
    assert handler["as-a-child-of"] == parent
    assert (handler["type"], handler["label"]) == ("Resource", "RESOURCE_SURVEY")


def test_exactly_the_three_wrappers() -> None:
    assert set(WRAPPERS) == {"resource-survey-session", "resource-survey-scan", "resource-survey-project"}


def test_label_is_the_command_in_a_list() -> None:
    value = label.label_value(COMMAND)
    assert value == json.dumps([COMMAND])
    assert json.loads(value) == [COMMAND]
    assert value.isascii()


def test_label_script_prints_and_checks(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert label.main([]) == 0
    printed = capsys.readouterr().out
    assert printed == json.dumps([COMMAND])
    monkeypatch.setenv("COMMANDS", printed)
    assert label.main(["--check-env", "COMMANDS"]) == 0
    monkeypatch.setenv("COMMANDS", printed.replace("survey", "surfey", 1))
    assert label.main(["--check-env", "COMMANDS"]) == 1
    monkeypatch.setenv("COMMANDS", "")
    assert label.main(["--check-env", "COMMANDS"]) == 1


def test_event_subscription_targets_the_session_wrapper() -> None:
    subscription = json.loads((ROOT / "container" / "event-subscription.json").read_text(encoding="utf-8"))
    event_filter = subscription["event-filter"]
    assert event_filter["event-type"] == "org.nrg.xnat.eventservice.events.SessionEvent"
    assert event_filter["status"] == "CREATED"
    assert subscription["action-key"].startswith("org.nrg.containers.services.CommandActionProvider:")
    # Automated launches use defaults apart from what the subscription sets: they must only survey.
    attributes = subscription.get("attributes", {})
    assert attributes.get("mode", INPUTS["mode"]["default-value"]) == "survey"
    assert set(attributes) <= set(INPUTS)


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


# ---------------------------------------------------------------------------------------------------
# XNAT's resolution, as emulated


@pytest.mark.parametrize(
    ("line", "tokens"),
    [
        ("a  b\tc", ["a", "b", "c"]),
        ("--template=${A}-${B}", ["--template=${A}-${B}"]),
        ("'a b' \"c d\"", ["a b", "c d"]),
        ("a\\ b", ["a b"]),
        ("'a\\b'", ["a\\b"]),
        ("x ''", ["x"]),  # Java's ShellSplitter drops empty tokens
        ("", []),
    ],
)
def test_shell_split_matches_the_container_service(line: str, tokens: list[str]) -> None:
    assert launch.shell_split(line) == tokens


def test_command_line_values_as_xnat_builds_them() -> None:
    flag = {"name": "t", "type": "string", "command-line-flag": "--t", "command-line-separator": "="}
    assert launch.command_line_value(flag, "x") == "--t=x"
    assert launch.command_line_value(flag, "") == ""  # blank value: the flag is dropped too
    assert launch.command_line_value(flag, None) == ""
    assert launch.command_line_value({**flag, "command-line-separator": None}, "x") == "--t x"
    boolean = {"name": "b", "type": "boolean", "true-value": "--b", "false-value": ""}
    assert launch.command_line_value(boolean, "TRUE") == "--b"
    assert launch.command_line_value(boolean, "false") == ""
    assert launch.command_line_value(boolean, "yes") == ""  # Boolean.parseBoolean("yes") is false
    assert launch.command_line_value({"name": "p", "type": "string"}, "survey") == "survey"


def test_default_launch_line() -> None:
    argv = launch.container_argv(COMMAND, "resource-survey-session")
    assert argv == [
        "xnat-resource-survey", "survey", "/input", "--output", "/output", "--backup-dir", "/output/backup",
        "--log-format=json", f"--template={XNAT_DEFAULT_TEMPLATE}", "--resource-label=DICOM", "--keep=newest",
        "--executor=auto", "--rest-file-operations=refuse",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# The CLI's own parser accepts every line XNAT can produce

LAUNCHES: list[dict[str, str]] = [
    {},
    {"mode": "mitigate"},
    {"mode": "survey", "fail_on_divergent": "true", "dry_run": "true"},
    {"mode": "mitigate", "dry_run": "true", "fail_on_divergent": "true"},
    {"template": ""},
    {"mode": "mitigate", "template": ""},
    {"resource_labels": "DICOM,secondary"},
    {"template": "${PatientID}-${SOPInstanceUID}.dcm"},
    # every value of every select input, in both modes
    *(
        {"mode": mode, name: value}
        for mode in INPUTS["mode"]["select-values"]
        for name, spec in INPUTS.items()
        if spec["type"] == "select-one" and name != "mode"
        for value in spec["select-values"]
    ),
]


def _cli_parser() -> Any:
    arguments = pytest.importorskip("container_app.cli.settings", reason="the CLI's parser is not written yet")
    return arguments.build_parser()


@pytest.mark.parametrize("wrapper", sorted(WRAPPERS))
@pytest.mark.parametrize(
    "values", LAUNCHES, ids=lambda launch: ",".join(f"{k}={launch[k]}" for k in launch) or "defaults"
)
def test_wrapper_command_line_parses(wrapper: str, values: dict[str, str]) -> None:
    parser = _cli_parser()
    argv = launch.container_argv(COMMAND, wrapper, values)
    assert argv[0] == "xnat-resource-survey"
    try:
        ns = parser.parse_args(argv[1:])
    except (Exception, SystemExit) as exc:  # the CLI's parser raises UsageError instead of exiting
        pytest.fail(f"XNAT's command line {argv[1:]} does not parse: {exc}")
    expected = {name: values.get(name, spec.get("default-value")) for name, spec in INPUTS.items()}
    assert ns.command == expected["mode"]
    assert (ns.root, ns.output) == ("/input", "/output")
    assert ns.template == (expected["template"] or parser.parse_args([ns.command, "r", "--output", "o"]).template)
    assert ",".join(ns.labels) == expected["resource_labels"]
    assert ns.log_format == "json"
    assert ns.fail_on_divergent is (expected["fail_on_divergent"] == "true")
    assert ns.dry_run is (expected["dry_run"] == "true")
    assert ns.keep == expected["keep"]
    assert ns.executor == expected["executor"]
    assert ns.rest_file_operations == expected["rest_file_operations"]
    assert ns.backup_dir == "/output/backup"


@pytest.mark.parametrize("mode", ["survey", "mitigate"])
def test_settings_accept_the_default_launch(mode: str) -> None:
    """Beyond argparse: the CLI's settings (template parsed, labels split) accept the default launch."""
    arguments = pytest.importorskip("container_app.cli.settings")
    argv = launch.container_argv(COMMAND, "resource-survey-session", {"mode": mode})
    settings = arguments.parse_settings(argv[1:])
    survey = getattr(settings, "survey", settings)
    assert survey.root == "/input"
    assert survey.labels == frozenset({"DICOM"})


# ---------------------------------------------------------------------------------------------------
# Mitigation through XNAT's REST API: each wrapper tells the tool which XNAT object /input holds


@pytest.mark.parametrize(
    ("wrapper", "derived", "parent", "prop", "command_input", "flag", "value"),
    [
        ("resource-survey-session", "session-id", "session", "id", "xnat_session", "--xnat-session",
         "XNAT_E00001"),
        ("resource-survey-scan", "scan-uri", "scan", "uri", "xnat_scan", "--xnat-scan",
         "/experiments/XNAT_E00001/scans/5"),
        ("resource-survey-project", "project-id", "project", "id", "xnat_project", "--xnat-project", "PROJ1"),
    ],
)
def test_wrappers_pass_their_xnat_object_to_the_tool(wrapper: str, derived: str, parent: str, prop: str,
                                                     command_input: str, flag: str, value: str) -> None:
    (item,) = WRAPPERS[wrapper]["derived-inputs"]
    assert (item["name"], item["derived-from-wrapper-input"], item["derived-from-xnat-object-property"]) == (
        derived, parent, prop)
    assert item["provides-value-for-command-input"] == command_input
    assert item["user-settable"] is False
    spec = INPUTS[command_input]
    assert (spec["type"], spec["command-line-flag"], spec["command-line-separator"]) == ("string", flag, "=")
    assert spec.get("default-value") in (None, "")  # blank unless a wrapper fills it: no flag at all then
    # XNAT fills the derived value into the command input; the CLI accepts it in both modes
    arguments = pytest.importorskip("container_app.cli.settings")
    for mode in ("survey", "mitigate"):
        argv = launch.container_argv(COMMAND, wrapper, {"mode": mode, command_input: value})
        assert f"{flag}={value}" in argv
        settings = arguments.parse_settings(argv[1:])
        if mode == "mitigate":
            assert getattr(settings, command_input) == value


def test_the_scan_uri_xnat_derives_names_session_and_scan() -> None:
    executor = pytest.importorskip("container_app.mitigation.xnat.executor")
    for uri in ("/experiments/XNAT_E00001/scans/5", "/archive/experiments/XNAT_E00001/scans/5"):
        assert executor.parse_scan_uri(uri) == ("XNAT_E00001", "5")
