"""Instances and report look-ups shared by the survey's library tests."""

from __future__ import annotations

from typing import Any

from container_app.demo import synth
from container_app.demo.synth import InstanceSpec

MR = synth.MR_IMAGE_STORAGE
#: The study every test instance belongs to (the SOP Instance UID is replaced per instance).
STUDY = InstanceSpec(sop_instance_uid=synth.uid("survey", "placeholder"),
                     study_instance_uid=synth.uid("survey", "study"))


def resource_of(report: dict[str, Any], path: str) -> dict[str, Any]:
    matches: list[dict[str, Any]] = [r for r in report["resources"] if r["path"] == path]
    assert len(matches) == 1, [r["path"] for r in report["resources"]]
    return matches[0]


def files_of(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["path"].rsplit("/", 1)[-1]: f for f in resource["files"]}
