"""command.json's command lines: every wrapper's, filled as XNAT fills it (`container/xnat_launch.py`) and
split as XNAT splits it, parses with the CLI's own parser, for the defaults and for every select value.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.cli import COMMAND, INPUTS, WRAPPERS, XNAT_DEFAULT_TEMPLATE, launch

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
    arguments = pytest.importorskip("container_app.cli.main", reason="the CLI's parser is not written yet")
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
    arguments = pytest.importorskip("container_app.cli.main")
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
    arguments = pytest.importorskip("container_app.cli.main")
    for mode in ("survey", "mitigate"):
        argv = launch.container_argv(COMMAND, wrapper, {"mode": mode, command_input: value})
        assert f"{flag}={value}" in argv
        settings = arguments.parse_settings(argv[1:])
        if mode == "mitigate":
            assert getattr(settings, command_input) == value


def test_the_scan_uri_xnat_derives_names_session_and_scan() -> None:
    target = pytest.importorskip("container_app.mitigation.xnat.target")
    for uri in ("/experiments/XNAT_E00001/scans/5", "/archive/experiments/XNAT_E00001/scans/5"):
        assert target.parse_scan_uri(uri) == ("XNAT_E00001", "5")
