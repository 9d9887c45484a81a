"""The survey the stand-in performs, the way XNAT's ResourceSurveyor does, and its ResourceSurveyReport.

The survey reads the catalog's `cat:dcmEntry` entries only (as XNAT does), computes each file's
expected name with `container_app.core.naming`, and groups by (SOPClassUID, SOPInstanceUID). Entries whose
file is missing, or whose catalog UID differs from the header, vanish from the report as they do in XNAT.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword

from container_app.core import naming
from tests.xnat_standin import catalogs
from tests.xnat_standin.archive import Resource, StandInError
from tests.xnat_standin.survey_requests import Findings, as_xnat_answers, millis

_BINARY_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "AT", "UV", "SV"})


def header_lookup(path: Path, keywords: tuple[str, ...]) -> Callable[[str], str | None] | None:
    """Header values as XNAT's DICOM library returns them, or None if the file is not readable DICOM."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # forced reads of non-DICOM bytes warn; such files are bad files
            dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if "SOPInstanceUID" not in dataset and "SOPClassUID" not in dataset:
            return None  # not DICOM (forced parsing of other bytes finds no SOP identity)
    except Exception:
        return None
    values: dict[str, str | None] = {}
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        try:
            if tag is None or tag not in dataset:
                values[keyword] = None
                continue
            element = dataset.get_item(tag)
            raw = element.value if element is not None else None
            if isinstance(raw, bytes) and dictionary_VR(tag) not in _BINARY_VRS:
                values[keyword] = naming.first_value(raw.decode("latin-1"))
                continue
            value = dataset[tag].value
            if isinstance(value, list | tuple):
                value = value[0] if value else None
            values[keyword] = naming.first_value(str(value)) if value is not None else None
        except Exception:
            return None
    return values.get


def survey(resource: Resource, template: naming.NamingTemplate) -> Findings:
    """XNAT's survey of one resource's catalog."""
    keywords = tuple(dict.fromkeys(("SOPClassUID", "SOPInstanceUID", *template.keywords)))
    catalog = resource.catalog_path
    if catalog is None:
        raise StandInError(500, "the resource has no catalog")
    total = 0
    bad: list[Path] = []
    groups: dict[tuple[str, str], list[tuple[Path, str]]] = {}
    for entry in catalogs.read_entries(catalog):
        if not entry.is_dcm_entry or not entry.uid or not entry.entry_id:
            continue
        file = resource.path / entry.uri
        if not file.is_file():
            continue  # XNAT drops these silently
        lookup = header_lookup(file, keywords)
        if lookup is None:
            total += 1
            bad.append(file)
            continue
        if lookup("SOPInstanceUID") != entry.uid:
            continue  # XNAT drops these silently too
        total += 1
        class_uid = lookup("SOPClassUID")
        if not class_uid:
            bad.append(file)
            continue
        groups.setdefault((class_uid, entry.uid), []).append((file, template.render(lookup)))
    uids: dict[str, list[str]] = {}
    for class_uid, instance_uid in groups:
        uids.setdefault(class_uid, []).append(instance_uid)
    findings = Findings(total, uids, bad, {}, {}, {})
    for key, members in groups.items():
        if len(members) == 1:
            file, expected = members[0]
            if file.name != expected:
                findings.mismatched[file] = expected
        elif len({expected for _f, expected in members}) == 1:
            findings.duplicates[key] = dict(members)
        else:
            findings.non_actionable[key] = dict(members)
    return findings


def _nested(groups: dict[tuple[str, str], dict[Path, str]]) -> dict[str, dict[str, dict[str, str]]]:
    out: dict[str, dict[str, dict[str, str]]] = {}
    for (class_uid, instance_uid), files in groups.items():
        out.setdefault(class_uid, {})[instance_uid] = {str(p): n for p, n in files.items()}
    return out


def survey_report(request_id: int, findings: Findings) -> dict[str, Any]:
    """The `ResourceSurveyReport` JSON, in XNAT's field names, as a running XNAT answers it (as_xnat_answers)."""
    return as_xnat_answers({
        "resourceSurveyRequestId": request_id,
        "surveyDate": millis(time.time()),
        "totalEntries": findings.total_entries,
        "totalUids": sum(len(v) for v in findings.uids.values()),
        "totalBadFiles": len(findings.bad_files),
        "totalMismatchedFiles": len(findings.mismatched),
        "totalDuplicates": len(findings.duplicates),
        "totalFilesInDuplicates": sum(len(v) for v in findings.duplicates.values()),
        "totalNonActionableDuplicates": len(findings.non_actionable),
        "totalFilesInNonActionableDuplicates": sum(len(v) for v in findings.non_actionable.values()),
        "uids": findings.uids,
        "badFiles": [str(p) for p in findings.bad_files],
        "mismatchedFiles": {str(p): n for p, n in findings.mismatched.items()},
        "duplicates": _nested(findings.duplicates),
        "nonActionableDuplicates": _nested(findings.non_actionable),
    }, absent_when_empty=frozenset({"nonActionableDuplicates"}))
