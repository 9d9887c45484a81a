"""Test files and readings shared by the DICOM reader's tests: one instance, its encodings, both paths."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.core.records import FileRecord
from container_app.demo import synth
from container_app.demo.synth import InstanceSpec
from container_app.survey.dicom.read_plan import ReadPlan
from container_app.survey.dicom.reader import read_header, survey_file

DEFAULT = parse_template(DEFAULT_TEMPLATE)
PLAN = ReadPlan.for_keywords(DEFAULT.keywords)
#: The seed "headers" names the module these tests came from; kept so the files' UIDs stay the same.
BASE = InstanceSpec(sop_instance_uid=synth.uid("headers", 1), series_number="4", instance_number="2")

#: The instance in every encoding the fast path reads itself.
ENCODINGS = {
    "explicit-le": BASE,
    "implicit-le": dataclasses.replace(BASE, transfer_syntax=ImplicitVRLittleEndian),
    "explicit-be": dataclasses.replace(BASE, transfer_syntax=ExplicitVRBigEndian),
    "deflated": dataclasses.replace(BASE, transfer_syntax=DeflatedExplicitVRLittleEndian),
    "no-preamble": dataclasses.replace(BASE, preamble=False),
    "no-preamble-implicit": dataclasses.replace(BASE, preamble=False, transfer_syntax=ImplicitVRLittleEndian),
}


def write(folder: Path, name: str, spec: InstanceSpec) -> Path:
    path = folder / name
    synth.write_instance(path, spec)
    return path


def record_for(path: Path, plan: ReadPlan = PLAN) -> FileRecord:
    return survey_file(str(path.parent), path.name, plan)


def expected_values(spec: InstanceSpec, plan: ReadPlan = PLAN) -> dict[str, str]:
    keywords = [k for k in plan.tags.values() if k != "SpecificCharacterSet"]
    return {k: v for k in keywords if (v := synth.header_value(spec, k)) is not None}


def parsed(path: Path, plan: ReadPlan, *, fast: bool) -> tuple[Any, ...]:
    """What read_header returns, or the exception type it raised: comparable across both paths."""
    try:
        result = read_header(str(path), plan, fast=fast)
    except Exception as exc:
        return ("raised", type(exc).__name__)
    return (result.values, result.meta_instance_uid, result.needs_force)
