"""Synthetic DICOM instances: deterministic UIDs, what an instance holds, and its encoded bytes.

The same `InstanceSpec` always encodes to the same bytes; only `write_instance` and `write_bytes` touch
the file system.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

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
#: Public because the DICOMDIR in `damage` carries the same identity in its file meta.
IMPLEMENTATION_CLASS_UID = uid("synth", "implementation")
IMPLEMENTATION_VERSION_NAME = "SYNTH_1"


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
        meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
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
