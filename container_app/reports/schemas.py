"""The report schemas shipped in `container_app/reports/schemas/`, and checking documents against them.

Every document is checked by a fastjsonschema validator compiled once (and cached on disk, see
`support.compiled_cache`); only when it fails does the reference validator (jsonschema) say what is wrong.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from functools import cache
from importlib import resources as package_data
from typing import TYPE_CHECKING, Any

import fastjsonschema

from container_app.core.errors import ReportError, ReportValidationError
from container_app.support.compiled_cache import compiled_validator

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

SURVEY_SCHEMA = "survey-report.schema.json"
MITIGATION_SCHEMA = "mitigation-report.schema.json"
ROLLUP_SCHEMA = "rollup-report.schema.json"
SCHEMAS = (SURVEY_SCHEMA, MITIGATION_SCHEMA, ROLLUP_SCHEMA)


@cache
def load_schema(name: str) -> dict[str, Any]:
    """A JSON schema shipped in `container_app/reports/schemas/`."""
    text = package_data.files("container_app.reports").joinpath("schemas", name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema(schema_name: str, definition: str | None) -> dict[str, Any]:
    schema = load_schema(schema_name)
    if definition is None:
        return schema
    # Its own $id: validators cache schemas by id, and "#/$defs/..." must resolve inside this document.
    return {"$schema": schema["$schema"], "$id": f"{schema['$id']}/{definition}", "$defs": schema["$defs"],
            "$ref": f"#/$defs/{definition}"}


@cache
def validator(schema_name: str, definition: str | None = None) -> Validator:
    """The reference validator (jsonschema): Draft 7, formats checked; explains what is wrong and where."""
    import jsonschema  # only when a document fails, or for tests: it costs a twentieth of a second to import

    schema = _schema(schema_name, definition)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


@cache
def _fast_validator(schema_name: str, definition: str | None = None) -> Callable[[Any], Any]:
    """The same schema compiled to Python by fastjsonschema: fast enough to check every resource of a
    million-file survey as it streams. Equally strict (required fields, types, patterns, formats, no
    unknown properties); on failure the reference validator says what is wrong."""
    # A copy: fastjsonschema rewrites every `$ref` in place, and the cached schema is shared with the reference
    # validators, which then could no longer resolve them.
    schema = copy.deepcopy(_schema(schema_name, definition))
    # The generated code also holds whatever the references reach: keyed by every shipped schema's text.
    shipped = "\0".join(json.dumps(load_schema(name), sort_keys=True) for name in SCHEMAS)
    return compiled_validator(schema, {"http": _offline, "https": _offline}, shipped)


def _offline(uri: str) -> Any:
    """Resolve references to our own schemas from the package; nothing is ever fetched."""
    for name in SCHEMAS:
        schema = load_schema(name)
        if schema.get("$id") == uri.split("#", 1)[0]:
            return copy.deepcopy(schema)  # fastjsonschema rewrites it in place
    raise ReportError(f"schema reference {uri} is not shipped with the package; schemas never load from the network")


def validate(document: Mapping[str, Any], schema_name: str, definition: str | None = None) -> None:
    """Raise ReportValidationError with the first problem and where it is."""
    try:
        _fast_validator(schema_name, definition)(document)
    except fastjsonschema.JsonSchemaException as fast_error:
        from jsonschema.exceptions import best_match

        error = best_match(validator(schema_name, definition).iter_errors(document))
        if error is None:  # the two validators disagree: trust the stricter answer, and say so
            raise ReportValidationError(f"report fails {schema_name}: {fast_error}") from fast_error
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ReportValidationError(f"report fails {schema_name} at {where}: {error.message}") from fast_error


def load_json_object(path: str) -> dict[str, Any]:
    """A report file's JSON object, or a ReportError saying why it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not a JSON report: {exc}") from exc
    if not isinstance(document, dict):
        raise ReportError(f"{path} is not a report: its JSON is not an object")
    return document


def read_report_bytes(path: str) -> bytes:
    """A report file's bytes, or a ReportError saying why they cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ReportError(f"cannot read report {path}: {exc.strerror or exc}") from exc


def report_text(data: bytes, path: str) -> str:
    """A report's bytes as text (UTF-8, strictly), or a ReportError saying why they are not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReportError(f"{path} is not a JSON report: {exc}") from exc


def parse_report(data: bytes | str, path: str, schema_name: str) -> dict[str, Any]:
    """`read_report` for bytes already read (so the bytes validated are the bytes a caller keeps), or for their
    text (`report_text`: a caller done with the bytes need not hold them while the document is built)."""
    try:
        document = json.loads(data if isinstance(data, str) else data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path} is not a JSON report: {exc}") from exc
    if not isinstance(document, dict):
        raise ReportError(f"{path} is not a report: its JSON is not an object")
    try:
        validate(document, schema_name)
    except ReportValidationError as exc:
        raise ReportError(f"{path} is not a valid {schema_name.split('.')[0]}: {exc}") from exc
    return document


def read_report(path: str, schema_name: str) -> dict[str, Any]:
    """Load and validate a report written by this tool."""
    document = load_json_object(path)
    try:
        validate(document, schema_name)
    except ReportValidationError as exc:
        raise ReportError(f"{path} is not a valid {schema_name.split('.')[0]}: {exc}") from exc
    return document
