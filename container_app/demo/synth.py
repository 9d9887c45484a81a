"""Synthetic DICOM files and XNAT archive layouts, shared by every test and the demo.

Everything here is deterministic: the same specs give the same bytes, names, UIDs and mtimes, so tests
can assert exact results and the demo report never changes between runs.

The XNAT naming helpers in this module exist only to *plant* names. They are written independently of
the survey's template engine on purpose, so that a test comparing the two catches a bug in either.

Pure functions build bytes and names; only the functions named ``write_*``, ``build_*``, ``truncate``
and ``gzip_file`` touch the file system.
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import hashlib
import io
import os
import re
import struct
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from container_app.core import naming

# --------------------------------------------------------------------------------------------------
# UIDs

#: pydicom's registered root; synthetic UIDs must never collide with real ones.
UID_ROOT = "1.2.826.0.1.3680043.8.498."
_UID_MAX = 64

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
MEDIA_STORAGE_DIRECTORY_STORAGE = "1.2.840.10008.1.3.10"

TRANSFER_SYNTAXES = frozenset(
    {ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian}
)

_DEFAULT_TEMPLATE = naming.parse_template(naming.DEFAULT_TEMPLATE)


def uid(*parts: str | int) -> str:
    """A valid, deterministic UID under `UID_ROOT`, derived from a hash of `parts`.

    `uid("a", 1)` equals `uid("a", "1")`: callers mix scan IDs as ints and strings.
    """
    payload = "\x1f".join(str(p) for p in parts).encode("utf-8")
    digits = str(int.from_bytes(hashlib.sha256(payload).digest(), "big"))
    # A decimal rendering of a positive int never starts with 0, and truncation keeps the first digit,
    # so the single suffix component is always free of leading zeros.
    return (UID_ROOT + digits)[:_UID_MAX]


#: Study and series UIDs used when a test does not care which study an instance belongs to.
DEFAULT_STUDY_UID = uid("synth", "study")
DEFAULT_SERIES_UID = uid("synth", "series")
#: Stable implementation identity, so file bytes do not change with the installed pydicom version.
_IMPLEMENTATION_CLASS_UID = uid("synth", "implementation")
_IMPLEMENTATION_VERSION = "SYNTH_1"


# --------------------------------------------------------------------------------------------------
# Instance specification and encoding


@dataclass(frozen=True, kw_only=True)
class InstanceSpec:
    """One DICOM instance to synthesize. Optional string fields: None omits the element, "" writes it empty.

    `extra` sets any further keyword (and overrides a field's element); `omit` removes keywords last,
    so omission wins over both. Multi-frame files (enhanced MR) are written when `frames > 1` or
    `per_frame_items` is given; `per_frame_items` may differ from `frames` to plant an inconsistency.
    """

    sop_class_uid: str = MR_IMAGE_STORAGE
    sop_instance_uid: str
    study_instance_uid: str = DEFAULT_STUDY_UID
    series_instance_uid: str = DEFAULT_SERIES_UID
    series_number: str | None = "1"
    instance_number: str | None = "1"
    patient_name: str | None = "Doe^Jane"
    patient_id: str | None = "SYNTH001"
    patient_birth_date: str | None = "19700101"
    accession_number: str | None = "ACC0001"
    modality: str | None = "MR"
    study_description: str | None = "Brain MRI"
    study_date: str | None = "20240102"
    study_time: str | None = "101530.250000"
    study_id: str | None = "1"
    rows: int = 16
    cols: int = 16
    # Encoding
    transfer_syntax: str = ExplicitVRLittleEndian
    preamble: bool = True
    frames: int = 1
    per_frame_items: int | None = None
    undefined_length_sequences: bool = False
    # Free-form changes and planted inconsistencies
    extra: Mapping[str, object] = field(default_factory=dict)
    omit: frozenset[str] = frozenset()
    media_storage_sop_instance_uid: str | None = None
    media_storage_sop_class_uid: str | None = None

    @property
    def is_multiframe(self) -> bool:
        return self.frames > 1 or self.per_frame_items is not None


def enhanced_mr(spec: InstanceSpec, frames: int, *, per_frame_items: int | None = None,
                undefined_length: bool = False) -> InstanceSpec:
    """`spec` as an Enhanced MR instance with `frames` frames and one per-frame item per frame."""
    return dataclasses.replace(
        spec,
        sop_class_uid=ENHANCED_MR_IMAGE_STORAGE,
        frames=frames,
        per_frame_items=frames if per_frame_items is None else per_frame_items,
        undefined_length_sequences=undefined_length,
    )


def _check_keyword(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"not a DICOM keyword: {keyword!r}")
    return tag


def _pixel_bytes(spec: InstanceSpec, little_endian: bool) -> bytes:
    # Pixel values differ per instance (seeded by the UID) so that distinct instances never have
    # identical pixel data by accident; 12 bits stored, as MR scanners write.
    seed = int.from_bytes(hashlib.sha256(spec.sop_instance_uid.encode()).digest()[:2], "big")
    count = spec.rows * spec.cols * max(spec.frames, 1)
    values = [(seed + 7 * i) & 0x0FFF for i in range(count)]
    # pydicom writes OW values as given: it never swaps bytes for big endian, so we must.
    return struct.pack(f"{'<' if little_endian else '>'}{count}H", *values)


def _functional_groups(spec: InstanceSpec) -> tuple[DicomSequence, DicomSequence]:
    pixel_measures = Dataset()
    pixel_measures.PixelSpacing = ["1", "1"]
    pixel_measures.SliceThickness = "1"
    shared_item = Dataset()
    shared_item.PixelMeasuresSequence = DicomSequence([pixel_measures])
    items = []
    for index in range(spec.per_frame_items if spec.per_frame_items is not None else spec.frames):
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = index + 1
        content.DimensionIndexValues = [1, index + 1]
        position = Dataset()
        position.ImagePositionPatient = ["0", "0", str(index)]
        item = Dataset()
        item.FrameContentSequence = DicomSequence([content])
        item.PlanePositionSequence = DicomSequence([position])
        items.append(item)
    return DicomSequence([shared_item]), DicomSequence(items)


def _mark_undefined_length(ds: Dataset) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = True
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
                _mark_undefined_length(item)


def _dataset(spec: InstanceSpec, little_endian: bool) -> Dataset:
    ds = Dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = spec.sop_class_uid
    ds.SOPInstanceUID = spec.sop_instance_uid
    optional: dict[str, str | None] = {
        "StudyDate": spec.study_date,
        "StudyTime": spec.study_time,
        "AccessionNumber": spec.accession_number,
        "Modality": spec.modality,
        "StudyDescription": spec.study_description,
        "PatientName": spec.patient_name,
        "PatientID": spec.patient_id,
        "PatientBirthDate": spec.patient_birth_date,
        "StudyID": spec.study_id,
        "SeriesNumber": spec.series_number,
        "InstanceNumber": spec.instance_number,
    }
    for keyword, value in optional.items():
        if value is not None:
            setattr(ds, keyword, value)
    ds.StudyInstanceUID = spec.study_instance_uid
    ds.SeriesInstanceUID = spec.series_instance_uid
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    if spec.is_multiframe:
        ds.NumberOfFrames = spec.frames
        shared, per_frame = _functional_groups(spec)
        ds.SharedFunctionalGroupsSequence = shared
        ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = _pixel_bytes(spec, little_endian)
    ds["PixelData"].VR = "OW"
    for keyword, extra_value in spec.extra.items():
        _check_keyword(keyword)
        setattr(ds, keyword, extra_value)
    for keyword in spec.omit:
        tag = _check_keyword(keyword)
        if tag in ds:
            del ds[tag]
    if spec.undefined_length_sequences:
        _mark_undefined_length(ds)
    return ds


def _encoding(transfer_syntax: str) -> tuple[bool, bool]:
    """(implicit_vr, little_endian) of a supported transfer syntax."""
    if transfer_syntax not in TRANSFER_SYNTAXES:
        raise ValueError(f"unsupported transfer syntax for synthesis: {transfer_syntax}")
    return transfer_syntax == ImplicitVRLittleEndian, transfer_syntax != ExplicitVRBigEndian


def instance_bytes(spec: InstanceSpec) -> bytes:
    """The encoded file for `spec`."""
    implicit_vr, little_endian = _encoding(spec.transfer_syntax)
    if not spec.preamble and spec.transfer_syntax == DeflatedExplicitVRLittleEndian:
        # Without file meta nothing says the stream is deflated: no reader could ever parse it.
        raise ValueError("a deflated dataset needs file meta: preamble=False is not possible")
    ds = _dataset(spec, little_endian)
    meta = FileMetaDataset()
    if spec.preamble:
        # Group length is listed so pydicom computes it even though we do not enforce the file format.
        meta.FileMetaInformationGroupLength = 0
        meta.FileMetaInformationVersion = b"\x00\x01"
        class_uid = spec.media_storage_sop_class_uid or ds.get("SOPClassUID")
        instance_uid = spec.media_storage_sop_instance_uid or ds.get("SOPInstanceUID")
        if class_uid:
            meta.MediaStorageSOPClassUID = UID(class_uid)
        if instance_uid:
            meta.MediaStorageSOPInstanceUID = UID(instance_uid)
        meta.TransferSyntaxUID = UID(spec.transfer_syntax)
        meta.ImplementationClassUID = UID(_IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    file_ds = FileDataset("", ds, preamble=b"\x00" * 128 if spec.preamble else None, file_meta=meta)
    buffer = io.BytesIO()
    # enforce_file_format=True would overwrite planted Media Storage UIDs with the dataset's, refuse
    # files without SOPClassUID and always add a preamble; we build the meta ourselves instead.
    dcmwrite(buffer, file_ds, implicit_vr=implicit_vr, little_endian=little_endian,
             enforce_file_format=False)
    return buffer.getvalue()


def write_instance(path: Path, spec: InstanceSpec) -> None:
    """Write the file for `spec` at `path`, creating parent folders."""
    write_bytes(path, instance_bytes(spec))


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --------------------------------------------------------------------------------------------------
# XNAT names (for planting only)

_FIELD_KEYWORDS = {
    "SOPClassUID": "sop_class_uid",
    "SOPInstanceUID": "sop_instance_uid",
    "StudyInstanceUID": "study_instance_uid",
    "SeriesInstanceUID": "series_instance_uid",
    "SeriesNumber": "series_number",
    "InstanceNumber": "instance_number",
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "PatientBirthDate": "patient_birth_date",
    "AccessionNumber": "accession_number",
    "Modality": "modality",
    "StudyDescription": "study_description",
    "StudyDate": "study_date",
    "StudyTime": "study_time",
    "StudyID": "study_id",
}


def header_value(spec: InstanceSpec, keyword: str) -> str | None:
    """The string XNAT's DICOM library would read for `keyword`.

    First value, padding removed; None when the element is absent or blank.
    """
    if keyword in spec.omit:
        return None
    raw: object
    if keyword in spec.extra:
        raw = spec.extra[keyword]
    elif keyword in _FIELD_KEYWORDS:
        raw = getattr(spec, _FIELD_KEYWORDS[keyword])
    else:
        return None
    if isinstance(raw, list | tuple):
        raw = raw[0] if raw else None
    if raw is None:
        return None
    text = str(raw).split("\\", 1)[0].strip(" \x00")
    return text or None


def xnat_hash(values: Sequence[str]) -> str:
    """XNAT's `Hash...With...` variable: Java `List<String>.hashCode()`, unsigned, base 36."""
    return naming.base36(naming.java_list_hash(values))


def xnat_name(spec: InstanceSpec) -> str:
    """The name XNAT's default template (1.8.7+) gives `spec`."""
    return _DEFAULT_TEMPLATE.render(lambda keyword: header_value(spec, keyword))


def legacy_hash(sop_class_uid: str | None, sop_instance_uid: str | None) -> str:
    """The hash part of the pre-1.8.7 `SOPHashDicomFileNamer` names."""
    return naming.legacy_hash(sop_class_uid, sop_instance_uid)


_NON_LABEL = re.compile(r"[^A-Za-z0-9_-]")
_NON_FILE = re.compile(r"[^A-Za-z0-9_.-]")


def legacy_name(spec: InstanceSpec) -> str:
    """The name XNAT's pre-1.8.7 `SOPHashDicomFileNamer` gave `spec` (it carries the patient's name)."""
    components: list[str] = []
    first = header_value(spec, "PatientName") or header_value(spec, "StudyID") or "NULL"
    components.append(first)  # not label-sanitised: only the final file-name pass touches it
    for keyword in ("Modality", "StudyDescription", "SeriesNumber", "InstanceNumber"):
        value = header_value(spec, keyword)
        if value is not None:
            components.append(_NON_LABEL.sub("_", value))
    study_date = header_value(spec, "StudyDate")
    if study_date is not None:
        components.append(study_date.replace(".", ""))
    study_time = header_value(spec, "StudyTime")
    if study_time is not None:
        fixed = study_time.replace(":", "")
        # XNAT finds the fraction in the original string but cuts the colon-free one; kept as XNAT does.
        fraction = study_time.find(".")
        if fraction >= 6:
            fixed = fixed[:fraction]
        components.append(fixed)
    components.append(legacy_hash(header_value(spec, "SOPClassUID"), header_value(spec, "SOPInstanceUID")))
    return _NON_FILE.sub("_", ".".join(components) + ".dcm")


# --------------------------------------------------------------------------------------------------
# Damage


class TruncateAt(enum.StrEnum):
    """Where to cut a file when the exact byte count does not matter."""

    HEADER = "HEADER"  # inside the SOPClassUID tag: the header cannot be read, a bad file
    PIXEL_DATA = "PIXEL_DATA"  # half-way through the pixel data: the header up to it is intact


def truncation_offset(data: bytes, at: TruncateAt, *, little_endian: bool = True) -> int:
    """How many bytes of `data` (an uncompressed instance) to keep to cut it at `at`."""
    if at is TruncateAt.HEADER:
        tag = b"\x08\x00\x16\x00" if little_endian else b"\x00\x08\x00\x16"
        return data.index(tag) + 3
    tag = b"\xe0\x7f\x10\x00" if little_endian else b"\x7f\xe0\x00\x10"
    start = data.rindex(tag)
    return start + (len(data) - start) // 2


def truncate(path: Path, keep_bytes: int) -> None:
    """Cut the file at `path` to its first `keep_bytes` bytes."""
    size = path.stat().st_size
    if not 0 <= keep_bytes < size:
        raise ValueError(f"cannot truncate {size} bytes to {keep_bytes}")
    os.truncate(path, keep_bytes)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # mtime=0 keeps the bytes deterministic


def gzip_file(path: Path, *, suffix: str = "") -> Path:
    """Replace `path` by its gzip-compressed content, at `path` + `suffix`; returns the new path."""
    target = path.with_name(path.name + suffix)
    data = gzip_bytes(path.read_bytes())
    target.write_bytes(data)
    if target != path:
        path.unlink()
    return target


NOT_DICOM_TEXT = b"Scanner operator notes: repeat of series 4 requested.\n"


def write_not_dicom(path: Path, content: bytes = NOT_DICOM_TEXT) -> None:
    """A plain file that no DICOM reader accepts, even with force."""
    write_bytes(path, content)


def dicomdir_bytes(file_set_id: str = "SYNTH") -> bytes:
    """A minimal, valid DICOMDIR of an empty file-set: a real Media Storage Directory object."""
    ds = Dataset()
    ds.FileSetID = file_set_id
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = DicomSequence()
    meta = FileMetaDataset()
    meta.FileMetaInformationGroupLength = 0
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(MEDIA_STORAGE_DIRECTORY_STORAGE)
    meta.MediaStorageSOPInstanceUID = UID(uid("synth", "dicomdir", file_set_id))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(_IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = _IMPLEMENTATION_VERSION
    buffer = io.BytesIO()
    dcmwrite(buffer, FileDataset("", ds, preamble=b"\x00" * 128, file_meta=meta),
             implicit_vr=False, little_endian=True, enforce_file_format=False)
    return buffer.getvalue()


def write_dicomdir(path: Path, file_set_id: str = "SYNTH") -> None:
    write_bytes(path, dicomdir_bytes(file_set_id))


def png_bytes(width: int = 8, height: int = 8) -> bytes:
    """A small valid greyscale PNG, for snapshot resources."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + bytes(x * 255 // max(width - 1, 1) for x in range(width))  # filter byte, then a ramp
    rows = row * height
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9))
            + chunk(b"IEND", b""))


# --------------------------------------------------------------------------------------------------
# Archive layouts


class Naming(enum.StrEnum):
    """How to name a file when the caller does not give a literal name."""

    XNAT = "XNAT"  # XNAT's default template: conforming
    LEGACY = "LEGACY"  # the pre-1.8.7 namer: carries the patient's name


class Plant(enum.StrEnum):
    """What was planted in a file or catalog entry. Derived from what was written, not from intent."""

    LEGACY_NAME = "LEGACY_NAME"
    CLIENT_NAME = "CLIENT_NAME"  # neither the XNAT name nor the legacy name
    DUPLICATE_IDENTICAL = "DUPLICATE_IDENTICAL"
    DUPLICATE_DIFFERENT = "DUPLICATE_DIFFERENT"
    HARD_LINK = "HARD_LINK"
    SYMLINK = "SYMLINK"
    TRUNCATED_HEADER = "TRUNCATED_HEADER"
    TRUNCATED_PIXEL_DATA = "TRUNCATED_PIXEL_DATA"
    TRUNCATED = "TRUNCATED"  # cut at a caller-given byte count
    GZIP = "GZIP"
    NO_PREAMBLE = "NO_PREAMBLE"
    MISSING_SOP_CLASS_UID = "MISSING_SOP_CLASS_UID"
    MISSING_SOP_INSTANCE_UID = "MISSING_SOP_INSTANCE_UID"
    MEDIA_STORAGE_UID_MISMATCH = "MEDIA_STORAGE_UID_MISMATCH"
    NOT_DICOM = "NOT_DICOM"
    DICOMDIR = "DICOMDIR"
    NOT_IN_CATALOG = "NOT_IN_CATALOG"
    CATALOG_ENTRY_MISSING_FILE = "CATALOG_ENTRY_MISSING_FILE"
    CATALOG_UID_MISMATCH = "CATALOG_UID_MISMATCH"


#: Plants that make a file one of XNAT's "bad files" (unreadable or without SOPClassUID).
#: TRUNCATED (a caller-given byte count) is not listed: whether the header survives depends on the count.
BAD_PLANTS = frozenset(
    {Plant.TRUNCATED_HEADER, Plant.GZIP, Plant.MISSING_SOP_CLASS_UID, Plant.NOT_DICOM, Plant.DICOMDIR,
     Plant.SYMLINK}
)


class CopyKind(enum.StrEnum):
    IDENTICAL = "IDENTICAL"  # byte-identical copy
    DIFFERENT = "DIFFERENT"  # same UIDs and naming values, a changed non-key element (ImageComments)
    HARD_LINK = "HARD_LINK"
    SYMLINK = "SYMLINK"  # relative symlink to the original, inside the resource


@dataclass(frozen=True, kw_only=True)
class CopySpec:
    """A second file holding the same instance as its `FileSpec`."""

    name: str | Naming
    kind: CopyKind = CopyKind.IDENTICAL
    in_catalog: bool = True
    mtime: float | None = None


@dataclass(frozen=True, kw_only=True)
class FileSpec:
    """A DICOM file in a scan resource and the problems to plant on it."""

    instance: InstanceSpec
    name: str | Naming = Naming.XNAT
    copies: tuple[CopySpec, ...] = ()
    truncate_to: int | TruncateAt | None = None
    gzip: bool = False
    in_catalog: bool = True
    present: bool = True  # False: only a catalog entry, the file is missing
    catalog_uid: str | None = None  # a catalog UID other than the header's
    mtime: float | None = None


class ExtraKind(enum.StrEnum):
    TEXT = "TEXT"
    PNG = "PNG"
    DICOMDIR = "DICOMDIR"
    BYTES = "BYTES"  # `content` as given


@dataclass(frozen=True, kw_only=True)
class ExtraFile:
    """A file that is not a synthesized instance: notes, snapshots, a DICOMDIR, arbitrary bytes."""

    name: str
    kind: ExtraKind = ExtraKind.TEXT
    content: bytes | None = None
    in_catalog: bool = True
    format: str | None = None  # catalog `format`; defaults by kind
    mtime: float | None = None


@dataclass(frozen=True, kw_only=True)
class ScanSpec:
    """A scan with one resource (`label`) holding `files` and `extras`."""

    scan_id: str
    files: tuple[FileSpec, ...] = ()
    extras: tuple[ExtraFile, ...] = ()
    label: str = "DICOM"
    catalog: bool = True
    series_instance_uid: str | None = None  # catalog UID; defaults to the first instance's series

    @classmethod
    def conforming(cls, scan_id: str, instances: Iterable[InstanceSpec], *, label: str = "DICOM") -> ScanSpec:
        return cls(scan_id=scan_id, files=tuple(FileSpec(instance=i) for i in instances), label=label)


@dataclass(frozen=True, kw_only=True)
class ResourceSpec:
    """A session-level resource (`RESOURCES/<label>`), such as snapshots."""

    label: str
    files: tuple[ExtraFile, ...]
    format: str | None = None
    catalog: bool = True


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    label: str
    scans: tuple[ScanSpec, ...]
    resources: tuple[ResourceSpec, ...] = ()


def series_instances(base: InstanceSpec, scan_id: str | int, count: int, *, start: int = 1,
                     series_number: str | None = None) -> tuple[InstanceSpec, ...]:
    """`count` instances of one series, UIDs derived from `base`'s study and `scan_id`.

    `series_number` defaults to the scan ID, as XNAT labels scans by series number.
    """
    series_uid = uid(base.study_instance_uid, "series", scan_id)
    return tuple(
        dataclasses.replace(
            base,
            series_instance_uid=series_uid,
            sop_instance_uid=uid(base.study_instance_uid, "instance", scan_id, n),
            series_number=str(scan_id) if series_number is None else series_number,
            instance_number=str(n),
        )
        for n in range(start, start + count)
    )


def differing_copy(spec: InstanceSpec) -> InstanceSpec:
    """The same instance with a changed element that no naming scheme reads: bytes differ, names do not."""
    return dataclasses.replace(spec, extra={**spec.extra, "ImageComments": "re-sent by the scanner"})


@dataclass(frozen=True)
class PlantedFile:
    """One file (or catalog entry without a file) in a layout, and what was planted on it."""

    path: str  # relative to the session root (or the resource folder for build_resource), "/" separators
    plants: frozenset[Plant]
    sop_class_uid: str | None  # as written in the header; None for non-DICOM files
    sop_instance_uid: str | None
    expected_name: str | None  # XNAT's default-template name; None for non-DICOM files
    in_catalog: bool
    exists: bool
    size: int | None  # bytes on disk; None when the file does not exist
    md5: str | None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def is_bad(self) -> bool:
        return self.exists and bool(self.plants & BAD_PLANTS)


@dataclass(frozen=True)
class ResourceLayout:
    path: str  # resource folder relative to the session root
    label: str
    scan_id: str | None  # None for session-level resources
    format: str | None
    catalog: str | None  # catalog path relative to the session root
    files: tuple[PlantedFile, ...]


@dataclass(frozen=True)
class SessionLayout:
    root: Path
    project: str
    session_label: str
    resources: tuple[ResourceLayout, ...]

    @property
    def files(self) -> tuple[PlantedFile, ...]:
        return tuple(f for r in self.resources for f in r.files)

    def with_plant(self, plant: Plant) -> tuple[PlantedFile, ...]:
        return tuple(f for f in self.files if plant in f.plants)

    def resource(self, scan_id: str, label: str = "DICOM") -> ResourceLayout:
        for r in self.resources:
            if r.scan_id == scan_id and r.label == label:
                return r
        raise KeyError((scan_id, label))


@dataclass(frozen=True)
class ProjectLayout:
    root: Path  # the folder holding `<project>/`
    project: str
    sessions: tuple[SessionLayout, ...]

    def session(self, label: str) -> SessionLayout:
        for s in self.sessions:
            if s.session_label == label:
                return s
        raise KeyError(label)


#: Default first mtime of a layout (2023-11-14T22:13:20Z); files get one second more each, in write order.
DEFAULT_MTIME = 1_700_000_000
_CATALOG_CREATED = "2024-01-02T10:15:30.000"

_NAMESPACES = (
    ('arc', "http://nrg.wustl.edu/arc"),
    ('cat', "http://nrg.wustl.edu/catalog"),
    ('icr', "http://icr.ac.uk/icr"),
    ('pipe', "http://nrg.wustl.edu/pipe"),
    ('prov', "http://www.nbirn.net/prov"),
    ('scr', "http://nrg.wustl.edu/scr"),
    ('val', "http://nrg.wustl.edu/val"),
    ('wrk', "http://nrg.wustl.edu/workflow"),
    ('xdat', "http://nrg.wustl.edu/security"),
    ('xnat', "http://nrg.wustl.edu/xnat"),
    ('xnat_a', "http://nrg.wustl.edu/xnat_assessments"),
    ('xsi', "http://www.w3.org/2001/XMLSchema-instance"),
)


@dataclass(frozen=True)
class CatalogEntrySpec:
    """One `cat:entry` to write; `dcm` makes it a `cat:dcmEntry`, as XNAT's importer writes them."""

    name: str
    digest: str
    format: str | None
    dcm: bool = False
    uid: str | None = None
    instance_number: str | None = None


def catalog_xml(entries: Sequence[CatalogEntrySpec], *, project: str, dicom: bool,
                catalog_uid: str | None = None) -> str:
    """An XNAT resource catalog: `cat:DCMCatalog` for DICOM resources, `cat:Catalog` otherwise."""
    root = "cat:DCMCatalog" if dicom else "cat:Catalog"
    attrs = f" UID={quoteattr(catalog_uid)}" if catalog_uid else ""
    attrs += "".join(f" xmlns:{prefix}={quoteattr(url)}" for prefix, url in _NAMESPACES)
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f"<{root}{attrs}>",
        "<cat:metaFields>",
        f'\t<cat:metaField name="PROJECT">{escape(project)}</cat:metaField>',
        "</cat:metaFields>",
        "<cat:entries>",
    ]
    for e in entries:
        fields: list[tuple[str, str | None]] = [
            ("ID", e.name), ("UID", e.uid if e.dcm else None), ("URI", e.name), ("createdBy", "admin"),
            ("createdTime", _CATALOG_CREATED), ("digest", e.digest), ("format", e.format),
            ("instanceNumber", e.instance_number if e.dcm else None),
            ("xsi:type", "cat:dcmEntry" if e.dcm else None),
        ]
        rendered = " ".join(f"{k}={quoteattr(v)}" for k, v in fields if v is not None)
        lines.append(f"\t<cat:entry {rendered}/>")
    lines += ["</cat:entries>", f"</{root}>", ""]
    return "\n".join(lines)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class _Clock:
    """Hands out deterministic mtimes in write order."""

    def __init__(self, base: float | None) -> None:
        self._next = base

    def stamp(self, path: Path, explicit: float | None) -> None:
        when = explicit
        if when is None and self._next is not None:
            when = self._next
            self._next += 1
        if when is not None:
            os.utime(path, (when, when), follow_symlinks=False)


def _resolve_name(name: str | Naming, spec: InstanceSpec) -> str:
    if name is Naming.XNAT:
        return xnat_name(spec)
    if name is Naming.LEGACY:
        return legacy_name(spec)
    return str(name)


def _name_plants(name: str, spec: InstanceSpec) -> set[Plant]:
    if name == xnat_name(spec):
        return set()
    return {Plant.LEGACY_NAME} if name == legacy_name(spec) else {Plant.CLIENT_NAME}


def _instance_plants(spec: InstanceSpec) -> set[Plant]:
    plants: set[Plant] = set()
    if not spec.preamble:
        plants.add(Plant.NO_PREAMBLE)
    if header_value(spec, "SOPClassUID") is None:
        plants.add(Plant.MISSING_SOP_CLASS_UID)
    if header_value(spec, "SOPInstanceUID") is None:
        plants.add(Plant.MISSING_SOP_INSTANCE_UID)
    if spec.preamble and (
        (spec.media_storage_sop_instance_uid not in (None, header_value(spec, "SOPInstanceUID")))
        or (spec.media_storage_sop_class_uid not in (None, header_value(spec, "SOPClassUID")))
    ):
        plants.add(Plant.MEDIA_STORAGE_UID_MISMATCH)
    return plants


def _damage(data: bytes, fs: FileSpec) -> tuple[bytes, set[Plant]]:
    plants: set[Plant] = set()
    if fs.truncate_to is not None:
        if isinstance(fs.truncate_to, TruncateAt):
            if fs.instance.transfer_syntax == DeflatedExplicitVRLittleEndian:
                raise ValueError("TruncateAt needs an uncompressed dataset; give a byte count instead")
            little = fs.instance.transfer_syntax != ExplicitVRBigEndian
            data = data[: truncation_offset(data, fs.truncate_to, little_endian=little)]
            plants.add(Plant.TRUNCATED_HEADER if fs.truncate_to is TruncateAt.HEADER
                       else Plant.TRUNCATED_PIXEL_DATA)
        else:
            data = data[: fs.truncate_to]
            plants.add(Plant.TRUNCATED)
    if fs.gzip:
        data = gzip_bytes(data)
        plants.add(Plant.GZIP)
    return data, plants


_EXTRA_FORMATS: dict[ExtraKind, str | None] = {
    ExtraKind.TEXT: "TXT", ExtraKind.PNG: "PNG", ExtraKind.DICOMDIR: "DICOM", ExtraKind.BYTES: None,
}


def _extra_content(extra: ExtraFile) -> tuple[bytes, set[Plant]]:
    if extra.kind is ExtraKind.DICOMDIR:
        return (extra.content or dicomdir_bytes()), {Plant.DICOMDIR}
    if extra.kind is ExtraKind.PNG:
        return (extra.content or png_bytes()), {Plant.NOT_DICOM}
    if extra.kind is ExtraKind.TEXT:
        return (extra.content or NOT_DICOM_TEXT), {Plant.NOT_DICOM}
    if extra.content is None:
        raise ValueError(f"{extra.name}: ExtraKind.BYTES needs content")
    return extra.content, set()


#: Plants that a copy of each kind adds to the original file and to the copy itself.
_COPY_PLANTS_ON_ORIGINAL: dict[CopyKind, frozenset[Plant]] = {
    CopyKind.IDENTICAL: frozenset({Plant.DUPLICATE_IDENTICAL}),
    CopyKind.DIFFERENT: frozenset({Plant.DUPLICATE_DIFFERENT}),
    CopyKind.HARD_LINK: frozenset({Plant.DUPLICATE_IDENTICAL, Plant.HARD_LINK}),
    CopyKind.SYMLINK: frozenset(),  # the link is a bad file, so the original stays a single
}
_COPY_PLANTS_ON_COPY: dict[CopyKind, frozenset[Plant]] = {
    **_COPY_PLANTS_ON_ORIGINAL,
    CopyKind.SYMLINK: frozenset({Plant.SYMLINK}),
}


class _ResourceWriter:
    """Writes one resource folder and remembers what it planted."""

    def __init__(self, folder: Path, rel: str, clock: _Clock, *, dicom: bool = True) -> None:
        self.folder = folder
        self.rel = rel
        self.clock = clock
        self.dicom = dicom
        self.planted: list[PlantedFile] = []
        self.entries: list[CatalogEntrySpec] = []
        self._names: set[str] = set()

    def _rel(self, name: str) -> str:
        return f"{self.rel}/{name}" if self.rel else name

    def _claim(self, name: str) -> Path:
        if name in self._names or "/" in name or name in ("", ".", ".."):
            raise ValueError(f"{self.rel}: file name {name!r} is repeated or not a plain name")
        self._names.add(name)
        return self.folder / name

    def add(self, name: str, data: bytes, plants: set[Plant], *, spec: InstanceSpec | None, exists: bool,
            in_catalog: bool, catalog: bool, fmt: str | None, catalog_uid: str | None = None,
            mtime: float | None = None, link_to: str | None = None, hard_link: bool = False) -> None:
        path = self._claim(name)
        if exists:
            if link_to is None:
                path.write_bytes(data)
                self.clock.stamp(path, mtime)
            elif hard_link:
                os.link(self.folder / link_to, path)  # shares the original's inode, hence its mtime
            else:
                path.symlink_to(link_to)
                self.clock.stamp(path, mtime)
        plants = set(plants)
        header_uid = header_value(spec, "SOPInstanceUID") if spec is not None else None
        if catalog and in_catalog:
            if spec is not None and catalog_uid is not None and catalog_uid != header_uid:
                plants.add(Plant.CATALOG_UID_MISMATCH)
            self.entries.append(CatalogEntrySpec(
                name=name,
                digest=_md5(data),
                format=fmt,
                # Only the importer writes dcmEntry elements, and only for instances it could read.
                dcm=spec is not None,
                uid=catalog_uid if catalog_uid is not None else header_uid,
                instance_number=header_value(spec, "InstanceNumber") if spec is not None else None,
            ))
        elif catalog:
            plants.add(Plant.NOT_IN_CATALOG)
        if not exists:
            plants.add(Plant.CATALOG_ENTRY_MISSING_FILE)
        self.planted.append(PlantedFile(
            path=self._rel(name),
            plants=frozenset(plants),
            sop_class_uid=header_value(spec, "SOPClassUID") if spec is not None else None,
            sop_instance_uid=header_uid,
            expected_name=xnat_name(spec) if spec is not None else None,
            in_catalog=catalog and in_catalog,
            exists=exists,
            size=len(data) if exists else None,
            md5=_md5(data) if exists else None,
        ))

    def add_file(self, fs: FileSpec, catalog: bool) -> None:
        if not fs.present and not (catalog and fs.in_catalog):
            raise ValueError("a missing file needs a catalog entry, or there is nothing to plant")
        if not fs.present and fs.copies:
            raise ValueError("copies of a missing file cannot be planted")
        data, damage = _damage(instance_bytes(fs.instance), fs)
        name = _resolve_name(fs.name, fs.instance)
        plants = _instance_plants(fs.instance) | _name_plants(name, fs.instance) | damage
        for copy in fs.copies:
            plants |= _COPY_PLANTS_ON_ORIGINAL[copy.kind]
        self.add(name, data, plants, spec=fs.instance, exists=fs.present, in_catalog=fs.in_catalog,
                 catalog=catalog, fmt="DICOM", catalog_uid=fs.catalog_uid, mtime=fs.mtime)
        for copy in fs.copies:
            copy_spec = differing_copy(fs.instance) if copy.kind is CopyKind.DIFFERENT else fs.instance
            # Copies inherit the original's damage, so an identical copy really is byte-identical.
            copy_data = _damage(instance_bytes(copy_spec), fs)[0] if copy_spec is not fs.instance else data
            copy_name = _resolve_name(copy.name, copy_spec)
            copy_plants = (_instance_plants(copy_spec) | _name_plants(copy_name, copy_spec) | damage
                           | _COPY_PLANTS_ON_COPY[copy.kind])
            linked = copy.kind in (CopyKind.HARD_LINK, CopyKind.SYMLINK)
            self.add(copy_name, copy_data, copy_plants, spec=copy_spec, exists=True,
                     in_catalog=copy.in_catalog, catalog=catalog, fmt="DICOM", mtime=copy.mtime,
                     link_to=name if linked else None, hard_link=copy.kind is CopyKind.HARD_LINK)

    def add_extra(self, extra: ExtraFile, catalog: bool) -> None:
        data, plants = _extra_content(extra)
        if not self.dicom:
            plants = set()  # a PNG in a snapshot resource is what belongs there
        fmt = extra.format if extra.format is not None else _EXTRA_FORMATS[extra.kind]
        self.add(extra.name, data, plants, spec=None, exists=True, in_catalog=extra.in_catalog,
                 catalog=catalog, fmt=fmt, mtime=extra.mtime)

    def write_catalog(self, catalog_name: str, *, project: str, dicom: bool, catalog_uid: str | None) -> str:
        path = self._claim(catalog_name)
        path.write_text(catalog_xml(self.entries, project=project, dicom=dicom, catalog_uid=catalog_uid),
                        encoding="utf-8")
        self.clock.stamp(path, None)
        return self._rel(catalog_name)


def _build_scan(session_root: Path, project: str, scan: ScanSpec, catalogs: bool,
                clock: _Clock) -> ResourceLayout:
    rel = f"SCANS/{scan.scan_id}/{scan.label}"
    folder = session_root / rel
    folder.mkdir(parents=True, exist_ok=True)
    writer = _ResourceWriter(folder, rel, clock)
    with_catalog = catalogs and scan.catalog
    for fs in scan.files:
        writer.add_file(fs, with_catalog)
    for extra in scan.extras:
        writer.add_extra(extra, with_catalog)
    catalog_rel = None
    if with_catalog:
        series = scan.series_instance_uid
        if series is None and scan.files:
            series = scan.files[0].instance.series_instance_uid
        catalog_rel = writer.write_catalog(f"scan_{scan.scan_id}_catalog.xml", project=project, dicom=True,
                                           catalog_uid=series)
    return ResourceLayout(path=rel, label=scan.label, scan_id=scan.scan_id, format="DICOM",
                          catalog=catalog_rel, files=tuple(writer.planted))


def _build_session_resource(session_root: Path, project: str, resource: ResourceSpec, catalogs: bool,
                            clock: _Clock) -> ResourceLayout:
    rel = f"RESOURCES/{resource.label}"
    folder = session_root / rel
    folder.mkdir(parents=True, exist_ok=True)
    writer = _ResourceWriter(folder, rel, clock, dicom=resource.format == "DICOM")
    with_catalog = catalogs and resource.catalog
    for extra in resource.files:
        writer.add_extra(extra, with_catalog)
    catalog_rel = None
    if with_catalog:
        catalog_rel = writer.write_catalog(f"{resource.label}_catalog.xml", project=project,
                                           dicom=resource.format == "DICOM", catalog_uid=None)
    return ResourceLayout(path=rel, label=resource.label, scan_id=None, format=resource.format,
                          catalog=catalog_rel, files=tuple(writer.planted))


def build_session(root: Path, session_label: str, project: str, scans: Sequence[ScanSpec], *,
                  resources: Sequence[ResourceSpec] = (), catalogs: bool = True,
                  mtime_base: float | None = DEFAULT_MTIME) -> SessionLayout:
    """Write a session mount (`root/SCANS/<id>/<LABEL>/...`, `root/RESOURCES/<label>/...`).

    `mtime_base` None leaves mtimes as the file system sets them; otherwise every file and catalog
    gets `mtime_base + n` in write order unless its spec gives an mtime.
    """
    clock = _Clock(mtime_base)
    root.mkdir(parents=True, exist_ok=True)
    layouts = [_build_scan(root, project, scan, catalogs, clock) for scan in scans]
    layouts += [_build_session_resource(root, project, r, catalogs, clock) for r in resources]
    if mtime_base is not None:
        _stamp_folders(root, mtime_base)
    return SessionLayout(root=root, project=project, session_label=session_label, resources=tuple(layouts))


def _stamp_folders(top: Path, when: float) -> None:
    """Give `top` and every folder below it the mtime `when`, so listings are reproducible too."""
    folders = [top, *(p for p in top.rglob("*") if p.is_dir() and not p.is_symlink())]
    for folder in folders:
        os.utime(folder, (when, when))


def session_root(root: Path, project: str, session_label: str) -> Path:
    """Where `build_project` puts a session: `root/<project>/arc001/<session>`."""
    return root / project / "arc001" / session_label


def build_project(root: Path, project: str, sessions: Sequence[SessionSpec], *, catalogs: bool = True,
                  mtime_base: float | None = DEFAULT_MTIME) -> ProjectLayout:
    """Write a project mount: `root/<project>/arc001/<SESSION>/SCANS/...` for each session."""
    layouts: list[SessionLayout] = []
    for index, session in enumerate(sessions):
        # Sessions get disjoint mtime ranges so "newest" is unambiguous across the project too.
        base = None if mtime_base is None else mtime_base + 100_000 * index
        layouts.append(build_session(session_root(root, project, session.label), session.label, project,
                                     session.scans, resources=session.resources, catalogs=catalogs,
                                     mtime_base=base))
    if mtime_base is not None:
        for folder in (root / project / "arc001", root / project):
            os.utime(folder, (mtime_base, mtime_base))
    return ProjectLayout(root=root, project=project, sessions=tuple(layouts))


def build_resource(folder: Path, files: Sequence[FileSpec], *, extras: Sequence[ExtraFile] = (),
                   project: str = "SYNTH", scan_id: str = "1", catalog: bool = True,
                   mtime_base: float | None = DEFAULT_MTIME) -> ResourceLayout:
    """Write a bare resource folder (the smallest mount the survey understands); paths relative to it."""
    folder.mkdir(parents=True, exist_ok=True)
    clock = _Clock(mtime_base)
    writer = _ResourceWriter(folder, "", clock)
    for fs in files:
        writer.add_file(fs, catalog)
    for extra in extras:
        writer.add_extra(extra, catalog)
    catalog_rel = None
    if catalog:
        series = files[0].instance.series_instance_uid if files else None
        catalog_rel = writer.write_catalog(f"scan_{scan_id}_catalog.xml", project=project, dicom=True,
                                           catalog_uid=series)
    if mtime_base is not None:
        _stamp_folders(folder, mtime_base)
    return ResourceLayout(path="", label=folder.name, scan_id=scan_id, format="DICOM", catalog=catalog_rel,
                          files=tuple(writer.planted))
