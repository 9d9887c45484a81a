"""Header values: character sets, multiple values, and values that must never become a path."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from container_app.demo import synth
from container_app.survey.dicom.reader import read_header
from tests.helpers.dicom import BASE, DEFAULT, PLAN, record_for, write


@pytest.mark.parametrize(
    ("charset", "patient_name", "encoded"),
    [
        ("ISO_IR 100", "Müller^Jürgen", "Müller".encode("latin-1")),
        ("ISO_IR 192", "Müller^Jürgen=山田^太郎", "山田".encode()),
    ],
)
def test_non_ascii_patient_names_decode_the_same_in_both_paths(tmp_path: Path, charset: str, patient_name: str,
                                                               encoded: bytes, fallbacks: list[str]) -> None:
    spec = dataclasses.replace(BASE, patient_name=patient_name, extra={"SpecificCharacterSet": charset})
    path = write(tmp_path, "f.dcm", spec)
    assert encoded in path.read_bytes()
    fast = read_header(str(path), PLAN, fast=True)
    slow = read_header(str(path), PLAN, fast=False)
    assert fast.values["PatientName"] == slow.values["PatientName"] == patient_name
    assert fast.values == slow.values
    assert fallbacks == [str(path)]  # only the explicit fast=False call


def test_multi_valued_is_keeps_its_first_value_as_stored(tmp_path: Path) -> None:
    spec = dataclasses.replace(BASE, extra={"InstanceNumber": ["04", "2"], "SeriesNumber": "007"})
    path = write(tmp_path, "f.dcm", spec)
    for fast in (True, False):
        values = read_header(str(path), PLAN, fast=fast).values
        assert values["InstanceNumber"] == "04"
        assert values["SeriesNumber"] == "007"
    record = record_for(path)
    assert record.header is not None
    assert DEFAULT.render(record.header.get).startswith(f"{BASE.study_instance_uid}-007-04-")




# --- values that must never become a path ----------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize("study_uid", ["../../etc", "1.2/3.4", "1.2\x013.4", "1.2\\3.4"])
def test_unsafe_header_values_make_a_bad_file_whose_name_never_appears(tmp_path: Path, study_uid: str,
                                                                       cli: Callable[..., Any]) -> None:
    root = tmp_path / "root"
    spec = dataclasses.replace(BASE, study_instance_uid=study_uid)
    write(root, "evil.dcm", spec)
    write(root, "good.dcm", dataclasses.replace(BASE, sop_instance_uid=synth.uid("headers", "good")))
    values = {k: v for k in DEFAULT.keywords if (v := synth.header_value(spec, k)) is not None}
    unsafe_name = DEFAULT.render(values)
    record = record_for(root / "evil.dcm")
    assert record.header is not None
    if "\\" not in study_uid:
        assert record.header.values["StudyInstanceUID"] == study_uid
    out = tmp_path / "out"
    rc, stdout, stderr, report = cli("survey", root, "--output", out)
    assert rc == 0, stderr
    assert report is not None
    files = {f["path"]: f for f in report["resources"][0]["files"]}
    if "\\" in study_uid:  # a backslash separates values: the first value is "1.2", a safe name
        assert files["evil.dcm"]["status"] != "BAD"
        return
    assert files["evil.dcm"]["status"] == "BAD"
    assert "UNSAFE_NAME_VALUE" in files["evil.dcm"]["reasons"]
    assert files["evil.dcm"]["expectedName"] is None
    assert files["good.dcm"]["status"] == "MISMATCHED"
    hash_part = unsafe_name.rsplit("-", 1)[1]  # the instance's hash: only a rendered name carries it
    assert not any(unsafe_name in s or hash_part in s for s in all_strings(report))
    texts = [(out / "survey-report.json").read_text("utf-8"), (out / "survey-summary.csv").read_text("utf-8"),
             stdout, stderr]
    for text in texts:
        assert unsafe_name not in text
        assert hash_part not in text


def all_strings(document: Any) -> Iterator[str]:
    """Every key and string value in a JSON document."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from all_strings(value)
    elif isinstance(document, list):
        for item in document:
            yield from all_strings(item)
