"""The comparison of copies for how much they disclose (issue 15): pure functions, no files."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from container_app.core.deidentification import (
    MORE_DEIDENTIFIED,
    OTHER_METHOD,
    CopySignals,
    Hold,
    Signal,
    cid7050_codes,
    coded,
    hold_for,
    judge_group,
    less_deidentified_kept_by_newest,
    less_signals,
    method_tokens,
    profile_table,
)
from container_app.core.plan import choose_keeper, plan_resource
from container_app.core.vocabulary import KeepPolicy, KeepReason, Reason

PLAIN = CopySignals(patient_identity_removed=None, methods=(), method_codes=(),
                    longitudinal_temporal_information_modified=None, private_tags=False,
                    identifying_attributes=("PatientID", "PatientName", "StudyDate"), matches_xnat_labels=False,
                    patient_name_in_legacy_name=False)


def signals(**changes: Any) -> CopySignals:
    return dataclasses.replace(PLAIN, **changes)


@pytest.mark.parametrize(("this", "other", "expected"), [
    (PLAIN, signals(patient_identity_removed="YES"), (Signal.PATIENT_IDENTITY_REMOVED,)),
    (signals(patient_identity_removed="NO"), signals(patient_identity_removed="YES"),
     (Signal.PATIENT_IDENTITY_REMOVED,)),
    (signals(methods=("dicognito",)), signals(methods=("CTP", "dicognito")), (Signal.METHODS,)),  # CTP appended
    (PLAIN, signals(method_codes=("113100",)), (Signal.METHODS,)),
    (signals(identifying_attributes=("InstitutionName", "PatientID", "PatientName", "StudyDate")), PLAIN,
     (Signal.IDENTIFYING_ATTRIBUTES,)),
    (PLAIN, signals(matches_xnat_labels=True), (Signal.XNAT_LABELS,)),
    (signals(patient_name_in_legacy_name=True, value_digests={"PatientName": "a"}),
     signals(value_digests={"PatientName": "b"}), (Signal.LEGACY_NAME,)),
])
def test_each_signal_says_less_de_identified(this: CopySignals, other: CopySignals,
                                             expected: tuple[Signal, ...]) -> None:
    assert less_signals(this, other) == expected
    assert less_signals(other, this) == ()


def test_no_signal_between_alike_copies_or_from_unknowns() -> None:
    assert less_signals(PLAIN, PLAIN) == ()
    # A session label unknown (None) says nothing either way.
    assert less_signals(signals(matches_xnat_labels=None), signals(matches_xnat_labels=True)) == ()
    # The legacy-name rule needs the other copy's PatientName to differ.
    same = {"PatientName": "a"}
    assert less_signals(signals(patient_name_in_legacy_name=True, value_digests=same),
                        signals(value_digests=same)) == ()


def test_judge_group_less_alike_and_undecided() -> None:
    deidentified = signals(patient_identity_removed="YES", methods=("dicognito",),
                           identifying_attributes=("PatientID", "PatientName"),
                           value_digests={"PatientName": "x", "SeriesDescription": "s"},
                           pixel_data_sha256="p")
    identified = signals(value_digests={"PatientName": "y", "SeriesDescription": "s"}, pixel_data_sha256="p")
    verdict = judge_group({"a.dcm": deidentified, "b.dcm": identified}, "2026c")
    assert verdict.less_deidentified == ("b.dcm",) and not verdict.undecided
    assert verdict.differing_attributes == ("PatientName",) and verdict.pixel_data_differs is False
    assert dict(verdict.because)["b.dcm"] == ("DeidentificationMethod", "PatientIdentityRemoved", "StudyDate")
    assert verdict.reason_for("b.dcm") is Reason.LESS_DEIDENTIFIED and verdict.reason_for("a.dcm") is None

    alike = judge_group({"a.dcm": PLAIN, "b.dcm": signals(value_digests={"SeriesDescription": "t"})}, "2026c")
    assert alike.less_deidentified == () and not alike.undecided and alike.pixel_data_differs is None

    # Each copy discloses something the other does not: both undecided, and what to look at.
    marked = signals(patient_identity_removed="YES", identifying_attributes=(*PLAIN.identifying_attributes,
                                                                             "InstitutionName"))
    undecided = judge_group({"a.dcm": marked, "b.dcm": PLAIN}, "2026c")
    assert undecided.undecided and undecided.less_deidentified == ()
    assert undecided.look_at == ("InstitutionName", "PatientIdentityRemoved")
    assert {undecided.reason_for(n) for n in ("a.dcm", "b.dcm")} == {Reason.DEIDENTIFICATION_UNDECIDED}


def test_three_copies_keep_the_most_de_identified() -> None:
    verdict = judge_group({"orig.dcm": PLAIN, "xnat.dcm": signals(matches_xnat_labels=True),
                           "ctp.dcm": signals(matches_xnat_labels=True, methods=("CTP",),
                                              method_codes=("113100",))}, "2026c")
    assert verdict.less_deidentified == ("orig.dcm", "xnat.dcm")


def test_method_tokens_are_an_allow_list_and_free_text_is_never_copied() -> None:
    assert method_tokens(["DICOGNITO"]) == ("dicognito",)
    assert method_tokens(["CTP Default:  based on DICOM PS3.15 AnnexE"]) == ("CTP",)
    assert method_tokens(["XNAT DicomEdit 6 Script"]) == ("DicomEdit",)
    assert method_tokens(["Orthanc 1.12.1 - PS 3.15-2017c Table E.1-1 Basic Profile"]) == ("Orthanc",)
    assert method_tokens(["deid"]) == ("deid",)
    assert method_tokens(["Our hospital's script by Dr Snodgrass"]) == (OTHER_METHOD,)
    assert method_tokens(["", "  "]) == ()


def test_cid7050_codes_keep_only_dcm_codes_of_the_group() -> None:
    known = frozenset({"113100", "113101"})
    assert cid7050_codes([("DCM", "113101"), ("DCM", "113100"), ("99LOCAL", "113100"), ("DCM", "123"),
                          (None, None)], known) == ("113100", "113101")


def test_coded_values_as_written_or_other() -> None:
    assert coded("YES", frozenset({"YES", "NO"})) == "YES"
    assert coded(" no ", frozenset({"YES", "NO"})) == "NO"
    assert coded("Patient Smith removed", frozenset({"YES", "NO"})) == "OTHER"
    assert coded(None, frozenset({"YES"})) is None and coded("", frozenset({"YES"})) is None


def test_profile_table_maps_rows_and_masked_rows_to_keywords() -> None:
    table = profile_table([(0x0010, 0x0010), (0x0020, 0x4000), (0x6000, 0x3000, 0xFF00, 0xFFFF),
                           (0x5000, 0x0000, 0xFF00, 0x0000), (0x0099, 0x0001)], "test")
    assert table.keyword_for(0x00100010) == "PatientName"
    assert table.keyword_for(0x00204000) == "ImageComments"
    assert table.keyword_for(0x60023000) == "OverlayData"  # any 60xx group
    assert table.keyword_for(0x50043000) == "CurveData"  # any element of any 50xx group
    assert table.keyword_for(0x50040011) == "(50xx,xxxx)"
    assert table.keyword_for(0x00990001) == "(0099,0001)"  # not in pydicom's dictionary: named by its tag
    assert table.keyword_for(0x00080060) is None


def test_the_shipped_table_has_the_basic_profile_attributes() -> None:
    from container_app.survey.deidentification import TABLE_EDITION, table

    shipped = table()
    assert shipped.edition == TABLE_EDITION
    for tag in (0x00100010, 0x00100020, 0x00100030, 0x00080080, 0x00080090, 0x00081030, 0x00080050):
        assert shipped.keyword_for(tag) is not None
    assert shipped.keyword_for(0x60003000) == "OverlayData"
    assert shipped.keyword_for(0x7FE00010) is None  # pixel data is compared by digest, not listed


# --- the mitigation's guard ------------------------------------------------------------------------


def member(path: str, mtime: int, *reasons: str, intact: bool = True) -> dict[str, Any]:
    return {"path": path, "mtimeNs": mtime, "expectedName": "x.dcm", "intact": intact, "size": 1,
            "sha256": "0" * 64, "reasons": ["DUPLICATE", "DUPLICATE_DIFFERENT", *reasons],
            "status": "DUPLICATE"}


@pytest.mark.parametrize("keep", list(KeepPolicy))
def test_a_less_de_identified_copy_is_never_kept(keep: KeepPolicy) -> None:
    older = member("r/a.dcm", 1)
    newer = member("r/x.dcm", 2, "LESS_DEIDENTIFIED")  # newest, and at the expected name
    keeper, why = choose_keeper([older, newer], keep, identical=False)
    assert keeper is older and why == MORE_DEIDENTIFIED


def test_keep_chooses_among_the_equally_de_identified() -> None:
    a, b, c = member("r/a.dcm", 1), member("r/b.dcm", 2), member("r/c.dcm", 3, "LESS_DEIDENTIFIED")
    assert choose_keeper([a, b, c], KeepPolicy.NEWEST, identical=False)[0] is b
    assert choose_keeper([a, b, c], KeepPolicy.OLDEST, identical=False)[0] is a
    # Alike copies: as before.
    assert choose_keeper([a, b], KeepPolicy.NEWEST, identical=False) == (b, KeepReason.NEWEST)


def test_holds_undecided_and_only_intact_less() -> None:
    undecided = [member("r/a.dcm", 1, "DEIDENTIFICATION_UNDECIDED"), member("r/b.dcm", 2, "DEIDENTIFICATION_UNDECIDED")]
    assert hold_for(undecided, undecided) is Hold.DEIDENTIFICATION_UNDECIDED
    damaged_more = member("r/a.dcm", 1, intact=False)
    intact_less = member("r/b.dcm", 2, "LESS_DEIDENTIFIED")
    assert hold_for([damaged_more, intact_less], [intact_less]) is Hold.ONLY_INTACT_COPY_LESS_DEIDENTIFIED
    alike = [member("r/a.dcm", 1), member("r/b.dcm", 2)]
    assert hold_for(alike, alike) is None


def resource(*files: dict[str, Any], look_at: tuple[str, ...] = ()) -> dict[str, Any]:
    group = {"sopClassUID": "1.2", "sopInstanceUID": "1.2.3", "actionable": True, "identical": False,
             "members": {f["path"]: "x.dcm" for f in files},
             "deidentification": {"lessDeidentified": [], "undecided": bool(look_at), "lookAt": list(look_at),
                                  "because": {}, "profile": "t"}}
    return {"path": "r", "identity": {"catalogPath": None}, "requestStatus": "DIVERGENT",
            "duplicateGroups": [group], "files": list(files),
            "xnat": {"mismatchedFiles": {}, "totalBadFiles": 0, "totalFilesInNonActionableDuplicates": 0}}


def test_a_held_group_moves_nothing_and_says_what_to_look_at() -> None:
    held = resource(member("r/a.dcm", 1, "DEIDENTIFICATION_UNDECIDED"),
                    member("r/b.dcm", 2, "DEIDENTIFICATION_UNDECIDED"), look_at=("InstitutionName",))
    plan = plan_resource(held, KeepPolicy.NEWEST)
    assert plan.actions == ()
    [group] = plan.held
    assert (group.reason, group.look_at, group.members) == (Hold.DEIDENTIFICATION_UNDECIDED, ("InstitutionName",),
                                                            ("r/a.dcm", "r/b.dcm"))


def test_less_deidentified_kept_by_newest_for_the_api_way() -> None:
    """XNAT's mitigation keeps the newest copy: the API way must not be given such a resource."""
    assert less_deidentified_kept_by_newest(resource(member("r/a.dcm", 1), member("r/b.dcm", 2, "LESS_DEIDENTIFIED")))
    assert not less_deidentified_kept_by_newest(resource(member("r/a.dcm", 1, "LESS_DEIDENTIFIED"),
                                                         member("r/b.dcm", 2)))
    assert less_deidentified_kept_by_newest(resource(member("r/a.dcm", 1, "DEIDENTIFICATION_UNDECIDED"),
                                                     member("r/b.dcm", 2, "DEIDENTIFICATION_UNDECIDED")))
    assert not less_deidentified_kept_by_newest(resource(member("r/a.dcm", 1), member("r/b.dcm", 2)))
