"""De-identification of the copies of one instance whose bytes differ: which copy discloses more. Pure.

XNAT's own mitigation keeps the newest copy and never looks inside it; when a session was re-sent
before anonymization, or an anonymized copy was uploaded over an older one, the copy kept may be the
one that discloses more (issue 15). The survey reads the copies of each differing group for the
signals below (survey/deidentification.py), and this module compares them.

Values never leave memory: a copy's record holds coded values (YES/NO, allow-listed tool tokens,
CID 7050 codes), tag keywords, booleans and digests of values (to tell which attributes differ).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from container_app.core.vocabulary import Reason

# --- the signals of one copy -----------------------------------------------------------------------


class Signal(enum.StrEnum):
    """What says one copy is less de-identified than another; named in the report's `lookAt`."""

    PATIENT_IDENTITY_REMOVED = "PatientIdentityRemoved"  # (0012,0062) YES in the other, not in this one
    METHODS = "DeidentificationMethod"  # the other's methods a strict superset of this one's
    IDENTIFYING_ATTRIBUTES = "identifyingAttributes"  # this one's a strict superset of the other's
    XNAT_LABELS = "PatientID"  # the other carries the XNAT labels (DicomEdit's default script), this one not
    LEGACY_NAME = "PatientName"  # this one's PatientName is the patient part of its legacy file name


#: Tools whose DeidentificationMethod (0012,0063) text we recognise, as (token, pattern). Any other text
#: counts as "present" (OTHER_METHOD) and is never copied: it is free text and may hold anything.
METHOD_TOKENS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("dicognito", re.compile(r"dicognito", re.IGNORECASE)),
    ("CTP", re.compile(r"\bCTP\b|clinical trial processor", re.IGNORECASE)),
    ("DicomEdit", re.compile(r"dicom ?edit|dicom ?browser", re.IGNORECASE)),
    ("Orthanc", re.compile(r"orthanc", re.IGNORECASE)),
    ("deid", re.compile(r"\bdeid\b|pydicom[ -]deid", re.IGNORECASE)),
    ("idiscore", re.compile(r"idiscore|idis", re.IGNORECASE)),
)
OTHER_METHOD = "present"


def method_tokens(texts: Iterable[str]) -> tuple[str, ...]:
    """The allow-listed tools named in DeidentificationMethod's values; OTHER_METHOD for any other text."""
    found: list[str] = []
    for value in texts:
        value = value.strip()
        if not value:
            continue
        hits = [token for token, pattern in METHOD_TOKENS if pattern.search(value)]
        found.extend(hits or [OTHER_METHOD])
    return tuple(sorted(set(found)))


def cid7050_codes(items: Iterable[tuple[str | None, str | None]], known: frozenset[str]) -> tuple[str, ...]:
    """The CID 7050 (De-identification Method) codes among (CodingSchemeDesignator, CodeValue) pairs.

    `known` is CID 7050's DCM code values (from pydicom's CID dictionary, survey/deidentification.py);
    a code outside it, or of another scheme, is free to hold anything and is not reported.
    """
    return tuple(sorted({value for scheme, value in items if scheme == "DCM" and value in known}))


def coded(value: str | None, allowed: frozenset[str]) -> str | None:
    """A coded string (CS) as written when it is one of `allowed`; "OTHER" for any other text, None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip().upper()
    return text if text in allowed else "OTHER"


YES_NO = frozenset({"YES", "NO"})
LONGITUDINAL = frozenset({"UNMODIFIED", "MODIFIED", "REMOVED"})


@dataclass(frozen=True, slots=True)
class CopySignals:
    """What one copy says about its de-identification. Written to the report but for the digests."""

    patient_identity_removed: str | None  # (0012,0062): YES, NO, OTHER or None (absent)
    methods: tuple[str, ...]  # (0012,0063) as allow-listed tokens, OTHER_METHOD for other text
    method_codes: tuple[str, ...]  # (0012,0064): CID 7050 code values
    longitudinal_temporal_information_modified: str | None  # (0028,0303)
    private_tags: bool
    identifying_attributes: tuple[str, ...]  # keywords of E.1-1 attributes present (a sequence by its keyword)
    matches_xnat_labels: bool | None  # None when the session label is unknown
    patient_name_in_legacy_name: bool  # its PatientName is the patient part of its own legacy file name
    # In memory only, never written: a digest of each top-level attribute's value, to tell which differ.
    value_digests: Mapping[str, str] = field(default_factory=dict, compare=False)
    pixel_data_sha256: str | None = field(default=None, compare=False)  # None: no pixel data, or not read

    @property
    def all_methods(self) -> frozenset[str]:
        return frozenset(self.methods) | frozenset(self.method_codes)

    def document(self) -> dict[str, Any]:
        """`files[].deidentification` in the survey report: codes, keywords and booleans, never values."""
        return {
            "patientIdentityRemoved": self.patient_identity_removed,
            "methods": list(self.methods),
            "methodCodes": list(self.method_codes),
            "longitudinalTemporalInformationModified": self.longitudinal_temporal_information_modified,
            "privateTags": self.private_tags,
            "identifyingAttributes": list(self.identifying_attributes),
            "matchesXnatLabels": self.matches_xnat_labels,
        }


# --- PS3.15 Annex E table E.1-1, as a maintained package ships it ----------------------------------


@dataclass(frozen=True, slots=True)
class ProfileTable:
    """The attributes of the Basic Application Level Confidentiality Profile (PS3.15 table E.1-1).

    Built from (group, element[, group mask, element mask]) rows (Kitware's dicom-anonymizer ships
    them per edition); the masked rows are the repeating groups (50xx curves, 60xx overlays).
    """

    edition: str
    exact: Mapping[int, str]  # tag: keyword
    masked: tuple[tuple[int, int, str], ...]  # (tag & mask == value, mask, the row's name)

    def keyword_for(self, tag: int) -> str | None:
        """The keyword an attribute of the table is reported by; None when the table does not list it."""
        keyword = self.exact.get(tag)
        if keyword is not None:
            return keyword
        for value, mask, name in self.masked:
            if tag & mask == value:
                return _keyword_for_tag(tag) or name
        return None


def profile_table(rows: Iterable[Sequence[int]], edition: str) -> ProfileTable:
    """The table from the package's rows, mapped to keywords with pydicom's dictionary."""
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    for row in rows:
        group, element = row[0], row[1]
        if len(row) >= 4:
            mask = (row[2] << 16) | row[3]
            value = ((group << 16) | element) & mask
            # A keyword for the row: pydicom's repeater entries name e.g. 60xx3000 OverlayData.
            name = _keyword_for_tag(value) or _masked_name(group, element, row[2], row[3])
            masked.append((value, mask, name))
            continue
        tag = (group << 16) | element
        exact[tag] = _keyword_for_tag(tag) or f"({group:04X},{element:04X})"
    return ProfileTable(edition, exact, tuple(masked))


def _keyword_for_tag(tag: int) -> str:
    # Imported here, not at the top: the reports and the plan import this module, and a run that reads no
    # DICOM (a survey of an empty folder, a roll-up) need not pay for pydicom's import.
    from pydicom.datadict import keyword_for_tag

    return keyword_for_tag(tag)


def _masked_name(group: int, element: int, group_mask: int, element_mask: int) -> str:
    def hexed(number: int, mask: int) -> str:
        digits = f"{number:04X}"
        return "".join(d if (mask >> (12 - 4 * i)) & 0xF else "x" for i, d in enumerate(digits))

    return f"({hexed(group, group_mask)},{hexed(element, element_mask)})"


# --- comparing copies ------------------------------------------------------------------------------


def less_signals(this: CopySignals, other: CopySignals) -> tuple[Signal, ...]:
    """The signals saying `this` copy is less de-identified than `other`."""
    found: list[Signal] = []
    if other.patient_identity_removed == "YES" and this.patient_identity_removed != "YES":
        found.append(Signal.PATIENT_IDENTITY_REMOVED)
    # CTP and dicognito append their names to what earlier tools wrote: more tools, more done.
    if other.all_methods > this.all_methods:
        found.append(Signal.METHODS)
    if frozenset(this.identifying_attributes) > frozenset(other.identifying_attributes):
        found.append(Signal.IDENTIFYING_ATTRIBUTES)
    if other.matches_xnat_labels is True and this.matches_xnat_labels is False:
        found.append(Signal.XNAT_LABELS)
    # The legacy namer put the patient's name into the file name: a copy still holding that name was
    # not de-identified since, while a copy whose name differs was.
    same_name = this.value_digests.get("PatientName") == other.value_digests.get("PatientName")
    if this.patient_name_in_legacy_name and not other.patient_name_in_legacy_name and not same_name:
        found.append(Signal.LEGACY_NAME)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class GroupVerdict:
    """What the copies of one differing group say about each other."""

    less_deidentified: tuple[str, ...]  # copies (names in the resource) less de-identified than another
    undecided: bool  # signals disagree: each of two copies discloses something the other does not
    look_at: tuple[str, ...]  # keywords to look at when undecided (the disagreeing signals' attributes)
    differing_attributes: tuple[str, ...]  # keywords of top-level attributes whose values differ
    pixel_data_differs: bool | None  # None when a copy's pixel data was not read (absent, or past the cap)
    table_edition: str
    because: tuple[tuple[str, tuple[str, ...]], ...] = ()  # per less de-identified copy: the keywords that say so

    def reason_for(self, name: str) -> Reason | None:
        if self.undecided:
            return Reason.DEIDENTIFICATION_UNDECIDED
        return Reason.LESS_DEIDENTIFIED if name in self.less_deidentified else None


def judge_group(copies: Mapping[str, CopySignals], table_edition: str) -> GroupVerdict:
    """Compare every pair of copies: who is less de-identified than whom, or undecided."""
    names = sorted(copies)
    less: set[str] = set()
    because: dict[str, set[str]] = {}
    look_at: set[str] = set()
    undecided = False
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            a_less, b_less = less_signals(copies[a], copies[b]), less_signals(copies[b], copies[a])
            if a_less and b_less:
                undecided = True
                look_at.update(_attributes(copies[a], copies[b], (*a_less, *b_less)))
            elif a_less:
                less.add(a)
                because.setdefault(a, set()).update(_attributes(copies[a], copies[b], a_less))
            elif b_less:
                less.add(b)
                because.setdefault(b, set()).update(_attributes(copies[b], copies[a], b_less))
    keys = sorted({k for c in copies.values() for k in c.value_digests})
    differing = tuple(k for k in keys if len({c.value_digests.get(k) for c in copies.values()}) > 1)
    pixels = {c.pixel_data_sha256 for c in copies.values()}
    pixel_differs = None if None in pixels else len(pixels) > 1
    if undecided:
        less, because = set(), {}
    return GroupVerdict(tuple(sorted(less)), undecided, tuple(sorted(look_at)), differing, pixel_differs,
                        table_edition, tuple((name, tuple(sorted(because[name]))) for name in sorted(because)))


def _attributes(a: CopySignals, b: CopySignals, signals: Iterable[Signal]) -> set[str]:
    """The keywords an admin should compare in the two copies, for the signals that disagree."""
    found: set[str] = set()
    for signal in signals:
        if signal is Signal.IDENTIFYING_ATTRIBUTES:
            found.update(set(a.identifying_attributes) ^ set(b.identifying_attributes))
        elif signal is Signal.METHODS:
            if a.methods != b.methods:
                found.add("DeidentificationMethod")
            if a.method_codes != b.method_codes:
                found.add("DeidentificationMethodCodeSequence")
        elif signal is Signal.XNAT_LABELS:
            found.update(("PatientID", "PatientName"))
        else:
            found.add(signal.value)
    return found


# --- what the mitigation may keep ------------------------------------------------------------------


class Hold(enum.StrEnum):
    """Why a mitigation moves nothing in an actionable group (`heldGroups` of the mitigation plan)."""

    DEIDENTIFICATION_UNDECIDED = "DEIDENTIFICATION_UNDECIDED"  # the copies' signals disagree
    ONLY_INTACT_COPY_LESS_DEIDENTIFIED = "ONLY_INTACT_COPY_LESS_DEIDENTIFIED"  # the more de-identified is damaged


#: The keeper's reason when the de-identification guard set copies aside (`DUPLICATE_KEPT:<this>`).
MORE_DEIDENTIFIED = "MORE_DEIDENTIFIED"


def is_less_deidentified(file: Mapping[str, Any]) -> bool:
    """A survey report's file document: less de-identified than another copy of its group."""
    return Reason.LESS_DEIDENTIFIED.value in file.get("reasons", ())


def hold_for(members: Sequence[Mapping[str, Any]], intact: Sequence[Mapping[str, Any]]) -> Hold | None:
    """Why nothing of a group may move: undecided, or its only intact copies are the less de-identified."""
    if any(Reason.DEIDENTIFICATION_UNDECIDED.value in m.get("reasons", ()) for m in members):
        return Hold.DEIDENTIFICATION_UNDECIDED
    if intact and all(is_less_deidentified(m) for m in intact) and any(not is_less_deidentified(m) for m in members):
        return Hold.ONLY_INTACT_COPY_LESS_DEIDENTIFIED
    return None


_HOLDING = frozenset({Reason.LESS_DEIDENTIFIED.value, Reason.DEIDENTIFICATION_UNDECIDED.value})


def less_deidentified_kept_by_newest(resource_report: Mapping[str, Any]) -> bool:
    """Whether XNAT's own mitigation (which keeps the newest copy, ResourceMitigationHelper in XNAT
    1.8.7+) would keep a copy that is less de-identified than another, or one of an undecided group.

    For the API way (mitigation/xnat/api_way.py): such a resource must not be handed to XNAT's
    mitigation. `resource_report` is one resource of the survey report.
    """
    files = {f["path"]: f for f in resource_report.get("files", ())}
    for group in resource_report.get("duplicateGroups", ()):
        if not group.get("actionable"):
            continue
        members = [files[p] for p in group["members"] if p in files]
        if not members:
            continue
        newest = max(members, key=lambda m: (m["mtimeNs"], m["path"]))
        if _HOLDING & set(newest.get("reasons", ())):
            return True
    return False
