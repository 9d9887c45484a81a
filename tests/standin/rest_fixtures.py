"""NRG's REST fixtures of XNAT's survey and mitigation API (../shared/conformance/xnat-rest-tests/), and the
situation each one shows, rebuilt from real DICOM synthesized with pydicom.

A fixture gives the counts of its situation (entries, UIDs, misnamed, duplicate groups, non-actionable
groups, bad files) and whether a duplicate is already at its expected name; `build_situation` writes a scan
resource with exactly those, named with the stand-in's template, and its DCM catalog. The DICOM files of
NRG's tests are not in the fixtures: shapes and totals are compared, not names.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.demo.instances import InstanceSpec, instance_bytes, uid
from tests.conftest import LOCAL_CONFORMANCE, SHARED_CONFORMANCE
from tests.xnat_standin.surveyor import header_lookup

REST_TESTS = next((p / "xnat-rest-tests" for p in (LOCAL_CONFORMANCE, SHARED_CONFORMANCE)
                   if (p / "xnat-rest-tests").is_dir()), None)
PROJECT, SESSION = "PROJ", "Sample_ID"
TEMPLATE = parse_template(DEFAULT_TEMPLATE)

#: Fields the stand-in sends that a fixture may leave out: XNAT sends them too (ResourceSurveyReport and
#: ResourceMitigationReport, oncai/xnat: the ints are always written, `cachePath` is @NonNull, the request ID
#: is @Positive), but NRG's expected documents do not assert on them (they differ per run), and `movedFiles`
#: null where the fixture shows only `retainedFiles`.
MAY_ADD_TO_SURVEY = frozenset({"resourceSurveyRequestId", "surveyDate", "totalFilesInDuplicates",
                               "totalNonActionableDuplicates", "totalFilesInNonActionableDuplicates"})
MAY_ADD_TO_MITIGATION = frozenset({"resourceSurveyRequestId", "cachePath", "movedFiles"})


def fixture_names() -> list[str]:
    if REST_TESTS is None:
        return []
    return sorted({p.stem for p in REST_TESTS.glob("*/*.json")})


def load(kind: str, name: str) -> dict[str, Any] | None:
    assert REST_TESTS is not None
    path = REST_TESTS / kind / f"{name}.json"
    return json.loads(path.read_text("utf-8")) if path.is_file() else None  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Situation:
    """What a fixture's survey report says the resource held."""

    sop_class: str
    uids: int
    entries: int
    mismatched: int
    duplicate_groups: int
    duplicate_at_its_name: bool
    nonactionable_groups: int
    bad_files: int

    @classmethod
    def of(cls, report: dict[str, Any]) -> Situation:
        duplicates = report.get("duplicates") or {}
        at_name = any(path.rsplit("/", 1)[-1] == expected for groups in duplicates.values()
                      for members in groups.values() for path, expected in members.items())
        (sop_class,) = report["uids"]
        return cls(sop_class, report["totalUids"], report["totalEntries"], report["totalMismatchedFiles"],
                   report["totalDuplicates"], at_name, report.get("totalNonActionableDuplicates", 0),
                   report["totalBadFiles"])


def kind_of(value: Any) -> str:
    return "null" if value is None else type(value).__name__


@dataclass(frozen=True)
class Built:
    folder: Path
    scan: str
    label: str
    at_name: frozenset[str]  # duplicates written at their expected name (newest of their group)


def _entry(name: str, instance_uid: str, number: int) -> str:
    return (f'<cat:entry ID="{escape(name)}" URI="{escape(name)}" UID="{instance_uid}" format="DICOM" '
            f'instanceNumber="{number}" xsi:type="cat:dcmEntry"/>')


def build_situation(archive: Path, document: dict[str, Any], situation: Situation) -> Built:
    """Write the fixture's situation as a scan resource of session Sample_ID in project PROJ."""
    scan, label = document["scanLabel"], document["resourceLabel"]
    folder = archive / PROJECT / "arc001" / SESSION / "SCANS" / scan / label
    folder.mkdir(parents=True)
    modality = "PT" if document["xsiType"] == "xnat:petSessionData" else "MR"
    seed = f"{scan}/{label}/{situation}"
    entries: list[str] = []
    at_name: set[str] = set()
    stamp = 1_700_000_000

    def write(name: str | None, k: int, number: int, *, age: int) -> str:
        spec = InstanceSpec(sop_class_uid=situation.sop_class, sop_instance_uid=uid(seed, k), series_number=scan,
                            instance_number=str(number), modality=modality,
                            extra={"SeriesDescription": document["scanDescription"]})
        temporary = folder / f".new-{k}-{number}"
        temporary.write_bytes(instance_bytes(spec))
        lookup = header_lookup(temporary, TEMPLATE.keywords)
        assert lookup is not None
        final = name if name is not None else TEMPLATE.render(lookup)
        os.replace(temporary, folder / final)
        os.utime(folder / final, (stamp - age, stamp - age))
        entries.append(_entry(final, spec.sop_instance_uid, number))
        return final

    k = 0
    for _ in range(situation.duplicate_groups):
        if situation.duplicate_at_its_name:
            at_name.add(write(None, k, k + 1, age=0))  # the newest: XNAT keeps it where it is
            write(f"{len(entries)}.dcm", k, k + 1, age=100)
        else:
            write(f"{len(entries)}.dcm", k, k + 1, age=100)
            write(f"{len(entries)}.dcm", k, k + 1, age=50)
        k += 1
    for _ in range(situation.nonactionable_groups):
        write(f"{len(entries)}.dcm", k, k + 1, age=0)
        write(f"{len(entries)}.dcm", k, k + 1001, age=0)  # another instance number: another expected name
        k += 1
    for _ in range(situation.mismatched):
        write(f"{len(entries)}.dcm", k, k + 1, age=0)
        k += 1
    for _ in range(situation.uids - k):
        write(None, k, k + 1, age=0)
        k += 1
    for b in range(situation.bad_files):
        name = f"{len(entries)}.dcm"
        (folder / name).write_bytes(b"not DICOM: a damaged upload\n" * 8)
        entries.append(_entry(name, uid(seed, "bad", b), 0))
    assert len(entries) == situation.entries, (len(entries), situation)
    catalog = f"scan_{scan}_catalog.xml" if label == "DICOM" else f"scan_{scan}_{label}_catalog.xml"
    (folder / catalog).write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<cat:DCMCatalog ID="scan_{scan}" xmlns:cat="http://nrg.wustl.edu/catalog" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n<cat:entries>\n'
        + "\n".join(entries) + "\n</cat:entries>\n</cat:DCMCatalog>\n", encoding="utf-8")
    return Built(folder, scan, label, frozenset(at_name))
