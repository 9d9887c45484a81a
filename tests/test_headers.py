"""Reading headers: every encoding archives hold, damaged files, links, and the fast path equal to pydicom."""

from __future__ import annotations

import dataclasses
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from container_app.core.classify import classify
from container_app.core.naming import DEFAULT_TEMPLATE, parse_template
from container_app.core.records import FileRecord
from container_app.core.vocabulary import FileStatus, Reason
from container_app.demo import synth
from container_app.demo.synth import InstanceSpec, TruncateAt
from container_app.survey.dicom import headers
from container_app.survey.dicom.headers import ReadPlan, check_content, read_header, survey_file
from container_app.survey.discover import Selection
from container_app.survey.pipeline import SurveyRequest, plan_resources, run

DEFAULT = parse_template(DEFAULT_TEMPLATE)
PLAN = ReadPlan.for_keywords(DEFAULT.keywords)
BASE = InstanceSpec(sop_instance_uid=synth.uid("headers", 1), series_number="4", instance_number="2")
#: A wanted element placed after the enhanced MR's functional group sequences (5200,9229/9230).
LATE_KEYWORD = "WaveformSampleInterpretation"  # (5400,1006) CS


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


@pytest.fixture
def fallbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths the pydicom fallback was asked to read (the fast path gave up on them)."""
    calls: list[str] = []
    real = headers._read_with_pydicom

    def spy(path: str, plan: ReadPlan) -> Any:
        calls.append(path)
        return real(path, plan)

    monkeypatch.setattr(headers, "_read_with_pydicom", spy)
    return calls


@pytest.fixture
def bytes_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes the fast path read with os.pread (a one-element list, so the test sees updates)."""
    total = [0]
    real = os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        data = real(fd, length, offset)
        total[0] += len(data)
        return data

    monkeypatch.setattr(os, "pread", counting)  # headers calls os.pread
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

ENCODINGS = {
    "explicit-le": BASE,
    "implicit-le": dataclasses.replace(BASE, transfer_syntax=ImplicitVRLittleEndian),
    "explicit-be": dataclasses.replace(BASE, transfer_syntax=ExplicitVRBigEndian),
    "deflated": dataclasses.replace(BASE, transfer_syntax=DeflatedExplicitVRLittleEndian),
    "no-preamble": dataclasses.replace(BASE, preamble=False),
    "no-preamble-implicit": dataclasses.replace(BASE, preamble=False, transfer_syntax=ImplicitVRLittleEndian),
}


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


# --- damaged and foreign files ---------------------------------------------------------------------


def test_truncated_in_header_is_a_bad_file(tmp_path: Path) -> None:
    data = synth.instance_bytes(BASE)
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: synth.truncation_offset(data, TruncateAt.HEADER)])
    record = record_for(path)
    assert record.reasons == (Reason.TRUNCATED,)
    assert record.is_bad
    assert record.header is None


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_truncated_in_pixel_data_is_read_but_not_intact(tmp_path: Path, syntax: str) -> None:
    spec = dataclasses.replace(BASE, transfer_syntax=syntax)
    data = synth.instance_bytes(spec)
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: synth.truncation_offset(data, TruncateAt.PIXEL_DATA,
                                                    little_endian=syntax != ExplicitVRBigEndian)])
    record = record_for(path)
    assert not record.is_bad
    assert record.header is not None and record.header.values == expected_values(spec)
    check = check_content(str(path))
    assert not check.intact
    assert check.detail and "pixel" in check.detail
    whole = tmp_path / "whole.dcm"
    whole.write_bytes(data)
    assert check_content(str(whole)).intact
    assert check_content(str(whole)).sha256 != check.sha256


def test_any_cut_never_raises(tmp_path: Path) -> None:
    """Cut a file at every length through its header: a verdict each time, never an exception."""
    data = synth.instance_bytes(BASE)
    stop = data.index(b"\xe0\x7f\x10\x00") + 16
    verdicts = set()
    for length in range(0, stop, 3):
        path = tmp_path / f"cut{length}"
        path.write_bytes(data[:length])
        record = record_for(path)
        verdicts.add(record.reasons[:1])
        check = check_content(str(path))
        assert check.sha256
        path.unlink()
    assert (Reason.TRUNCATED,) in verdicts
    assert (Reason.NOT_DICOM,) in verdicts


@pytest.mark.parametrize("syntax", [DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_cut_file_is_never_taken_for_a_whole_one(tmp_path: Path, syntax: str) -> None:
    """Cut anywhere after the meta: the header read fails, or the content check does.

    The one exception is inherent to DICOM: an uncompressed file cut exactly between two elements
    reads as a shorter dataset (missing values, or missing pixel data). A deflated file has no
    such exception: its stream lacks its end marker.
    """
    spec = dataclasses.replace(BASE, transfer_syntax=syntax, rows=32, cols=32)
    data = synth.instance_bytes(spec)
    deflated = syntax == DeflatedExplicitVRLittleEndian
    pixel_data = 0 if deflated else data.rindex(b"\xe0\x7f\x10\x00")
    expected = expected_values(spec)
    path = tmp_path / "cut.dcm"
    whole_header = at_a_boundary = 0
    for length in range(200, len(data) - 1, 5):
        path.write_bytes(data[:length])
        record = record_for(path)
        if record.is_bad:
            continue
        assert record.header is not None
        if record.header.values == expected:
            whole_header += 1
            if deflated or length > pixel_data:  # cut inside the pixel data element
                assert not check_content(str(path)).intact, length
        else:
            at_a_boundary += 1
            assert record.header.values.items() < expected.items(), length
    assert whole_header > 100
    if syntax == DeflatedExplicitVRLittleEndian:
        assert at_a_boundary == 0
    path.write_bytes(data)
    assert check_content(str(path)).intact


def test_gzip_compressed_dicom(tmp_path: Path) -> None:
    path = tmp_path / "f.dcm.gz"
    path.write_bytes(synth.gzip_bytes(synth.instance_bytes(BASE)))
    record = record_for(path)
    assert record.reasons == (Reason.GZIP_COMPRESSED,)
    assert record.is_bad


def test_dicomdir(tmp_path: Path) -> None:
    synth.write_dicomdir(tmp_path / "DICOMDIR")
    record = record_for(tmp_path / "DICOMDIR")
    assert record.reasons == (Reason.DICOMDIR,)
    assert record.is_bad


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.txt", synth.NOT_DICOM_TEXT),
        ("empty", b""),
        ("snapshot.png", synth.png_bytes()),
        ("zeros", b"\0" * 4096),
        ("short", b"\x08\x00"),
        ("dicm-only", b"\0" * 128 + b"DICM"),
    ],
)
def test_not_dicom(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    record = record_for(path)
    assert record.is_bad
    assert record.reasons[0] in (Reason.NOT_DICOM, Reason.TRUNCATED, Reason.MISSING_SOP_CLASS_UID)
    if name in ("notes.txt", "empty", "snapshot.png"):
        assert record.reasons == (Reason.NOT_DICOM,)


def test_missing_sop_class_uid_is_bad(tmp_path: Path) -> None:
    path = write(tmp_path, "f.dcm", dataclasses.replace(BASE, omit=frozenset({"SOPClassUID"})))
    record = record_for(path)
    assert Reason.MISSING_SOP_CLASS_UID in record.reasons
    assert record.is_bad


def test_missing_sop_instance_uid_is_bad(tmp_path: Path) -> None:
    path = write(tmp_path, "f.dcm", dataclasses.replace(BASE, omit=frozenset({"SOPInstanceUID"})))
    record = record_for(path)
    assert Reason.MISSING_SOP_INSTANCE_UID in record.reasons
    assert record.is_bad


def test_media_storage_uid_mismatch_is_reported_not_bad(tmp_path: Path) -> None:
    spec = dataclasses.replace(BASE, media_storage_sop_instance_uid=synth.uid("headers", "other"))
    path = write(tmp_path, "f.dcm", spec)
    record = record_for(path)
    assert record.reasons == (Reason.MEDIA_STORAGE_UID_MISMATCH,)
    assert not record.is_bad
    assert parsed(path, PLAN, fast=True) == parsed(path, PLAN, fast=False)


@pytest.mark.parametrize(
    ("charset", "patient_name", "encoded"),
    [
        ("ISO_IR 100", "Müller^Jürgen", "Müller".encode("latin-1")),
        ("ISO_IR 192", "Müller^Jürgen=山田^太郎", "山田".encode()),
    ],
)
def test_non_ascii_patient_names_decode_the_same_in_both_paths(tmp_path: Path, charset: str, patient_name: str,
                                                               encoded: bytes, fallbacks: list[str]) -> None:
    spec = dataclasses.replace(BASE, patient_name=patient_name, extra={"SpecificCharacterSet": charset})
    path = write(tmp_path, "f.dcm", spec)
    assert encoded in path.read_bytes()
    fast = read_header(str(path), PLAN, fast=True)
    slow = read_header(str(path), PLAN, fast=False)
    assert fast.values["PatientName"] == slow.values["PatientName"] == patient_name
    assert fast.values == slow.values
    assert fallbacks == [str(path)]  # only the explicit fast=False call


def test_multi_valued_is_keeps_its_first_value_as_stored(tmp_path: Path) -> None:
    spec = dataclasses.replace(BASE, extra={"InstanceNumber": ["04", "2"], "SeriesNumber": "007"})
    path = write(tmp_path, "f.dcm", spec)
    for fast in (True, False):
        values = read_header(str(path), PLAN, fast=fast).values
        assert values["InstanceNumber"] == "04"
        assert values["SeriesNumber"] == "007"
    record = record_for(path)
    assert record.header is not None
    assert DEFAULT.render(record.header.get).startswith(f"{BASE.study_instance_uid}-007-04-")


# --- values that must never become a path ----------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.parametrize("study_uid", ["../../etc", "1.2/3.4", "1.2\x013.4", "1.2\\3.4"])
def test_unsafe_header_values_make_a_bad_file_whose_name_never_appears(tmp_path: Path, study_uid: str,
                                                                       cli: Callable[..., Any]) -> None:
    root = tmp_path / "root"
    spec = dataclasses.replace(BASE, study_instance_uid=study_uid)
    write(root, "evil.dcm", spec)
    write(root, "good.dcm", dataclasses.replace(BASE, sop_instance_uid=synth.uid("headers", "good")))
    values = {k: v for k in DEFAULT.keywords if (v := synth.header_value(spec, k)) is not None}
    unsafe_name = DEFAULT.render(values)
    record = record_for(root / "evil.dcm")
    assert record.header is not None
    if "\\" not in study_uid:
        assert record.header.values["StudyInstanceUID"] == study_uid
    out = tmp_path / "out"
    rc, stdout, stderr, report = cli("survey", root, "--output", out)
    assert rc == 0, stderr
    assert report is not None
    files = {f["path"]: f for f in report["resources"][0]["files"]}
    if "\\" in study_uid:  # a backslash separates values: the first value is "1.2", a safe name
        assert files["evil.dcm"]["status"] != "BAD"
        return
    assert files["evil.dcm"]["status"] == "BAD"
    assert "UNSAFE_NAME_VALUE" in files["evil.dcm"]["reasons"]
    assert files["evil.dcm"]["expectedName"] is None
    assert files["good.dcm"]["status"] == "MISMATCHED"
    hash_part = unsafe_name.rsplit("-", 1)[1]  # the instance's hash: only a rendered name carries it
    assert not any(unsafe_name in s or hash_part in s for s in all_strings(report))
    texts = [(out / "survey-report.json").read_text("utf-8"), (out / "survey-summary.csv").read_text("utf-8"),
             stdout, stderr]
    for text in texts:
        assert unsafe_name not in text
        assert hash_part not in text


def all_strings(document: Any) -> Iterator[str]:
    """Every key and string value in a JSON document."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from all_strings(value)
    elif isinstance(document, list):
        for item in document:
            yield from all_strings(item)


# --- links and special files -----------------------------------------------------------------------


def survey_folder(root: Path, jobs: int = 1) -> list[Any]:
    request = SurveyRequest(root=str(root), template=DEFAULT, selection=Selection(all_resources=True), jobs=jobs)
    return list(run(request, plan_resources(request)))


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Real paths of everything the survey opens, by any of the means it has."""
    paths: list[str] = []
    real_os_open, real_open, real_dcmread = os.open, open, pydicom.dcmread

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        paths.append(os.path.realpath(path))
        return real_os_open(path, flags, *args, **kwargs)

    def builtin_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str | os.PathLike):
            paths.append(os.path.realpath(path))
        return real_open(path, *args, **kwargs)

    def dcmread(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, str | os.PathLike):
            paths.append(os.path.realpath(path))
        return real_dcmread(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr("builtins.open", builtin_open)
    monkeypatch.setattr(pydicom, "dcmread", dcmread)
    yield paths


def test_symlinks_are_reported_and_never_read(tmp_path: Path, opened: list[str]) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    resource = root / "SCANS" / "1" / "DICOM"
    write(resource, "real.dcm", BASE)
    secret = write(outside, "secret.dcm", dataclasses.replace(BASE, sop_instance_uid=synth.uid("secret")))
    secret.chmod(0)  # unreadable (for anyone but root): a read would fail or leak
    (resource / "inside-link.dcm").symlink_to("real.dcm")
    (resource / "outside-link.dcm").symlink_to(secret)
    (resource / "relative-out.dcm").symlink_to("../../../../outside/secret.dcm")
    (resource / "dangling.dcm").symlink_to(tmp_path / "nowhere.dcm")
    (resource / "dir-link").symlink_to(outside, target_is_directory=True)
    [findings] = survey_folder(root)
    by_name = {f.name: f for f in findings.files}
    assert by_name["inside-link.dcm"].reasons[0] is Reason.SYMLINK
    assert by_name["outside-link.dcm"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    assert by_name["relative-out.dcm"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    assert by_name["dangling.dcm"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    assert by_name["dir-link"].reasons[0] is Reason.SYMLINK_OUTSIDE_ROOT
    for name in ("inside-link.dcm", "outside-link.dcm", "relative-out.dcm", "dangling.dcm", "dir-link"):
        assert by_name[name].status is FileStatus.BAD
        assert by_name[name].expected_name is None
    assert by_name["real.dcm"].status is not FileStatus.BAD
    assert str(secret.resolve()) not in opened
    assert not any(p.startswith(str(outside.resolve())) for p in opened)
    # The link inside ROOT is not read either: only the real file is opened, once for its header.
    assert opened.count(str((resource / "real.dcm").resolve())) >= 1


def test_hard_links_are_flagged_and_grouped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    original = write(root, synth.xnat_name(BASE), BASE)
    os.link(original, root / "copy.dcm")
    [findings] = survey_folder(root)
    by_name = {f.name: f for f in findings.files}
    for finding in by_name.values():
        assert Reason.HARD_LINK in finding.record.reasons
        assert finding.status is FileStatus.DUPLICATE
    [group] = findings.groups
    assert group.actionable and group.identical


def test_fifo_is_not_a_regular_file_and_is_never_opened(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "a.dcm", BASE)
    os.mkfifo(root / "pipe")  # opening it for reading would block forever
    record = record_for(root / "pipe")
    assert record.reasons == (Reason.NOT_A_REGULAR_FILE,)
    [findings] = survey_folder(root)
    assert {f.name: f.status for f in findings.files}["pipe"] is FileStatus.BAD


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "f.dcm", BASE)
    path.chmod(0)
    try:
        record = record_for(path)
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert record.reasons == (Reason.UNREADABLE,)
    assert record.is_bad


def test_missing_entry_is_unreadable(tmp_path: Path) -> None:
    record = survey_file(str(tmp_path), "gone.dcm", PLAN)  # vanished between listing and reading
    assert record.reasons == (Reason.UNREADABLE,)
    assert record.is_bad


def test_classify_never_renders_a_name_for_a_bad_file(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root, "nosop.dcm", dataclasses.replace(BASE, omit=frozenset({"SOPClassUID"})))
    request = SurveyRequest(root=str(root), template=DEFAULT, selection=Selection(), jobs=1)
    [resource] = plan_resources(request)
    records = [survey_file(str(root), name, PLAN) for name in resource.files]
    findings = classify(resource, records, DEFAULT)
    assert [f.expected_name for f in findings.files] == [None]
