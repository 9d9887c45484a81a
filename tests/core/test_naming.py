"""XNAT's file naming, byte for byte: conformance vectors, Java's hashes, base 36, templates, safety."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_app.core.errors import TemplateError, UsageError
from container_app.core.naming import (
    DEFAULT_TEMPLATE,
    MAX_NAME_BYTES,
    base36,
    first_value,
    is_legacy_name,
    java_list_hash,
    java_string_hash,
    legacy_hash,
    no_value,
    parse_template,
    unsafe_name_reason,
)
from container_app.demo import synth

DEFAULT = parse_template(DEFAULT_TEMPLATE)
MR = "1.2.840.10008.5.1.4.1.1.4"
CHECK_INSTANCE = "1.3.12.2.1107.5.2.32.35177.3.2006121409365951632817982"
CHECK_STUDY = "1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034"

# --- an independent reference: Java's String.hashCode() over UTF-16 code units ---------------------


def utf16_units(text: str) -> list[int]:
    """UTF-16 code units, computed by hand: astral characters become surrogate pairs; lone surrogates stay."""
    units: list[int] = []
    for char in text:
        point = ord(char)
        if point > 0xFFFF:
            point -= 0x10000
            units += [0xD800 + (point >> 10), 0xDC00 + (point & 0x3FF)]
        else:
            units.append(point)
    return units


def to_signed32(value: int) -> int:
    value %= 1 << 32
    return value - (1 << 32) if value >= 1 << 31 else value


def reference_string_hash(text: str) -> int:
    """`sum(s[i] * 31^(n-1-i))` as the Javadoc writes it, reduced to a signed int at the end."""
    units = utf16_units(text)
    n = len(units)
    return to_signed32(sum(u * 31 ** (n - 1 - i) for i, u in enumerate(units)))


def reference_list_hash(values: list[str]) -> int:
    h = 1
    for value in values:
        h = 31 * h + reference_string_hash(value)
    return to_signed32(h)


def reference_base36(value: int) -> str:
    return re.sub(r"^0+(?=.)", "", _base36_digits(value % (1 << 32)))


def _base36_digits(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rem = divmod(value, 36)
        out = digits[rem] + out
        if not value:
            return out


def lookup_for(vector: dict[str, str]) -> dict[str, str]:
    return {
        "SOPClassUID": vector["sop_class_uid"],
        "SOPInstanceUID": vector["sop_instance_uid"],
        "StudyInstanceUID": vector["study_instance_uid"],
        "SeriesNumber": vector["series_number"],
        "InstanceNumber": vector["instance_number"],
    }


# --- XNAT's own expected results -------------------------------------------------------------------


def test_all_xnat_naming_vectors_reproduce_exactly(naming_vectors: list[dict[str, str]]) -> None:
    assert len(naming_vectors) == 543
    wrong = [(v["expected"], DEFAULT.render(lookup_for(v))) for v in naming_vectors
             if DEFAULT.render(lookup_for(v)) != v["expected"]]
    assert wrong == []
    # The vectors cover more than one SOP class, including a private one.
    assert len({v["sop_class_uid"] for v in naming_vectors}) >= 3


@pytest.mark.parametrize(
    ("sop_class_uid", "instance_number", "expected"),
    [
        (MR, "2", f"{CHECK_STUDY}-4-2-1qs88hj.dcm"),
        ("9.9.9.9.9.123.456.789", "1", f"{CHECK_STUDY}-4-1-1m0zhq7.dcm"),
    ],
)
def test_reference_check_vectors(sop_class_uid: str, instance_number: str, expected: str) -> None:
    values = {"SOPClassUID": sop_class_uid, "SOPInstanceUID": CHECK_INSTANCE, "StudyInstanceUID": CHECK_STUDY,
              "SeriesNumber": "4", "InstanceNumber": instance_number}
    assert DEFAULT.render(values) == expected
    assert DEFAULT.render(values.get) == expected  # a callable lookup renders the same


def test_legacy_hash_reproduces_xnat_legacy_names(legacy_names: list[dict[str, str]]) -> None:
    assert len(legacy_names) == 10
    for entry in legacy_names:
        name = entry["legacy_name"]
        assert name.endswith(f".{legacy_hash(entry['sop_class_uid'], entry['sop_instance_uid'])}.dcm"), name
        assert is_legacy_name(name, entry["sop_class_uid"], entry["sop_instance_uid"])
        # Another instance's UIDs do not explain the name.
        assert not is_legacy_name(name, entry["sop_class_uid"], entry["sop_instance_uid"] + "1")


def test_legacy_hash_matches_the_synth_planter_and_handles_missing_uids() -> None:
    assert legacy_hash(MR, CHECK_INSTANCE) == synth.legacy_hash(MR, CHECK_INSTANCE)
    assert legacy_hash(None, CHECK_INSTANCE) == synth.legacy_hash(None, CHECK_INSTANCE)
    assert legacy_hash(MR, None) == reference_base36(reference_string_hash(MR))
    assert legacy_hash(None, None) == "0"


# --- Java's hashes ---------------------------------------------------------------------------------


def test_java_string_hash_known_values() -> None:
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("") == 0
    assert java_string_hash("Aa") == java_string_hash("BB") == 2112
    assert java_string_hash("polygenelubricants") == -(2**31)  # Integer.MIN_VALUE: the sign is kept
    assert java_string_hash("\U0001f600") == 31 * 0xD83D + 0xDE00  # one astral character, two code units
    assert java_string_hash("\ud800") == 0xD800  # a lone surrogate is one code unit, as in Java


def test_java_list_hash_known_values() -> None:
    assert java_list_hash([]) == 1
    assert java_list_hash(["a", "b"]) == 4066  # Arrays.asList("a", "b").hashCode()
    assert java_list_hash(["Aa"]) == java_list_hash(["BB"])


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40))
def test_java_string_hash_equals_utf16_reference(text: str) -> None:
    assert java_string_hash(text) == reference_string_hash(text)
    assert -(2**31) <= java_string_hash(text) < 2**31


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), min_size=1, max_size=10))
def test_java_string_hash_of_astral_text_counts_surrogate_pairs(text: str) -> None:
    assert java_string_hash(text) == reference_string_hash(text)
    assert len(utf16_units(text)) == 2 * len(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=5))
def test_java_list_hash_equals_reference(values: list[str]) -> None:
    assert java_list_hash(values) == reference_list_hash(values)


def test_base36_known_values() -> None:
    assert base36(0) == "0"
    assert base36(35) == "z"
    assert base36(36) == "10"
    assert base36(2**32 - 1) == "1z141z3"
    assert base36(-1) == "1z141z3"  # a negative Java int is masked to unsigned 32 bits first
    assert base36(2**32) == "0"


@settings(max_examples=500, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_base36_round_trips(value: int) -> None:
    text = base36(value)
    assert int(text, 36) == value
    assert re.fullmatch(r"0|[1-9a-z][0-9a-z]{0,6}", text)
    assert text == reference_base36(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**31), max_value=2**31 - 1))
def test_base36_of_signed_ints_is_of_their_unsigned_value(value: int) -> None:
    assert int(base36(value), 36) == value & 0xFFFFFFFF


# --- rendering -------------------------------------------------------------------------------------

SAFE_TEXT = st.text(alphabet=st.characters(exclude_characters="/\\", exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(DEFAULT.keywords), SAFE_TEXT))
def test_a_rendered_name_never_contains_a_slash_for_safe_inputs(values: dict[str, str]) -> None:
    name = DEFAULT.render(values)
    assert "/" not in name
    assert name.endswith(".dcm")
    assert not name.startswith(".")


def test_missing_values_render_no_value_for_keyword_also_inside_hash_inputs() -> None:
    only_instance = {"SOPInstanceUID": CHECK_INSTANCE, "StudyInstanceUID": CHECK_STUDY}
    expected_hash = reference_base36(reference_list_hash(["no-value-for-SOPClassUID", CHECK_INSTANCE]))
    assert DEFAULT.render(only_instance) == (
        f"{CHECK_STUDY}-no-value-for-SeriesNumber-no-value-for-InstanceNumber-{expected_hash}.dcm"
    )
    assert no_value("SeriesNumber") == "no-value-for-SeriesNumber"
    # A blank value is the same as a missing one.
    assert DEFAULT.render({**only_instance, "SOPClassUID": "", "SeriesNumber": ""}) == DEFAULT.render(only_instance)
    # Every value missing: still a name, hash over the placeholders.
    everything_missing = reference_base36(reference_list_hash(["no-value-for-SOPClassUID",
                                                               "no-value-for-SOPInstanceUID"]))
    assert DEFAULT.render({}).endswith(f"-{everything_missing}.dcm")


def test_missing_values_agree_with_the_synth_planter() -> None:
    spec = synth.InstanceSpec(sop_instance_uid=synth.uid("naming", 1), series_number=None,
                              omit=frozenset({"SOPClassUID", "InstanceNumber"}))
    values = {k: v for k in DEFAULT.keywords if (v := synth.header_value(spec, k)) is not None}
    assert "SOPClassUID" not in values
    assert DEFAULT.render(values) == synth.xnat_name(spec)


@pytest.mark.parametrize(
    ("raw", "first"),
    [("1\\2", "1"), ("04\\2", "04"), ("04", "04"), (" 4 ", "4"), ("1.2.3\0", "1.2.3"), ("1.2.3 ", "1.2.3"),
     ("", None), ("   ", None), ("\\2", None), ("Doe^Jane\\Roe^John", "Doe^Jane")],
)
def test_first_value_is_the_first_value_as_stored(raw: str, first: str | None) -> None:
    assert first_value(raw) == first


def test_a_multi_valued_is_renders_its_first_value_as_stored() -> None:
    values = {"SOPClassUID": MR, "SOPInstanceUID": CHECK_INSTANCE, "StudyInstanceUID": CHECK_STUDY,
              "SeriesNumber": first_value("04"), "InstanceNumber": first_value("1\\2")}
    name = DEFAULT.render({k: v for k, v in values.items() if v is not None})
    assert name == f"{CHECK_STUDY}-04-1-1qs88hj.dcm"  # never re-formatted as a number, never "[1, 2]"


def test_leading_dots_are_stripped_and_nothing_else_is_sanitised() -> None:
    template = parse_template("${StudyDescription}_${SOPInstanceUID}")
    assert template.render({"StudyDescription": "..hidden", "SOPInstanceUID": "1.2"}) == "hidden_1.2.dcm"
    assert template.render({"StudyDescription": "a b:c*?", "SOPInstanceUID": "1.2"}) == "a b:c*?_1.2.dcm"


def test_hash_of_three_keywords_and_keyword_order() -> None:
    template = parse_template("${HashSOPInstanceUIDWithSOPClassUIDWithSeriesNumber}")
    assert template.keywords == ("SOPInstanceUID", "SOPClassUID", "SeriesNumber")
    values = {"SOPInstanceUID": CHECK_INSTANCE, "SOPClassUID": MR, "SeriesNumber": "4"}
    assert template.render(values) == reference_base36(reference_list_hash([CHECK_INSTANCE, MR, "4"])) + ".dcm"
    assert DEFAULT.keywords == ("StudyInstanceUID", "SeriesNumber", "InstanceNumber", "SOPClassUID",
                                "SOPInstanceUID")


# --- template parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "",
        "   ",
        "${HashSOPClassUID}",  # Hash without With
        "${Hash}",
        "${HashWith}",
        "${HashSOPClassUIDWith}",
        "${HashSOPClassUIDWithNotAKeyword}",
        "${NotAKeyword}",
        "${StudyInstanceUID}-${Bogus}",
        "${bad-name}",
        "${StudyInstanceUID}-${bad-name}",
        "${StudyInstanceUID",
        "${}",
        "plain-name",  # no variable: every file would share one name
        "${StudyInstanceUID}/${SOPInstanceUID}",
        "a\\${SOPInstanceUID}",
        "../${SOPInstanceUID}",
    ],
)
def test_invalid_templates_are_usage_errors(source: str) -> None:
    with pytest.raises(TemplateError) as caught:
        parse_template(source)
    assert isinstance(caught.value, UsageError)
    assert str(caught.value)


@pytest.mark.parametrize(
    ("source", "suffix"),
    [
        ("${SOPInstanceUID}", "1.2.3.dcm"),
        ("${SOPInstanceUID}.dcm", "1.2.3.dcm"),
        ("${SOPInstanceUID}.DCM", "1.2.3.DCM"),
        ("${SOPInstanceUID}.ima", "1.2.3.ima"),
        ("${SOPInstanceUID}.dcm2", "1.2.3.dcm2"),
        ("${SOPInstanceUID}-x", "1.2.3-x.dcm"),
        ("${SOPInstanceUID}.d-m", "1.2.3.d-m.dcm"),
        ("x.${SOPInstanceUID}", "x.1.2.3.dcm"),  # a dot that ends in a variable is not an extension
        ("${SOPInstanceUID}.${InstanceNumber}", "1.2.3.7.dcm"),
    ],
)
def test_dcm_is_appended_only_without_an_extension(source: str, suffix: str) -> None:
    assert parse_template(source).render({"SOPInstanceUID": "1.2.3", "InstanceNumber": "7"}) == suffix


def test_parse_template_reports_literals_and_variables() -> None:
    template = parse_template("a-${SOPInstanceUID}-b")
    assert template.literals == ("a-", "-b")
    assert [v.text for v in template.variables] == ["SOPInstanceUID"]
    assert template.extension == ".dcm"


# --- names that must never reach the file system ---------------------------------------------------

UID_COMPONENT = st.integers(min_value=0, max_value=10**12).map(str)
UID = st.lists(UID_COMPONENT, min_size=2, max_size=12).map(".".join).filter(lambda u: len(u) <= 64)


@st.composite
def uid_names(draw: st.DrawFn) -> str:
    study = draw(UID)
    series = draw(st.integers(min_value=0, max_value=99999))
    instance = draw(st.integers(min_value=0, max_value=99999))
    digest = base36(draw(st.integers(min_value=0, max_value=2**32 - 1)))
    return f"{study}-{series}-{instance}-{digest}.dcm"


@settings(max_examples=300, deadline=None)
@given(uid_names())
def test_typical_uid_names_are_safe(name: str) -> None:
    assert unsafe_name_reason(name) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["/", "\\", "..", "\x00", "\x01", "\n", "\r", "\t", "\x1f", "\x7f"]),
       st.text(max_size=40))
def test_names_with_separators_dots_or_control_characters_are_unsafe(head: str, bad: str, tail: str) -> None:
    assert unsafe_name_reason(head + bad + tail) is not None


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=300))
def test_names_longer_than_255_utf8_bytes_are_unsafe(text: str) -> None:
    name = (text * (MAX_NAME_BYTES + 1))[: MAX_NAME_BYTES + 1]
    while len(name.encode("utf-8")) <= MAX_NAME_BYTES:
        name += text
    assert unsafe_name_reason(name) is not None


def test_length_limit_counts_utf8_bytes_not_characters() -> None:
    assert unsafe_name_reason("a" * 255) is None
    assert unsafe_name_reason("a" * 256) is not None
    assert unsafe_name_reason("é" * 127) is None  # 254 bytes
    assert unsafe_name_reason("é" * 128) is not None  # 256 bytes in 128 characters
    assert unsafe_name_reason("") is not None
    assert unsafe_name_reason("..") is not None


def test_unsafe_values_in_a_header_make_unsafe_names() -> None:
    for study in ("../../etc", "1.2/3", "1.2\x013", "1.2\\3"):
        name = DEFAULT.render({"StudyInstanceUID": study, "SOPClassUID": MR, "SOPInstanceUID": CHECK_INSTANCE})
        assert unsafe_name_reason(name) is not None, study


def test_synthetic_names_use_the_same_rules() -> None:
    """A spec named by the planter gets exactly the survey's expected name."""
    base = synth.InstanceSpec(sop_instance_uid=synth.uid("naming", "x"), series_number="04", instance_number="7")
    for spec in (base, dataclasses.replace(base, sop_class_uid="9.9.9.9.9.123.456.789")):
        values = {k: v for k in DEFAULT.keywords if (v := synth.header_value(spec, k)) is not None}
        assert DEFAULT.render(values) == synth.xnat_name(spec)


def test_extension_uses_xnats_own_character_class() -> None:
    # TemplatizedDicomFileNamer.hasExtension matches "^\.[A-z0-9]+": A-z also spans [ \ ] ^ _ and the backtick.
    assert parse_template("${StudyInstanceUID}.d_m").extension == ""
    assert parse_template("${StudyInstanceUID}.dcm").extension == ""
    assert parse_template("${StudyInstanceUID}.d-m").extension == ".dcm"
    assert parse_template("${StudyInstanceUID}.${SeriesNumber}").extension == ".dcm"


@pytest.mark.parametrize("template", ["a..${StudyInstanceUID}", "${StudyInstanceUID}..dcm", "x\x07${SeriesNumber}"])
def test_template_that_could_steer_a_path_is_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(template)
