"""The C element walker against the pure-Python one: the same values and verdicts on every file.

The C walker (container_app/survey/dicom/_walk.c) is an optional build; where it is missing these tests are
skipped, except under CI, where a missing build is a failure: the comparison must really run.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files

from container_app.demo import synth
from container_app.survey.dicom import decode, fast_path, native
from container_app.survey.dicom.read_plan import ReadPlan
from container_app.survey.dicom.reader import check_content, read_header
from tests.helpers.dicom import BASE, DEFAULT, ENCODINGS, PLAN

#: Elements after the enhanced MR's functional groups and the pixel module: the walk crosses every sequence.
WIDE_PLAN = ReadPlan.for_keywords([*DEFAULT.keywords, "Rows", "Columns", "NumberOfFrames", "ImageComments",
                                   "WaveformSampleInterpretation"])

try:
    from container_app.survey.dicom._walk import ascii_first_values as c_ascii_first_values
    from container_app.survey.dicom._walk import walk as c_walk
except ImportError:  # pragma: no cover - depends on the build
    c_walk = c_ascii_first_values = None

if c_walk is None:
    if os.environ.get("CI"):
        pytest.fail("the C walker was not built (no C compiler?): CI must compare it with the Python walker",
                    pytrace=False)
    pytestmark = pytest.mark.skip(reason="the C walker is not built here")


def outcome(path: Path, plan: ReadPlan, in_c: bool) -> tuple[Any, ...]:
    """What the fast path makes of a file with the C functions or the Python ones: values and content
    check, or what it raised."""
    saved = fast_path._walk, decode._ascii_first_values
    if in_c:
        fast_path._walk, decode._ascii_first_values = c_walk, c_ascii_first_values
    else:
        fast_path._walk, decode._ascii_first_values = fast_path._walk_python, decode._ascii_first_values_python
    try:
        try:
            result = read_header(str(path), plan, fast=True)
            header: tuple[Any, ...] = (result.values, result.meta_instance_uid, result.needs_force)
        except Exception as exc:
            header = ("raised", type(exc).__name__)
        try:
            check = check_content(str(path))
            content: tuple[Any, ...] = (check.intact, check.detail)
        except Exception as exc:
            content = ("raised", type(exc).__name__)
        return header, content
    finally:
        fast_path._walk, decode._ascii_first_values = saved


def both(path: Path, plan: ReadPlan = WIDE_PLAN) -> tuple[Any, Any]:
    return outcome(path, plan, in_c=True), outcome(path, plan, in_c=False)


def test_the_survey_uses_the_c_walker_when_built() -> None:
    assert native.ACCELERATED
    assert fast_path._walk is c_walk
    assert decode._ascii_first_values is c_ascii_first_values


VALUE_BYTES = st.binary(max_size=24) | st.lists(st.sampled_from([b"\\", b" ", b"\0", b"\x1b", b"\xe9", b"1.2", b"A^B",
                                                                 b"\x80", b"="]), max_size=8).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(raw=st.dictionaries(st.sampled_from([1, 2, 3, 4, 5, 6]), VALUE_BYTES, max_size=6))
def test_ascii_first_values_in_c_and_python(raw: dict[int, bytes]) -> None:
    """Tags 1-2 always ASCII, 3-4 text, 5-6 neither: the same values and the same tags left over."""
    assert c_ascii_first_values is not None
    ascii_keywords, text_keywords = {1: "A", 2: "B"}, {3: "C", 4: "D"}
    c_values: dict[str, str] = {}
    python_values: dict[str, str] = {}
    c_left = c_ascii_first_values(raw, ascii_keywords, text_keywords, c_values)
    python_left = decode._ascii_first_values_python(raw, ascii_keywords, text_keywords, python_values)
    assert (c_values, c_left) == (python_values, python_left)


def test_the_environment_turns_it_off() -> None:
    code = "from container_app.survey.dicom import native; print(native.ACCELERATED)"
    env = {**os.environ, native.PURE_PYTHON_ENV: "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("plan", [PLAN, WIDE_PLAN], ids=["default-template", "wide-template"])
def test_every_pydicom_test_file(plan: ReadPlan) -> None:
    files = get_testdata_files()
    assert len(files) > 250
    differ = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in files:
            c, python = both(Path(name), plan)
            if c != python:
                differ.append((name, c, python))
    assert differ == []


def seeds() -> dict[str, bytes]:
    """Small files with sequences of defined and undefined length in every encoding the fast path reads."""
    out = {name: synth.instance_bytes(spec) for name, spec in ENCODINGS.items()}
    for name, spec in ENCODINGS.items():
        multiframe = synth.enhanced_mr(dataclasses.replace(spec, extra={"WaveformSampleInterpretation": "SB"}), 3,
                                       undefined_length=True)
        out[f"{name}-enhanced-undefined"] = synth.instance_bytes(multiframe)
        out[f"{name}-enhanced-defined"] = synth.instance_bytes(synth.enhanced_mr(spec, 3))
    return out


SEEDS = seeds()


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seeds_read_the_same_and_whole(name: str, tmp_path: Path) -> None:
    path = tmp_path / "f.dcm"
    path.write_bytes(SEEDS[name])
    c, python = both(path)
    assert c == python
    header, content = c
    assert header[0] != "raised" and header[0]["SOPInstanceUID"] == BASE.sop_instance_uid
    assert content == (True, None)


def test_the_enhanced_file_with_5000_items(tmp_path: Path) -> None:
    spec = synth.enhanced_mr(dataclasses.replace(BASE, extra={"WaveformSampleInterpretation": "SB"}), 5000,
                             undefined_length=True)
    path = tmp_path / "big.dcm"
    synth.write_instance(path, spec)
    c, python = both(path)
    assert c == python
    assert c[0][0]["WaveformSampleInterpretation"] == "SB"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_cut_of_a_file_with_sequences(tmp_path: Path) -> None:
    """Cut at every length: the two walkers agree on each cut (bad file, fewer values, or not intact)."""
    data = SEEDS["explicit-le-enhanced-undefined"]
    path = tmp_path / "cut.dcm"
    verdicts = set()
    for length in range(0, len(data), 7):
        path.write_bytes(data[:length])
        c, python = both(path)
        assert c == python, length
        verdicts.add(c[0][0] if c[0][0] == "raised" else "read")
    assert verdicts == {"raised", "read"}


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's, on the fallback path
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.sampled_from(sorted(SEEDS)), edits=st.lists(
    st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=6)), min_size=1, max_size=6))
def test_fuzzed_files_read_the_same(seed: str, edits: list[tuple[float, bytes]], tmp_path: Path) -> None:
    """Random overwrites (lengths, tags, VRs, delimiters): the same verdict from both walkers, never a crash."""
    data = bytearray(SEEDS[seed])
    for where, patch in edits:
        at = int(where * (len(data) - 1))
        data[at : at + len(patch)] = patch
    path = tmp_path / "fuzzed.dcm"
    path.write_bytes(bytes(data))
    c, python = both(path)
    assert c == python


LENGTH_FIELDS = st.sampled_from([0, 1, 2, 7, 8, 12, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), base=st.integers(0, 1 << 40), offset=st.integers(-20, 320),
       stop=st.integers(0, 0xFFFFFFFF), implicit=st.booleans())
def test_walk_on_arbitrary_bytes_never_reads_out_of_bounds(data: bytes, base: int, offset: int, stop: int,
                                                           implicit: bool) -> None:
    """Any bytes, any starting point: a position and a flag back, values only from inside the buffer."""
    assert c_walk is not None
    values: dict[int, bytes] = {}
    wanted = {0x00080018: "SOPInstanceUID", 0x00100010: "PatientName", 0xFFFEE000: "item"}
    pos, finished = c_walk(data, base, base + offset, stop, wanted, values, implicit)
    assert isinstance(pos, int) and isinstance(finished, bool)
    for tag, value in values.items():
        assert tag in wanted and value in data


@settings(max_examples=300, deadline=None)
@given(elements=st.lists(st.tuples(st.sampled_from([0x00080018, 0x00081140, 0x00100010, 0xFFFEE000, 0xFFFEE00D,
                                                    0xFFFEE0DD, 0x7FE00010, 0x00200013]),
                                   st.sampled_from([b"UI", b"SQ", b"UN", b"OB", b"PN", b"XX", b"\x00\x01"]),
                                   LENGTH_FIELDS, st.binary(max_size=12)), max_size=12),
       implicit=st.booleans())
def test_element_soup_stops_where_the_python_walker_would_continue(
        elements: list[tuple[int, bytes, int, bytes]], implicit: bool) -> None:
    """Headers built from plausible parts: whatever the C walker stores, the Python one stores too."""
    assert c_walk is not None
    chunks = []
    for tag, vr, length, value in elements:
        group_element = (tag >> 16).to_bytes(2, "little") + (tag & 0xFFFF).to_bytes(2, "little")
        if implicit or tag >> 16 == 0xFFFE:
            chunks.append(group_element + length.to_bytes(4, "little") + value)
        else:
            chunks.append(group_element + vr + b"\x00\x00" + length.to_bytes(4, "little") + value)
    data = b"".join(chunks)
    wanted = {0x00080018: "SOPInstanceUID", 0x00100010: "PatientName", 0x00200013: "InstanceNumber"}
    c_values: dict[int, bytes] = {}
    c_pos, c_finished = c_walk(data, 0, 0, 0x0020FFFF, wanted, c_values, implicit)
    python_values: dict[int, bytes] = {}
    python_pos, python_finished = fast_path._walk_python(data, 0, 0, 0x0020FFFF, wanted, python_values, implicit)
    # The C walker may go further (it steps over sequences); up to where Python stopped, they agree.
    assert c_pos >= python_pos
    assert {t: v for t, v in c_values.items() if t in python_values} == python_values
    if c_pos == python_pos:
        assert (c_values, c_finished) == (python_values, python_finished)


def test_walk_refuses_what_is_not_bytes_and_dicts() -> None:
    assert c_walk is not None
    with pytest.raises(TypeError):
        c_walk("text", 0, 0, 0, {}, {}, False)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        c_walk(b"", 0, 0, 0, [], {}, False)  # type: ignore[arg-type]
