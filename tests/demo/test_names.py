"""XNAT's names for synthetic instances: the default template and the legacy namer, against XNAT's data."""

from __future__ import annotations

import dataclasses
import json
import re

from container_app.core import naming
from container_app.demo import synth
from container_app.demo.synth import InstanceSpec
from tests.helpers.demo import BASE, conformance_file


def _spec(sop_class: str, sop_instance: str, study: str, series: str | None, instance: str | None) -> InstanceSpec:
    return InstanceSpec(sop_class_uid=sop_class, sop_instance_uid=sop_instance, study_instance_uid=study,
                        series_number=series, instance_number=instance)


def test_xnat_name_check_vector() -> None:
    study = "1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034"
    instance = "1.3.12.2.1107.5.2.32.35177.3.2006121409365951632817982"
    assert synth.xnat_name(_spec("1.2.840.10008.5.1.4.1.1.4", instance, study, "4", "2")) == (
        f"{study}-4-2-1qs88hj.dcm")
    assert synth.xnat_name(_spec("9.9.9.9.9.123.456.789", instance, study, "4", "1")) == f"{study}-4-1-1m0zhq7.dcm"


def test_xnat_name_conformance_vectors() -> None:
    vectors = json.loads(conformance_file("xnat_naming_vectors.json").read_text())[:20]
    assert len(vectors) == 20
    for v in vectors:
        spec = _spec(v["sop_class_uid"], v["sop_instance_uid"], v["study_instance_uid"], v["series_number"],
                     v["instance_number"])
        assert synth.xnat_name(spec) == v["expected"]


def test_xnat_name_values_as_stored() -> None:
    spec = dataclasses.replace(BASE, series_number=None, instance_number="04")
    name = synth.xnat_name(spec)
    assert f"-no-value-for-SeriesNumber-04-{synth.xnat_hash([BASE.sop_class_uid, BASE.sop_instance_uid])}" in name
    assert "-4-1-" in synth.xnat_name(dataclasses.replace(BASE, instance_number="1\\2"))
    assert "-4-no-value-for-InstanceNumber-" in synth.xnat_name(dataclasses.replace(BASE, instance_number=" "))
    omitted = dataclasses.replace(BASE, omit=frozenset({"SOPClassUID"}))
    assert synth.xnat_name(omitted).endswith(
        synth.xnat_hash(["no-value-for-SOPClassUID", BASE.sop_instance_uid]) + ".dcm")
    assert "-4-9-" in synth.xnat_name(dataclasses.replace(BASE, extra={"InstanceNumber": 9}))


def test_legacy_hash_conformance() -> None:
    for v in json.loads(conformance_file("xnat_legacy_names.json").read_text()):
        hash_part = v["legacy_name"].removesuffix(".dcm").rsplit(".", 1)[1]
        assert synth.legacy_hash(v["sop_class_uid"], v["sop_instance_uid"]) == hash_part


def test_legacy_name_conformance_full_names() -> None:
    for v in json.loads(conformance_file("xnat_legacy_names.json").read_text()):
        patient, modality, description, series, instance, date, time_, _hash, _dcm = v["legacy_name"].split(".")
        spec = InstanceSpec(
            sop_class_uid=v["sop_class_uid"], sop_instance_uid=v["sop_instance_uid"], patient_name=patient,
            modality=modality, study_description=description.replace("_", " "), series_number=series,
            instance_number=instance, study_date=date, study_time=time_ + ".123",
        )
        assert synth.legacy_name(spec) == v["legacy_name"]


def test_legacy_name_rules_from_xnat_unit_test() -> None:
    # XNAT's SOPHashDicomFileNamerTest: StudyID stands in for a missing PatientName, fraction dropped.
    spec = InstanceSpec(sop_class_uid="1.2.3.4.5", sop_instance_uid="2.4.6.8.10", patient_name=None,
                        study_id="StudyID", modality="OT", study_description="Study Description",
                        series_number="1", instance_number="42", study_date="20101101",
                        study_time="130130.12345")
    java_hash = (naming.java_string_hash("1.2.3.4.5") + 37 * naming.java_string_hash("2.4.6.8.10")) & 0xFFFFFFFF
    assert synth.legacy_name(spec) == (
        f"StudyID.OT.Study_Description.1.42.20101101.130130.{naming.base36(java_hash)}.dcm")
    nothing = dataclasses.replace(spec, study_id=None, study_time=None, study_description=None)
    assert synth.legacy_name(nothing).startswith("NULL.OT.1.42.20101101.")


def test_legacy_name_carries_patient_name_sanitised() -> None:
    spec = dataclasses.replace(BASE, patient_name="O'Brien^Mary Ann", study_time="10:15:30.5")
    name = synth.legacy_name(spec)
    assert name.startswith("O_Brien_Mary_Ann.MR.Brain_MRI.4.2.20240102.101530.")
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", name)
