"""The vocabulary of the rules: rule codes, the keys XNAT knows, name patterns and the type lists.

Data only, so every rule module can import it without importing another.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
#: Container Service: an image "has a tag" when it matches this (Command.HAS_TAG).
IMAGE_WITH_TAG_RE = re.compile(r"^.+:[a-zA-Z0-9_.-]+$")
CONTEXT_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*:[A-Za-z][A-Za-z0-9_]*$")
REPLACEMENT_KEY_IN_LINE_RE = re.compile(r"#[A-Za-z0-9_-]+#")
#: CommandResolutionService.ILLEGAL_INPUT_STRINGS (container-service 1.2 to 3.7.3; commit c672a09e "Now all ( are
#: disallowed", before it only "$("), checked by CommandResolutionServiceImpl.checkForIllegalInputValue on every
#: resolved input value: a launch with any of these in a value is refused. "(" covers "$(" and a bare "(".
ILLEGAL_INPUT_STRINGS = (";", "&&", "||", "`", "(")
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
