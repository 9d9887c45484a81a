"""Reading every encoding archives hold, with the fast path, and the same values as pydicom."""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_files

from container_app.core.records import FileRecord
from container_app.core.vocabulary import Reason
from container_app.demo import synth
from container_app.demo.synth import InstanceSpec
from container_app.survey.dicom.read_plan import ReadPlan
from container_app.survey.dicom.reader import check_content, read_header, survey_file
from tests.helpers.dicom import BASE, DEFAULT, ENCODINGS, PLAN, expected_values, parsed, record_for, write

#: A wanted element placed after the enhanced MR's functional group sequences (5200,9229/9230).
LATE_KEYWORD = "WaveformSampleInterpretation"  # (5400,1006) CS


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes the fast path read with os.pread (a one-element list, so the test sees updates)."""
    total = [0]
    real = os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        data = real(fd, length, offset)
        total[0] += len(data)
        return data

    monkeypatch.setattr(os, "pread", counting)  # the fast path calls os.pread
    return total



# --- every file pydicom ships ----------------------------------------------------------------------


#: A site template reading binary numbers (US, US or SS) and elements up to group 0028: more to parse.
WIDE_PLAN = ReadPlan.for_keywords([*DEFAULT.keywords, "Rows", "Columns", "BitsAllocated", "SmallestImagePixelValue",
                                   "NumberOfFrames", "AcquisitionNumber", "ImageComments"])


@pytest.mark.parametrize("plan", [PLAN, WIDE_PLAN], ids=["default-template", "wide-template"])
def test_every_pydicom_test_file(fallbacks: list[str], plan: ReadPlan) -> None:
    """survey_file never raises; where pydicom reads a file, the fast path reads exactly the same values."""
    files = get_testdata_files()
    assert len(files) > 250, "pydicom-data (the test extra) should be installed"
    assert any("data_store" in f for f in files), "pydicom-data files missing"
    readable = fell_back = binary_numbers = 0
    differ: list[tuple[str, Any, Any]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in files:
            path = Path(name)
            record = survey_file(str(path.parent), path.name, plan)  # must not raise, whatever the file
            assert isinstance(record, FileRecord)
            assert record.is_bad or record.header is not None
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            readable += 1
            before = len(fallbacks)
            fast = parsed(path, plan, fast=True)
            fell_back += len(fallbacks) > before
            slow = parsed(path, plan, fast=False)
            if fast != slow:
                differ.append((path.name, fast, slow))
            elif fast[0] != "raised" and "Rows" in fast[0]:
                assert fast[0]["Rows"] == str(ds.Rows), path.name  # binary numbers in the file's byte order
                binary_numbers += 1
    assert differ == []
    assert readable > 200
    assert plan is PLAN or binary_numbers > 150
    # The comparison means something only if the fast path itself read most of them.
    fast_read = readable - fell_back
    assert fast_read > 0.8 * readable, f"fast path handled only {fast_read} of {readable}"



# --- encodings -------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_encodings_read_by_the_fast_path(encoding: str, tmp_path: Path, fallbacks: list[str]) -> None:
    spec = ENCODINGS[encoding]
    path = write(tmp_path, "f.dcm", spec)
    record = record_for(path)
    assert record.header is not None
    assert record.header.values == expected_values(spec)
    assert not record.is_bad
    if spec.preamble:
        assert record.reasons == ()
        assert not record.needs_force
    else:
        assert record.reasons == (Reason.NEEDS_FORCE,)
        assert record.needs_force
    assert fallbacks == [], "the fast path should read this encoding itself"
    assert parsed(path, PLAN, fast=True) == parsed(path, PLAN, fast=False)
    assert check_content(str(path)).intact


def test_deflated_file_is_really_deflated(tmp_path: Path) -> None:
    path = write(tmp_path, "f.dcm", ENCODINGS["deflated"])
    assert BASE.study_instance_uid.encode() not in path.read_bytes()  # only readable after inflating
    assert record_for(path).header is not None


@pytest.fixture(scope="module")
def enhanced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, InstanceSpec]:
    spec = synth.enhanced_mr(dataclasses.replace(BASE, extra={LATE_KEYWORD: "SB"}), 5000, undefined_length=True)
    path = tmp_path_factory.mktemp("enhanced") / "enhanced.dcm"
    synth.write_instance(path, spec)
    return path, spec


def test_enhanced_multiframe_reads_only_the_start(enhanced: tuple[Path, InstanceSpec], bytes_read: list[int],
                                                  fallbacks: list[str]) -> None:
    path, spec = enhanced
    size = path.stat().st_size
    assert size > 3_000_000
    data = path.read_bytes()
    # (5200,9230) SQ of undefined length, and at least 5,000 items of undefined length.
    assert b"\x00\x52\x30\x92SQ\x00\x00\xff\xff\xff\xff" in data
    assert data.count(b"\xfe\xff\x00\xe0\xff\xff\xff\xff") > 5000
    record = record_for(path)
    assert record.header is not None
    assert record.header.values == expected_values(spec)
    assert fallbacks == []
    assert bytes_read[0] < size // 100, f"read {bytes_read[0]} of {size} bytes"


def test_enhanced_multiframe_skips_undefined_length_sequences(enhanced: tuple[Path, InstanceSpec],
                                                              bytes_read: list[int], fallbacks: list[str]) -> None:
    """A wanted element after 5,000 undefined-length items: walked past correctly, pixel data never read."""
    path, spec = enhanced
    size = path.stat().st_size
    plan = ReadPlan.for_keywords([*DEFAULT.keywords, LATE_KEYWORD])
    result = read_header(str(path), plan, fast=True)
    assert result.values[LATE_KEYWORD] == "SB"
    assert result.values == expected_values(spec, plan)
    assert fallbacks == []
    assert bytes_read[0] < size // 2, f"read {bytes_read[0]} of {size} bytes"
    assert parsed(path, plan, fast=False) == (result.values, result.meta_instance_uid, result.needs_force)
    check = check_content(str(path))  # walks every element, sequences and pixel data included
    assert check.intact
