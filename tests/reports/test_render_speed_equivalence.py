"""The faster forms of the classification and rendering code mean what the plain forms meant.

The schema's `file` definition is written so the compiled validator never has to fail a branch for a
conforming file; the legacy-name test looks at a name's shape before hashing; a resource's UIDs are
collected in ordered sets. Each must accept, reject and produce exactly what the plain form did.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_app.core.classify import classify
from container_app.core.errors import ReportValidationError
from container_app.core.naming import DEFAULT_TEMPLATE, is_legacy_name, legacy_hash, parse_template
from container_app.core.records import FileRecord, HeaderValues, Resource, ResourceIdentity
from container_app.reports.schemas import SCHEMAS, _fast_validator, load_schema, validate, validator
from container_app.reports.survey import survey_resource_document, xnat_survey_report

SCHEMA = "survey-report.schema.json"
SHA = "0123456789abcdef" * 4
CONFORMING: dict[str, Any] = {"path": "SCANS/1/DICOM/a.dcm", "size": 10, "mtimeNs": 1, "status": "CONFORMING",
                              "expectedName": "a.dcm", "reasons": [], "sha256": None}
UIDS = {"sopClassUID": "1.2.840.10008.5.1.4.1.1.4", "sopInstanceUID": "1.2.3.4"}


_ABSENT = object()  # a property left out


def _file(**changes: Any) -> dict[str, Any]:
    document = {**CONFORMING, **changes}
    return {k: v for k, v in document.items() if v is not _ABSENT}

VALID = [
    pytest.param(_file(), id="conforming"),
    pytest.param(_file(path="a.dcm", sha256=SHA, intact=True, **UIDS), id="conforming-checked"),
    pytest.param(_file(status="MISMATCHED", reasons=["NAME_MISMATCH"], **UIDS), id="mismatched"),
    pytest.param(_file(status="DUPLICATE", sha256=SHA, **UIDS), id="duplicate"),
    pytest.param(_file(status="NONACTIONABLE_DUPLICATE", **UIDS), id="nonactionable"),
    pytest.param(_file(status="BAD", expectedName=None, reasons=["NOT_DICOM"], detail="not DICOM"), id="bad"),
    pytest.param(_file(path="\n/leading-newline"), id="only-a-leading-slash-is-absolute"),
]

INVALID = [
    pytest.param(_file(path="/SCANS/a.dcm"), "path", id="absolute-path"),
    pytest.param(_file(path=""), "path", id="empty-path"),
    pytest.param(_file(path=None), "path", id="null-path"),
    pytest.param(_file(sha256="ABCDEF" + SHA[6:]), "sha256", id="uppercase-sha256"),
    pytest.param(_file(sha256=SHA[:-1]), "sha256", id="short-sha256"),
    pytest.param(_file(sha256=5), "sha256", id="sha256-not-a-string"),
    pytest.param(_file(sha256=_ABSENT), "(top)", id="sha256-missing"),
    pytest.param(_file(status="BAD", expectedName="a.dcm"), "expectedName", id="bad-with-expected-name"),
    pytest.param(_file(status="MISMATCHED"), "(top)", id="mismatched-without-uids"),
    pytest.param(_file(status="DUPLICATE", sopClassUID="1.2"), "(top)", id="duplicate-without-instance-uid"),
    pytest.param(_file(status="NONACTIONABLE_DUPLICATE", sopInstanceUID="1.2"), "(top)", id="nonactionable-no-class"),
    pytest.param(_file(status="UNKNOWN", **UIDS), "status", id="unknown-status"),
    pytest.param(_file(status="UNKNOWN"), "status", id="unknown-status-without-uids"),
    pytest.param(_file(status=_ABSENT), "(top)", id="status-missing"),
    pytest.param(_file(reasons=["NAME_MISMATCH", "NAME_MISMATCH"]), "reasons", id="repeated-reason"),
    pytest.param(_file(extra=1), "(top)", id="unknown-property"),
]


@pytest.mark.parametrize("document", VALID)
def test_valid_file_entries_are_accepted(document: dict[str, Any]) -> None:
    validate(document, SCHEMA, "file")
    assert validator(SCHEMA, "file").is_valid(document)


@pytest.mark.parametrize(("document", "where"), INVALID)
def test_invalid_file_entries_are_rejected_and_the_message_says_where(document: dict[str, Any], where: str) -> None:
    assert not validator(SCHEMA, "file").is_valid(document)
    # `validate` raises only when the compiled validator rejects; the message comes from the reference one.
    with pytest.raises(ReportValidationError, match=re.escape(f" at {where}: ")):
        validate(document, SCHEMA, "file")


def test_an_invalid_file_entry_fails_its_whole_resource() -> None:
    findings = classify(_resource(), [_record("a.dcm", "1.2.3.4")], parse_template(DEFAULT_TEMPLATE))
    document = survey_resource_document(findings, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    validate(document, SCHEMA, "resource")
    document["files"][0]["sha256"] = "not a digest"
    with pytest.raises(ReportValidationError, match="at files/0/sha256"):
        validate(document, SCHEMA, "resource")


def test_compiling_the_fast_validators_leaves_the_shared_schemas_untouched() -> None:
    """fastjsonschema rewrites `$ref`s in place: on the cached schemas, the reference validators built later
    could no longer resolve them, and a failing report would get a resolver error instead of a message."""
    for name in SCHEMAS:
        for definition in (None, "resource", "file") if name == SCHEMA else (None,):
            _fast_validator(name, definition)
        shipped = Path(__file__).resolve().parents[2] / "container_app" / "reports" / "schemas" / name
        assert load_schema(name) == json.loads(shipped.read_text("utf-8")), name


# --- legacy names ---------------------------------------------------------------------------------

UID = st.from_regex(r"[1-9][0-9]{0,3}(\.[0-9]{1,12}){0,8}", fullmatch=True)
NAME_PART = st.text(alphabet="abcxyz0189.-_", max_size=12)


@settings(max_examples=400, deadline=None)
@given(NAME_PART, st.one_of(st.none(), UID), st.one_of(st.none(), UID), st.booleans(), NAME_PART)
def test_is_legacy_name_is_the_plain_suffix_test(prefix: str, class_uid: str | None, instance_uid: str | None,
                                                 planted: bool, suffix: str) -> None:
    """Names that end in the legacy hash, near misses, and arbitrary text all get the plain answer."""
    name = f"{prefix}.{legacy_hash(class_uid, instance_uid)}.dcm" if planted else prefix + suffix
    assert is_legacy_name(name, class_uid, instance_uid) == name.endswith(
        f".{legacy_hash(class_uid, instance_uid)}.dcm")
    if planted:
        assert is_legacy_name(name, class_uid, instance_uid)


@pytest.mark.parametrize("name", [".dcm", "..dcm", ".0.dcm", "0.dcm", "x.0.dcm", "x.00.dcm", "x.0.DCM", "x.0.dcm.dcm"])
def test_is_legacy_name_edge_shapes(name: str) -> None:
    assert is_legacy_name(name, None, None) == name.endswith(f".{legacy_hash(None, None)}.dcm")


# --- XNAT's uids map ------------------------------------------------------------------------------


def _resource() -> Resource:
    return Resource("SCANS/1/DICOM", ResourceIdentity(scan_id="1", resource_label="DICOM"), (), None)


def _record(name: str, instance_uid: str, class_uid: str = UIDS["sopClassUID"]) -> FileRecord:
    header = HeaderValues({"SOPClassUID": class_uid, "SOPInstanceUID": instance_uid, "StudyInstanceUID": "1.2",
                           "SeriesNumber": "1", "InstanceNumber": "1"})
    return FileRecord(name, 1, 1, (1, ord(name[0])), 1, header)


def test_uids_list_each_instance_once_in_first_seen_order() -> None:
    records = [_record("a", "1.9"), _record("b", "1.3"), _record("c", "1.9"), _record("d", "1.5", "1.2.7"),
               _record("e", "1.3"), _record("f", "1.1")]
    findings = classify(_resource(), records, parse_template(DEFAULT_TEMPLATE))
    report = xnat_survey_report(findings, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert report["uids"] == {UIDS["sopClassUID"]: ["1.9", "1.3", "1.1"], "1.2.7": ["1.5"]}
    assert list(report["uids"]) == [UIDS["sopClassUID"], "1.2.7"]
    assert report["totalUids"] == 4
