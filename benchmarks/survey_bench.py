#!/usr/bin/env python3
"""Benchmark harness for ``xnat-resource-survey survey`` against peer DICOM header readers.

What it does, in one run and on the same corpora (see benchmarks/README.md):

1. Generates deterministic corpora into a cache directory (reused when present, keyed by parameters):
   - N small single-frame MR files per size in ``--sizes``, in an XNAT session (or project) mount layout,
     ~200 files per scan, 95% under XNAT's default name, 5% mismatched names, 2% duplicate copies;
   - a set of enhanced multi-frame MR files with thousands of per-frame functional group items in
     undefined-length sequences.
   One template file per corpus is built with pydicom; every other file is rendered by splicing
   per-file values into the template's bytes (no pydicom per file), with one worker per core.
2. Times, warm cache (one untimed warm-up run, then best of ``--repeat``):
   our survey on an empty folder (its start-up cost), then on every corpus our survey, gdcmscanner,
   dcmdump, and the "read 8 KB of every file" floor (Python and C); with ``--python-walker`` also our
   survey with the pure-Python element walker.
3. Prints a Markdown table (files/s, ms/file and ours' ms/file after start-up, ours/peer time ratios,
   peak RSS, CPU) and the machine (including which element walker our survey uses); ``--json``.
4. Optionally (``--mitigation``) times our ``mitigate`` on a copy of the corpus against ``cp`` of the
   affected files, and against that ``cp`` followed by ``sync -f``.

Run ``.venv/bin/python benchmarks/survey_bench.py --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import multiprocessing
import os
import platform
import random
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path("/var/tmp/xrs-bench")
GENERATOR_VERSION = 5  # bump when the corpus content changes, so that cached corpora are rebuilt

UID_ROOT = "1.2.826.0.1.3680043.8.498"  # pydicom's root; the rest of each UID is derived from the seed
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

# The tags every peer is asked for: SOPClassUID, SOPInstanceUID, StudyInstanceUID, SeriesNumber,
# InstanceNumber (everything XNAT's default name template needs).
PEER_TAGS = ("0008,0016", "0008,0018", "0020,000d", "0020,0011", "0020,0013")

# Set to 1 in our survey's environment to turn its C element walker off (container_app.survey.dicom.headers)
PURE_PYTHON_ENV = "XNAT_RESOURCE_SURVEY_PURE_PYTHON"

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------
# XNAT naming (docs: /work/shared/xnat-reference.md section 1)
# --------------------------------------------------------------------------------------------------


def java_string_hash(s: str) -> int:
    data = s.encode("utf-16-le")
    h = 0
    for (unit,) in struct.iter_unpack("<H", data):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h


def java_list_hash(values: Sequence[str]) -> int:
    h = 1
    for v in values:
        h = (31 * h + java_string_hash(v)) & 0xFFFFFFFF
    return h


def base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(digits[r])
    return "".join(reversed(out))


def xnat_default_name(study_uid: str, series_number: str, instance_number: str, sop_class: str,
                      sop_instance: str) -> str:
    """`${StudyInstanceUID}-${SeriesNumber}-${InstanceNumber}-${HashSOPClassUIDWithSOPInstanceUID}.dcm`"""
    return f"{study_uid}-{series_number}-{instance_number}-{base36(java_list_hash([sop_class, sop_instance]))}.dcm"


def xnat_legacy_name(patient_name: str, modality: str, study_description: str, series_number: str,
                     instance_number: str, study_date: str, study_time: str, sop_class: str,
                     sop_instance: str) -> str:
    """Pre-1.8.7 `SOPHashDicomFileNamer` name (carries the patient's name)."""
    h = (37 * java_string_hash(sop_instance) + java_string_hash(sop_class)) & 0xFFFFFFFF
    parts = [patient_name, modality, study_description, series_number, instance_number,
             study_date.replace(".", ""), study_time.replace(":", "").split(".")[0], base36(h)]
    safe = "".join(c if (c.isascii() and (c.isalnum() or c in "_.-")) else "_" for c in ".".join(parts))
    return safe + ".dcm"


def _self_check_naming() -> None:
    got = xnat_default_name("1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034", "4", "2", MR_STORAGE,
                            "1.3.12.2.1107.5.2.32.35177.3.2006121409365951632817982")
    assert got == "1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034-4-2-1qs88hj.dcm", got
    got = base36(java_list_hash(["9.9.9.9.9.123.456.789", "1.3.12.2.1107.5.2.32.35177.3.2006121409365951632817982"]))
    assert got == "1m0zhq7", got


def make_uid(seed: int, *parts: object) -> str:
    """Deterministic UID under UID_ROOT: a 2.25-style 128-bit integer from the seed and the parts."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=12).digest()
    return f"{UID_ROOT}.{int.from_bytes(digest, 'big') + 1}"


# --------------------------------------------------------------------------------------------------
# Byte templates: a file written once by pydicom, cut at the elements that change per file
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Var:
    name: str
    tag: int
    vr: str


def encode_element(tag: int, vr: str, value: bytes | str) -> bytes:
    """Explicit VR little endian encoding of one element (value padded to even length)."""
    raw = value.encode("ascii") if isinstance(value, str) else value
    if len(raw) % 2:
        raw += b"\0" if vr in ("UI", "OB", "UN") else b" "
    bvr = vr.encode("ascii")
    group, elem = tag >> 16, tag & 0xFFFF
    if bvr in LONG_VRS:
        return struct.pack("<HH2s2xI", group, elem, bvr, len(raw)) + raw
    return struct.pack("<HH2sH", group, elem, bvr, len(raw)) + raw


@dataclass
class Template:
    """Preamble+meta and dataset pieces; str items are variable names, bytes items are literal."""

    meta: list[bytes | str]
    body: list[bytes | str]
    vars: dict[str, Var]

    def render(self, values: dict[str, bytes | str]) -> bytes:
        meta = b"".join(p if isinstance(p, bytes) else self._enc(p, values) for p in self.meta)
        body = b"".join(p if isinstance(p, bytes) else self._enc(p, values) for p in self.body)
        group_length = encode_element(0x00020000, "UL", struct.pack("<I", len(meta)))
        return b"\0" * 128 + b"DICM" + group_length + meta + body

    def _enc(self, name: str, values: dict[str, bytes | str]) -> bytes:
        v = self.vars[name]
        return encode_element(v.tag, v.vr, values[name])


def cut_template(data: bytes, placeholders: dict[str, tuple[Var, bytes | str]]) -> Template:
    """Split pydicom output ``data`` at each placeholder element (each must occur exactly once).

    Works because every container holding a variable element has undefined length (and the file meta
    group length is recomputed on render).
    """
    assert data[128:132] == b"DICM"
    gl_tag, gl_vr, gl_len = struct.unpack_from("<I2sH", data, 132)
    assert gl_tag == 0x00000002 and gl_vr == b"UL" and gl_len == 4, "expected a file meta group length"
    meta_len = struct.unpack_from("<I", data, 140)[0]
    meta_start, body_start = 144, 144 + meta_len
    cuts: list[tuple[int, int, str]] = []
    for key, (var, value) in placeholders.items():
        enc = encode_element(var.tag, var.vr, value)
        pos = data.find(enc)
        if pos < 0 or data.find(enc, pos + 1) >= 0:
            raise RuntimeError(f"placeholder for {key} not found exactly once")
        cuts.append((pos, pos + len(enc), key))
    cuts.sort()
    meta: list[bytes | str] = []
    body: list[bytes | str] = []
    prev = meta_start
    for start, end, key in cuts:
        if start < prev:
            raise RuntimeError("overlapping placeholders")
        target = meta if start < body_start else body
        if prev < body_start <= start:  # crossing from meta into the body
            meta.append(data[prev:body_start])
            prev = body_start
        target.append(data[prev:start])
        target.append(key)
        prev = end
    if prev < body_start:
        meta.append(data[prev:body_start])
        prev = body_start
    body.append(data[prev:])
    return Template(meta=[p for p in meta if p != b""], body=[p for p in body if p != b""],
                    vars={k: v for k, (v, _) in placeholders.items()})


def _write_dataset_bytes(ds: Any) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _undefined(seq_elem: Any) -> None:
    """Mark a sequence element and all its items (recursively) as undefined length."""
    seq_elem.is_undefined_length = True
    for item in seq_elem.value:
        item.is_undefined_length_sequence_item = True
        for sub in item:
            if sub.VR == "SQ":
                _undefined(sub)


SINGLE_VARS = {
    "MediaStorageSOPInstanceUID": Var("MediaStorageSOPInstanceUID", 0x00020003, "UI"),
    "SOPInstanceUID": Var("SOPInstanceUID", 0x00080018, "UI"),
    "StudyInstanceUID": Var("StudyInstanceUID", 0x0020000D, "UI"),
    "SeriesInstanceUID": Var("SeriesInstanceUID", 0x0020000E, "UI"),
    "SeriesNumber": Var("SeriesNumber", 0x00200011, "IS"),
    "InstanceNumber": Var("InstanceNumber", 0x00200013, "IS"),
    "AccessionNumber": Var("AccessionNumber", 0x00080050, "SH"),
    "SeriesDescription": Var("SeriesDescription", 0x0008103E, "LO"),
    "ContentTime": Var("ContentTime", 0x00080033, "TM"),
    "ReferencedSOPInstanceUID": Var("ReferencedSOPInstanceUID", 0x00081155, "UI"),
    "ImagePositionPatient": Var("ImagePositionPatient", 0x00200032, "DS"),
    "SliceLocation": Var("SliceLocation", 0x00201041, "DS"),
    "Rows": Var("Rows", 0x00280010, "US"),
    "Columns": Var("Columns", 0x00280011, "US"),
    "CSAImageHeaderInfo": Var("CSAImageHeaderInfo", 0x00291010, "OB"),
    "PixelData": Var("PixelData", 0x7FE00010, "OW"),
}

PATIENT = {"PatientName": "Doe^Jane^Q", "PatientID": "BENCH-0001", "PatientBirthDate": "19700101",
           "PatientSex": "F", "PatientAge": "053Y", "StudyDate": "20230412", "StudyTime": "101530.250000",
           "StudyDescription": "Head^Brain routine"}


def build_single_frame_template() -> Template:
    from pydicom.dataset import Dataset, FileMetaDataset

    ph: dict[str, tuple[Var, bytes | str]] = {}

    def placeholder(name: str, value: bytes | str) -> bytes | str:
        ph[name] = (SINGLE_VARS[name], value)
        return value

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_STORAGE
    meta.MediaStorageSOPInstanceUID = placeholder("MediaStorageSOPInstanceUID", "9.1.1.1.1.2")  # = SOPInstanceUID
    meta.TransferSyntaxUID = EXPLICIT_VR_LE
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "XRS_BENCH_1"
    meta.SourceApplicationEntityTitle = "MRC35177"

    ds = Dataset()
    ds.file_meta = meta
    # SOP common + general study/series/equipment/image
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]
    ds.InstanceCreationDate = "20230412"
    ds.InstanceCreationTime = "102011.128000"
    ds.SOPClassUID = MR_STORAGE
    ds.SOPInstanceUID = placeholder("SOPInstanceUID", "9.1.1.1.1.2")
    ds.StudyDate = PATIENT["StudyDate"]
    ds.SeriesDate = "20230412"
    ds.AcquisitionDate = "20230412"
    ds.ContentDate = "20230412"
    ds.StudyTime = PATIENT["StudyTime"]
    ds.SeriesTime = "101802.531000"
    ds.AcquisitionTime = "101750.947500"
    ds.ContentTime = placeholder("ContentTime", "235959.987654")
    ds.AccessionNumber = placeholder("AccessionNumber", "PH-ACC-0000")
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.InstitutionName = "Bench University Hospital"
    ds.InstitutionAddress = "1 Synthetic Road, Nowhere 00000"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StationName = "MRC35177"
    ds.StudyDescription = PATIENT["StudyDescription"]
    ds.SeriesDescription = placeholder("SeriesDescription", "PH-SERIES-DESCRIPTION")
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = "Jones^Mary"
    ds.OperatorsName = "Tech^Alex"
    ds.ManufacturerModelName = "TrioTim"
    ref = Dataset()
    ref.ReferencedSOPClassUID = MR_STORAGE
    ref.ReferencedSOPInstanceUID = placeholder("ReferencedSOPInstanceUID", "9.1.1.1.1.3")
    ds.ReferencedImageSequence = [ref]
    # patient
    ds.PatientName = PATIENT["PatientName"]
    ds.PatientID = PATIENT["PatientID"]
    ds.PatientBirthDate = PATIENT["PatientBirthDate"]
    ds.PatientSex = PATIENT["PatientSex"]
    ds.PatientAge = PATIENT["PatientAge"]
    ds.PatientSize = "1.68"
    ds.PatientWeight = "61.0"
    # MR acquisition
    ds.ScanningSequence = ["SE", "IR"]
    ds.SequenceVariant = ["SK", "SP", "MP"]
    ds.ScanOptions = "IR"
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = "*tir2d1_15"
    ds.AngioFlag = "N"
    ds.SliceThickness = "5"
    ds.RepetitionTime = "9000"
    ds.EchoTime = "93"
    ds.InversionTime = "2500"
    ds.NumberOfAverages = "1"
    ds.ImagingFrequency = "123.252349"
    ds.ImagedNucleus = "1H"
    ds.EchoNumbers = "1"
    ds.MagneticFieldStrength = "3"
    ds.SpacingBetweenSlices = "6.5"
    ds.NumberOfPhaseEncodingSteps = "192"
    ds.EchoTrainLength = "15"
    ds.PercentSampling = "100"
    ds.PercentPhaseFieldOfView = "75"
    ds.PixelBandwidth = "190"
    ds.DeviceSerialNumber = "35177"
    ds.SoftwareVersions = "syngo MR B17"
    ds.ProtocolName = "t2_tirm_tra_dark-fluid"
    ds.TransmitCoilName = "Body"
    ds.AcquisitionMatrix = [0, 256, 192, 0]
    ds.InPlanePhaseEncodingDirection = "ROW"
    ds.FlipAngle = "150"
    ds.VariableFlipAngleFlag = "N"
    ds.SAR = "1.6047"
    ds.dBdt = "0"
    ds.PatientPosition = "HFS"
    # relationship / plane
    ds.StudyInstanceUID = placeholder("StudyInstanceUID", "9.1.1.1.1.4")
    ds.SeriesInstanceUID = placeholder("SeriesInstanceUID", "9.1.1.1.1.5")
    ds.StudyID = "1"
    ds.SeriesNumber = placeholder("SeriesNumber", "999901")
    ds.AcquisitionNumber = "1"
    ds.InstanceNumber = placeholder("InstanceNumber", "999902")
    ds.ImagePositionPatient = placeholder("ImagePositionPatient", "-999.5\\-999.5\\-999.5")
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99.1"
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = placeholder("SliceLocation", "-999.25")
    # image pixel
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 0  # placeholders set below
    ds.Columns = 0
    ds.PixelSpacing = [0.8984375, 0.8984375]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.SmallestImagePixelValue = 0
    ds.LargestImagePixelValue = 4095
    ds.WindowCenter = "529"
    ds.WindowWidth = "1119"
    ds.WindowCenterWidthExplanation = "Algo1"
    # private tags (Siemens-like)
    blk19 = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    blk19.add_new(0x08, "CS", "IMAGE NUM 4")
    blk19.add_new(0x09, "LO", "1.0")
    blk19.add_new(0x0B, "DS", "40")
    blk19.add_new(0x0F, "SH", "Fast")
    blk19.add_new(0x12, "SL", [0, 0, 1050])
    blk19.add_new(0x13, "SL", [0, 0, 1050])
    blk29 = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    blk29.add_new(0x08, "CS", "IMAGE NUM 4")
    blk29.add_new(0x09, "LO", "20230412")
    csa = placeholder("CSAImageHeaderInfo", b"SV10\x04\x03\x02\x01PHCSA1234567")
    blk29.add_new(0x10, "OB", csa)
    blk29.add_new(0x18, "CS", "MR")
    blk29.add_new(0x19, "LO", "20230412")
    # Rows/Columns are US: the placeholders are their encoded 2-byte values, made unique below
    ph["Rows"] = (SINGLE_VARS["Rows"], struct.pack("<H", 0xFE01))
    ph["Columns"] = (SINGLE_VARS["Columns"], struct.pack("<H", 0xFE02))
    ds.Rows = 0xFE01
    ds.Columns = 0xFE02
    pixel = b"\xA5\x5A" * 8 + b"PHPIXELDATA!"
    ph["PixelData"] = (SINGLE_VARS["PixelData"], pixel)
    ds.PixelData = pixel
    ds["PixelData"].VR = "OW"
    _undefined(ds["ReferencedImageSequence"])
    return cut_template(_write_dataset_bytes(ds), ph)


MULTI_VARS = {
    k: SINGLE_VARS[k]
    for k in ("MediaStorageSOPInstanceUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
              "SeriesNumber", "InstanceNumber")
}


def build_multiframe_template(frames: int) -> Template:
    from pydicom.dataset import Dataset, FileMetaDataset

    ph: dict[str, tuple[Var, bytes | str]] = {}

    def placeholder(name: str, value: str) -> str:
        ph[name] = (MULTI_VARS[name], value)
        return value

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENHANCED_MR_STORAGE
    meta.MediaStorageSOPInstanceUID = placeholder("MediaStorageSOPInstanceUID", "9.2.1.1.1.2")  # = SOPInstanceUID
    meta.TransferSyntaxUID = EXPLICIT_VR_LE
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
    meta.ImplementationVersionName = "XRS_BENCH_1"

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.InstanceCreationDate = "20230412"
    ds.InstanceCreationTime = "102011.128000"
    ds.SOPClassUID = ENHANCED_MR_STORAGE
    ds.SOPInstanceUID = placeholder("SOPInstanceUID", "9.2.1.1.1.2")
    ds.StudyDate = PATIENT["StudyDate"]
    ds.ContentDate = "20230412"
    ds.StudyTime = PATIENT["StudyTime"]
    ds.ContentTime = "102011.128000"
    ds.AcquisitionDateTime = "20230412101750.947500"
    ds.AccessionNumber = "ACC-MF"
    ds.Modality = "MR"
    ds.Manufacturer = "Philips"
    ds.InstitutionName = "Bench University Hospital"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StationName = "PHILIPS-MR1"
    ds.StudyDescription = PATIENT["StudyDescription"]
    ds.SeriesDescription = "fMRI bold 5000 dyn"
    ds.ManufacturerModelName = "Ingenia"
    ds.PatientName = PATIENT["PatientName"]
    ds.PatientID = PATIENT["PatientID"]
    ds.PatientBirthDate = PATIENT["PatientBirthDate"]
    ds.PatientSex = PATIENT["PatientSex"]
    ds.DeviceSerialNumber = "45021"
    ds.SoftwareVersions = ["5.6.1", "5.6.1.2"]
    ds.ProtocolName = "fMRI_bold"
    ds.StudyInstanceUID = placeholder("StudyInstanceUID", "9.2.1.1.1.4")
    ds.SeriesInstanceUID = placeholder("SeriesInstanceUID", "9.2.1.1.1.5")
    ds.StudyID = "1"
    ds.SeriesNumber = placeholder("SeriesNumber", "999901")
    ds.InstanceNumber = placeholder("InstanceNumber", "999902")
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99.2"
    ds.PositionReferenceIndicator = ""
    ds.ContentQualification = "PRODUCT"
    ds.ImageComments = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = str(frames)
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"

    dim_org = Dataset()
    dim_org.DimensionOrganizationUID = "1.2.826.0.1.3680043.8.498.99.3"
    ds.DimensionOrganizationSequence = [dim_org]
    dims = []
    for pointer, group in ((0x00209056, 0x00209111), (0x00209057, 0x00209111), (0x00200100, 0x00209111)):
        d = Dataset()
        d.DimensionOrganizationUID = "1.2.826.0.1.3680043.8.498.99.3"
        d.DimensionIndexPointer = pointer
        d.FunctionalGroupPointer = group
        dims.append(d)
    ds.DimensionIndexSequence = dims

    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = [3.0, 3.0]
    pm.SliceThickness = "3"
    pm.SpacingBetweenSlices = "3.3"
    shared.PixelMeasuresSequence = [pm]
    po = Dataset()
    po.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [po]
    ft = Dataset()
    ft.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ft.PixelPresentation = "MONOCHROME"
    ft.VolumetricProperties = "VOLUME"
    ft.VolumeBasedCalculationTechnique = "NONE"
    ft.ComplexImageComponent = "MAGNITUDE"
    ft.AcquisitionContrast = "T2"
    shared.MRImageFrameTypeSequence = [ft]
    ds.SharedFunctionalGroupsSequence = [shared]

    per_frame = []
    slices = 40
    for f in range(frames):
        item = Dataset()
        fc = Dataset()
        fc.FrameAcquisitionNumber = f // slices + 1
        t = 10 * 3600 + 17 * 60 + 50 + 2 * (f // slices)  # one volume every 2 s from 10:17:50
        fc.FrameReferenceDateTime = (f"20230412{t // 3600:02d}{t // 60 % 60:02d}{t % 60:02d}"
                                     f".{50 * (f % slices):06d}")
        fc.FrameAcquisitionDateTime = fc.FrameReferenceDateTime
        fc.FrameAcquisitionDuration = 2000.0
        fc.StackID = "1"
        fc.InStackPositionNumber = f % slices + 1
        fc.TemporalPositionIndex = f // slices + 1
        fc.DimensionIndexValues = [1, f % slices + 1, f // slices + 1]
        item.FrameContentSequence = [fc]
        pp = Dataset()
        pp.ImagePositionPatient = ["-120.0", "-96.0", f"{-60.0 + 3.3 * (f % slices):.1f}"]
        item.PlanePositionSequence = [pp]
        voi = Dataset()
        voi.WindowCenter = "600"
        voi.WindowWidth = "1200"
        item.FrameVOILUTSequence = [voi]
        pvt = Dataset()
        pvt.RescaleIntercept = "0"
        pvt.RescaleSlope = "1.52"
        pvt.RescaleType = "US"
        item.PixelValueTransformationSequence = [pvt]
        echo = Dataset()
        echo.EffectiveEchoTime = 30.0
        item.MREchoSequence = [echo]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.PixelData = bytes(2 * 2 * 2 * frames)
    ds["PixelData"].VR = "OW"
    for kw in ("DimensionOrganizationSequence", "DimensionIndexSequence", "SharedFunctionalGroupsSequence",
               "PerFrameFunctionalGroupsSequence"):
        _undefined(ds[kw])
    return cut_template(_write_dataset_bytes(ds), ph)


# --------------------------------------------------------------------------------------------------
# Corpus generation
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SingleParams:
    files: int
    files_per_scan: int = 200
    mismatch_ratio: float = 0.05
    duplicate_ratio: float = 0.02
    layout: str = "session"  # session | project
    scans_per_session: int = 10  # project layout only
    catalogs: bool = True
    seed: int = 20240601
    version: int = GENERATOR_VERSION

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def dirname(self) -> str:
        return f"single-{self.files}-{self.layout}-{self.key()}"


@dataclass(frozen=True)
class MultiParams:
    files: int = 200
    frames: int = 5000
    catalogs: bool = True
    seed: int = 20240601
    version: int = GENERATOR_VERSION

    def key(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def dirname(self) -> str:
        return f"multiframe-{self.files}x{self.frames}-{self.key()}"


@dataclass
class ScanJob:
    rel_dir: str  # directory of the scan's DICOM resource, relative to the corpus root
    session: int
    scan: int
    # (instance number, naming kind: "default" | "legacy" | "im", has a duplicate copy)
    instances: list[tuple[int, str, bool]]


@dataclass
class ScanResult:
    files: int = 0
    bytes: int = 0
    header_bytes: int = 0
    min_header: int = 1 << 30
    max_header: int = 0
    mismatched: int = 0
    duplicate_groups: int = 0
    affected: list[str] = field(default_factory=list)  # relative paths of mismatched and duplicate files


_TEMPLATE: Template | None = None
_MULTI_TEMPLATE: Template | None = None
_MULTI_FRAMES = 0


def _init_worker(template: Template | None, multi: Template | None, frames: int) -> None:
    global _TEMPLATE, _MULTI_TEMPLATE, _MULTI_FRAMES
    _TEMPLATE, _MULTI_TEMPLATE, _MULTI_FRAMES = template, multi, frames


CATALOG_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<cat:DCMCatalog UID="{uid}" xmlns:cat="http://nrg.wustl.edu/catalog" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n<cat:entries>\n'
)
CATALOG_ENTRY = (
    '\t<cat:entry ID="{name}" UID="{uid}" URI="{name}" format="DICOM" instanceNumber="{inst}" '
    'xsi:type="cat:dcmEntry"/>\n'
)
CATALOG_TAIL = "</cat:entries>\n</cat:DCMCatalog>\n"

FIXED_MTIME_NS = 1_681_300_000 * 10**9  # 2023-04-12; duplicates' original copies are one day newer


def _write_file(path: str, data: bytes, mtime_ns: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.utime(fd, ns=(mtime_ns, mtime_ns))
    finally:
        os.close(fd)


def _single_scan(args: tuple[str, ScanJob, int, bool]) -> ScanResult:
    root, job, seed, catalogs = args
    assert _TEMPLATE is not None
    out = ScanResult()
    d = os.path.join(root, job.rel_dir)
    os.makedirs(d, exist_ok=True)
    rng = random.Random(f"{seed}-scan-{job.session}-{job.scan}")
    study_uid = make_uid(seed, "study", job.session)
    series_uid = make_uid(seed, "series", job.session, job.scan)
    series_number = str(job.scan)
    side = (16, 32, 48, 64)[job.scan % 4]
    pixel = bytes(rng.getrandbits(8) & (0xFF if i % 2 == 0 else 0x0F) for i in range(side * side * 2))
    csa_len = 500 + (job.scan * 977) % 5000
    csa = b"SV10\x04\x03\x02\x01" + rng.randbytes(csa_len)
    localizer = make_uid(seed, "localizer", job.session)
    entries: list[str] = []
    header_size = 0
    for inst, kind, dup in job.instances:
        sop = make_uid(seed, "sop", job.session, job.scan, inst)
        z = -60.0 + 6.5 * ((inst - 1) % 24)  # stacks of 24 slices
        values: dict[str, bytes | str] = {
            "MediaStorageSOPInstanceUID": sop,
            "SOPInstanceUID": sop,
            "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": series_uid,
            "SeriesNumber": series_number,
            "InstanceNumber": str(inst),
            "AccessionNumber": f"ACC{job.session:07d}",
            "SeriesDescription": f"t2_tirm_tra_dark-fluid scan {job.scan}",
            "ContentTime": f"1020{inst % 60:02d}.{inst * 137 % 1000:03d}000",
            "ReferencedSOPInstanceUID": localizer,
            "ImagePositionPatient": f"-115.24\\-131.79\\{z:.4g}",
            "SliceLocation": f"{z:.4g}",
            "Rows": struct.pack("<H", side),
            "Columns": struct.pack("<H", side),
            "CSAImageHeaderInfo": csa,
            "PixelData": pixel,
        }
        data = _TEMPLATE.render(values)
        header_size = len(data) - len(pixel) - 12
        expected = xnat_default_name(study_uid, series_number, str(inst), MR_STORAGE, sop)
        legacy = xnat_legacy_name(PATIENT["PatientName"], "MR", PATIENT["StudyDescription"], series_number,
                                  str(inst), PATIENT["StudyDate"], PATIENT["StudyTime"], MR_STORAGE, sop)
        name = {"default": expected, "legacy": legacy, "im": f"IM{inst:04d}"}[kind]
        _write_file(os.path.join(d, name), data, FIXED_MTIME_NS + (86_400 * 10**9 if dup else 0))
        entries.append(CATALOG_ENTRY.format(name=name, uid=sop, inst=inst))
        out.files += 1
        out.bytes += len(data)
        if kind != "default":
            out.mismatched += 1
            out.affected.append(f"{job.rel_dir}/{name}")
        if dup:
            copy = legacy if kind == "default" else f"{inst}.dcm"
            _write_file(os.path.join(d, copy), data, FIXED_MTIME_NS)
            entries.append(CATALOG_ENTRY.format(name=copy, uid=sop, inst=inst))
            out.files += 1
            out.bytes += len(data)
            out.duplicate_groups += 1
            out.affected += [f"{job.rel_dir}/{name}", f"{job.rel_dir}/{copy}"]
        out.header_bytes += header_size * (2 if dup else 1)
        out.min_header = min(out.min_header, header_size)
        out.max_header = max(out.max_header, header_size)
    if catalogs:
        with open(os.path.join(d, f"scan_{job.scan}_catalog.xml"), "w", encoding="utf-8") as fh:
            fh.write(CATALOG_HEAD.format(uid=series_uid) + "".join(entries) + CATALOG_TAIL)
    return out


def plan_single(p: SingleParams) -> list[ScanJob]:
    """Decide, deterministically, which instance lands where and under which name."""
    dups = round(p.files * p.duplicate_ratio)
    unique = p.files - dups
    mismatches = round(p.files * p.mismatch_ratio)
    rng = random.Random(p.seed)
    order = list(range(unique))
    rng.shuffle(order)
    kind = ["default"] * unique
    has_dup = [False] * unique
    for i in order[:mismatches]:
        kind[i] = "legacy" if rng.random() < 0.6 else "im"
    for i in order[mismatches:mismatches + dups]:
        has_dup[i] = True
    jobs: list[ScanJob] = []
    per = p.files_per_scan
    for scan_idx, start in enumerate(range(0, unique, per)):
        if p.layout == "project":
            session, scan = divmod(scan_idx, p.scans_per_session)
            rel = f"BENCH/arc001/SESS{session + 1:04d}/SCANS/{scan + 1}/DICOM"
            scan += 1
        else:
            session, scan = 0, scan_idx + 1
            rel = f"SCANS/{scan}/DICOM"
        instances = [(i - start + 1, kind[i], has_dup[i]) for i in range(start, min(start + per, unique))]
        jobs.append(ScanJob(rel, session + 1, scan, instances))
    return jobs


def _multi_file(args: tuple[str, int, int]) -> ScanResult:
    root, idx, seed = args
    assert _MULTI_TEMPLATE is not None
    scan = idx + 1
    rel = f"SCANS/{scan}/DICOM"
    d = os.path.join(root, rel)
    os.makedirs(d, exist_ok=True)
    study_uid = make_uid(seed, "mf-study")
    series_uid = make_uid(seed, "mf-series", scan)
    sop = make_uid(seed, "mf-sop", scan)
    data = _MULTI_TEMPLATE.render({
        "MediaStorageSOPInstanceUID": sop, "SOPInstanceUID": sop, "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid, "SeriesNumber": str(scan), "InstanceNumber": "1",
    })
    name = xnat_default_name(study_uid, str(scan), "1", ENHANCED_MR_STORAGE, sop)
    _write_file(os.path.join(d, name), data, FIXED_MTIME_NS)
    header = len(data) - 2 * 2 * 2 * _MULTI_FRAMES - 12
    return ScanResult(files=1, bytes=len(data), header_bytes=header, min_header=header, max_header=header)


def _write_catalogs_multi(root: Path, p: MultiParams) -> None:
    for idx in range(p.files):
        scan = idx + 1
        d = root / f"SCANS/{scan}/DICOM"
        study_uid = make_uid(p.seed, "mf-study")
        sop = make_uid(p.seed, "mf-sop", scan)
        name = xnat_default_name(study_uid, str(scan), "1", ENHANCED_MR_STORAGE, sop)
        (d / f"scan_{scan}_catalog.xml").write_text(
            CATALOG_HEAD.format(uid=make_uid(p.seed, "mf-series", scan))
            + CATALOG_ENTRY.format(name=name, uid=sop, inst=1) + CATALOG_TAIL, encoding="utf-8")


def _merge(results: Sequence[ScanResult]) -> ScanResult:
    total = ScanResult()
    for r in results:
        total.files += r.files
        total.bytes += r.bytes
        total.header_bytes += r.header_bytes
        total.min_header = min(total.min_header, r.min_header)
        total.max_header = max(total.max_header, r.max_header)
        total.mismatched += r.mismatched
        total.duplicate_groups += r.duplicate_groups
        total.affected += r.affected
    return total


@dataclass
class Corpus:
    kind: str  # "single" | "multiframe"
    root: Path
    params: dict[str, Any]
    manifest: dict[str, Any]
    generation_s: float | None  # None when reused from the cache

    @property
    def files(self) -> int:
        return int(self.manifest["dicom_files"])


def _pool(n_jobs: int, template: Template | None, multi: Template | None, frames: int = 0) -> Any:
    ctx = multiprocessing.get_context("fork")
    return ctx.Pool(n_jobs, initializer=_init_worker, initargs=(template, multi, frames))


def _cached_corpus(kind: str, final: Path, params: dict[str, Any]) -> Corpus | None:
    """A corpus generated earlier with the same parameters, if its manifest says it is complete."""
    manifest_path = final / "manifest.json"
    if not manifest_path.is_file():
        return None
    manifest = json.loads(manifest_path.read_text())
    log(f"reusing corpus {final} ({manifest['dicom_files']} files)")
    return Corpus(kind, final / "root", params, manifest, None)


def _staging(workdir: Path, dirname: str) -> tuple[Path, Path]:
    """A hidden folder beside the corpus's final place, and the `root` inside it to generate into."""
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dirname}.", dir=workdir))
    root = tmp / "root"
    root.mkdir()
    return tmp, root


def _publish(tmp: Path, final: Path, manifest: dict[str, Any], affected: Sequence[str]) -> None:
    """Write the manifest and the affected list, then move the finished corpus into place in one rename."""
    (tmp / "affected.txt").write_text("".join(a + "\n" for a in affected))
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    try:
        tmp.rename(final)
    except OSError:  # someone else generated it concurrently
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_single(workdir: Path, p: SingleParams, jobs: int) -> Corpus:
    final = workdir / p.dirname()
    cached = _cached_corpus("single", final, asdict(p))
    if cached is not None:
        return cached
    log(f"generating {p.files} single-frame files into {final} ...")
    t0 = time.perf_counter()
    tmp, root = _staging(workdir, p.dirname())
    template = build_single_frame_template()
    plan = plan_single(p)
    with _pool(jobs, template, None) as pool:
        results = pool.map(_single_scan, [(str(root), j, p.seed, p.catalogs) for j in plan], chunksize=1)
    total = _merge(results)
    elapsed = time.perf_counter() - t0
    manifest = {
        "params": asdict(p),
        "dicom_files": total.files,
        "instances": total.files - total.duplicate_groups,
        "scans": len(plan),
        "catalogs": len(plan) if p.catalogs else 0,
        "bytes": total.bytes,
        "header_bytes_mean": round(total.header_bytes / max(total.files, 1)),
        "header_bytes_min": total.min_header,
        "header_bytes_max": total.max_header,
        "expected": {
            "totalMismatchedFiles": total.mismatched,
            "totalDuplicates": total.duplicate_groups,
            "totalFilesInDuplicates": 2 * total.duplicate_groups,
            "totalBadFiles": 0,
            "totalNonActionableDuplicates": 0,
        },
        "generation_s": round(elapsed, 2),
    }
    _publish(tmp, final, manifest, total.affected)
    log(f"generated {total.files} files ({total.bytes / 2**20:.0f} MiB) in {elapsed:.1f} s")
    return Corpus("single", final / "root", asdict(p), manifest, elapsed)


def ensure_multi(workdir: Path, p: MultiParams, jobs: int) -> Corpus:
    final = workdir / p.dirname()
    cached = _cached_corpus("multiframe", final, asdict(p))
    if cached is not None:
        return cached
    log(f"generating {p.files} enhanced multi-frame files ({p.frames} frames) into {final} ...")
    t0 = time.perf_counter()
    tmp, root = _staging(workdir, p.dirname())
    template = build_multiframe_template(p.frames)
    t_template = time.perf_counter() - t0
    with _pool(jobs, None, template, p.frames) as pool:
        results = pool.map(_multi_file, [(str(root), i, p.seed) for i in range(p.files)], chunksize=4)
    if p.catalogs:
        _write_catalogs_multi(root, p)
    total = _merge(results)
    elapsed = time.perf_counter() - t0
    manifest = {
        "params": asdict(p),
        "dicom_files": total.files,
        "instances": total.files,
        "scans": p.files,
        "catalogs": p.files if p.catalogs else 0,
        "bytes": total.bytes,
        "file_bytes": round(total.bytes / max(total.files, 1)),
        "header_bytes_mean": total.max_header,
        "expected": {"totalMismatchedFiles": 0, "totalDuplicates": 0, "totalFilesInDuplicates": 0,
                     "totalBadFiles": 0, "totalNonActionableDuplicates": 0},
        "template_s": round(t_template, 2),
        "generation_s": round(elapsed, 2),
    }
    _publish(tmp, final, manifest, ())
    log(f"generated {total.files} files ({total.bytes / 2**20:.0f} MiB) in {elapsed:.1f} s "
        f"(template {t_template:.1f} s)")
    return Corpus("multiframe", final / "root", asdict(p), manifest, elapsed)


# --------------------------------------------------------------------------------------------------
# Measuring a command
# --------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int] | None:
    """Direct children via /proc/PID/task/TID/children (None when the kernel lacks that file)."""
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                out += [int(x) for x in fh.read().split()]
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}/task/{tid}"):
                continue  # the thread ended meanwhile
            return None
        except OSError:
            continue
    return out


def _descendants_by_scan(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: fields start after the last ')'
        fields = stat[stat.rfind(b")") + 2:].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _descendants(root_pid: int) -> list[int]:
    out, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        out.append(pid)
        kids = _children(pid)
        if kids is None:
            return _descendants_by_scan(root_pid)
        todo += kids
    return out


def _mem_kib(pid: int) -> int:
    """Proportional set size (shared pages split between sharers) when available, else RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except OSError:
        return 0


class TreeSampler(threading.Thread):
    """Samples the summed memory (PSS) of a process tree: workers forked by our survey included."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak_kib, self.max_procs = pid, interval, 0, 0
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            pids = _descendants(self.pid)
            self.max_procs = max(self.max_procs, len(pids))
            self.peak_kib = max(self.peak_kib, sum(_mem_kib(p) for p in pids))
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join()


GNU_TIME = "/usr/bin/time"


@dataclass
class RunResult:
    seconds: float
    returncode: int
    maxrss_kib: int  # largest single process of the tree (GNU time %M, else wait4 rusage)
    cpu_s: float  # user + system of the tree (waited-for descendants included)
    tree_peak_kib: int | None = None  # sampled summed PSS of the tree (only when sampling)
    stderr_tail: str = ""
    foreign_cpu_s: float | None = None  # CPU used meanwhile by processes outside the tree (machine busy?)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _busy_cpu_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat)."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    guest = sum(fields[8:10]) if len(fields) > 9 else 0  # already counted in user/nice
    return (sum(fields) - idle - guest) / _CLK_TCK


def run_measured(cmd: Sequence[str], *, stdout: Any = subprocess.DEVNULL, sample_tree: bool = False,
                 env: dict[str, str] | None = None, cwd: str | Path | None = None,
                 stdin_data: bytes | None = None) -> RunResult:
    """Run ``cmd``; wall time, exit code, peak RSS of its largest process, CPU of the whole tree.

    The command runs under GNU time when available: Linux folds the RSS of the pre-exec image into
    ru_maxrss, so a child forked straight from this (large) Python process would report at least our own
    RSS. GNU time is small, so the %M it reports for its child is the command's own.
    """
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *cmd] if USE_GNU_TIME else list(cmd)
        busy0 = _busy_cpu_s()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=stdout, stderr=err, env=env, cwd=cwd,
                                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
        sampler = TreeSampler(proc.pid) if sample_tree else None
        if sampler:
            sampler.start()
        if stdin_data is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin_data)
            proc.stdin.close()
        _, status, ru = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        busy1 = _busy_cpu_s()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if sampler:
            sampler.stop()
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
        maxrss = ru.ru_maxrss
        if USE_GNU_TIME:
            text = rss.read().split()
            # GNU time also writes "Command exited with non-zero status N" before the figure
            if text and text[-1].isdigit():
                maxrss = int(text[-1])
    cpu = ru.ru_utime + ru.ru_stime
    foreign = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu)
    return RunResult(elapsed, proc.returncode, maxrss, cpu, sampler.peak_kib if sampler else None, tail,
                     foreign)


def wait_quiet(limit_s: float, threshold: float = 0.10) -> None:
    """Wait (up to limit_s) until the machine's CPUs are less than ``threshold`` busy over one second."""
    if limit_s <= 0:
        return
    cores = len(os.sched_getaffinity(0))
    deadline = time.monotonic() + limit_s
    share = 1.0
    while time.monotonic() < deadline:
        b0 = _busy_cpu_s()
        time.sleep(1.0)
        b1 = _busy_cpu_s()
        if b0 is None or b1 is None:
            return
        share = (b1 - b0) / cores
        if share < threshold:
            return
    log(f"machine still busy ({100 * share:.0f}% of the CPUs) after waiting {limit_s:g} s: measuring anyway")


def _busy_note(runs: Sequence[RunResult], best: RunResult) -> str | None:
    """Say so when other processes took a noticeable share of the CPUs while we measured."""
    cores = len(os.sched_getaffinity(0))

    def share_of(r: RunResult) -> float:
        foreign = r.foreign_cpu_s or 0.0
        # /proc/stat counts in clock ticks (10 ms): ignore a few stray ticks on very short runs
        return 0.0 if foreign < 5 / _CLK_TCK else foreign / max(r.seconds * cores, 1e-9)

    worst = max(share_of(r) for r in runs)
    share = share_of(best)
    if share >= 0.10:
        return (f"BUSY MACHINE: other processes used {100 * share:.0f}% of the CPUs during the best run "
                f"(up to {100 * worst:.0f}% during the others)")
    if worst >= 0.10:
        return f"best run quiet; others disturbed (up to {100 * worst:.0f}% of the CPUs used by other processes)"
    return None


def _gnu_time_works() -> bool:
    if not os.access(GNU_TIME, os.X_OK):
        return False
    with tempfile.NamedTemporaryFile("r") as fh:
        r = subprocess.run([GNU_TIME, "-q", "-f", "%M", "-o", fh.name, "true"], capture_output=True)
        return r.returncode == 0 and fh.read().strip().isdigit()


USE_GNU_TIME = _gnu_time_works()


# --------------------------------------------------------------------------------------------------
# Tools under test
# --------------------------------------------------------------------------------------------------

FLOOR_PY = r"""
import os, sys
def walk(d):
    with os.scandir(d) as it:
        for e in it:
            if e.is_dir(follow_symlinks=False):
                yield from walk(e.path)
            elif e.is_file(follow_symlinks=False):
                yield e.path
n = 0
for p in walk(sys.argv[1]):
    fd = os.open(p, os.O_RDONLY)
    os.read(fd, 8192)
    os.close(fd)
    n += 1
print(n)
"""


@dataclass
class Tool:
    name: str
    label: str
    cmd_for: Any  # (corpus root, output dir) -> list[str]
    available: bool = True
    why_missing: str = ""
    shell: bool = False
    validate: Any = None  # (stdout text, corpus) -> str | None (problem)
    is_ours: bool = False
    env: dict[str, str] | None = None  # None: our environment for ours, the harness's for peers


def _validate_gdcm(text: str, corpus: Corpus) -> str | None:
    readable = text.count("(could be read)")
    uids = text.count("(0008,0018) -> [")
    want = corpus.files
    problems = []
    if readable < want:
        problems.append(f"only {readable}/{want} files reported 'could be read'")
    if uids < want:
        problems.append(f"only {uids}/{want} files listed a SOPInstanceUID")
    return "; ".join(problems) or None


def _validate_dcmdump(text: str, corpus: Corpus) -> str | None:
    uids = text.count("(0008,0018) UI [")
    classes = text.count("(0008,0016) UI [")
    # the enhanced files' per-frame items contain none of the searched tags, so exactly one each
    if uids < corpus.files or classes < corpus.files:
        return f"SOPInstanceUID printed for {uids}, SOPClassUID for {classes} of {corpus.files} files"
    return None


def _validate_count(text: str, corpus: Corpus) -> str | None:
    try:
        n = int(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return f"unexpected output {text[-200:]!r}"
    return None if n >= corpus.files else f"read {n} files, expected at least {corpus.files}"


def _which(name: str) -> str | None:
    return shutil.which(name)


def install_peers(packages: Sequence[str]) -> None:
    log(f"installing {' '.join(packages)} with apt-get ...")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        r = subprocess.run([*sudo, "apt-get", "update"], env=env, capture_output=True, text=True)
        r = subprocess.run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", *packages], env=env,
                           capture_output=True, text=True)
    if r.returncode != 0:
        log(f"apt-get failed (rc={r.returncode}): {r.stderr.strip()[-500:]}")


def ours_command(venv: Path) -> tuple[list[str] | None, dict[str, str], str]:
    """How to run our CLI, its environment, and a reason when it cannot run."""
    py = venv / "bin" / "python"
    if not py.exists():
        return None, {}, f"no Python in venv {venv}"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env.pop("PYTHONHASHSEED", None)
    probe = subprocess.run([str(py), "-c", "import container_app.cli.main"], env=env, capture_output=True,
                           text=True, cwd=REPO)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return None, env, f"container_app.cli.main is not importable with {py} ({last})"
    script = venv / "bin" / "xnat-resource-survey"
    if script.exists():
        return [str(script)], env, ""
    return [str(py), "-m", "container_app"], env, ""


def build_tools(args: argparse.Namespace) -> tuple[list[Tool], dict[str, str]]:
    wanted = set(args.peers.split(",")) if args.peers else None
    want_install = args.install or (os.environ.get("CI", "").lower() == "true")
    missing_pkgs = []
    if not _which("gdcmscanner"):
        missing_pkgs.append("libgdcm-tools")
    if not _which("dcmdump"):
        missing_pkgs.append("dcmtk")
    if missing_pkgs and want_install:
        install_peers(missing_pkgs)

    ours_cmd, ours_env, why = ours_command(Path(args.venv))
    extra = shlex.split(args.ours_args) if args.ours_args else []
    tools: list[Tool] = []
    if not args.skip_ours:
        tools.append(Tool(
            "ours", "xnat-resource-survey survey",
            lambda root, out: [*(ours_cmd or []), "survey", str(root), "--output", str(out), "--all-resources",
                               "--log-format", "json", *extra],
            available=ours_cmd is not None, why_missing=why, is_ours=True))
        if args.python_walker:
            tools.append(replace(tools[0], name="ours-python", label="ours (pure-Python walker)",
                                 env={**ours_env, PURE_PYTHON_ENV: "1"}))
    tags_g = [x for t in PEER_TAGS for x in ("-t", t)]
    tags_d = [x for t in PEER_TAGS for x in ("+P", t)]
    gdcm_ok = _which("gdcmscanner") is not None
    dcmdump_ok = _which("dcmdump") is not None
    tools += [
        Tool("gdcmscanner", "gdcmscanner -r -p (5 tags)",
             lambda root, out: ["gdcmscanner", "-d", str(root), "-r", "-p", *tags_g],
             gdcm_ok, "gdcmscanner not found: apt-get install -y libgdcm-tools (or run with --install)",
             validate=_validate_gdcm),
        Tool("dcmdump", "dcmdump +sd +r -M +P (5 tags)",
             lambda root, out: ["dcmdump", "-q", "-Un", "-M", "+sd", "+r", *tags_d, str(root)],
             dcmdump_ok, "dcmdump not found: apt-get install -y dcmtk (or run with --install)",
             validate=_validate_dcmdump),
        Tool("dcmdump-stop", "dcmdump ... +st 0020,0013 (stop after InstanceNumber)",
             lambda root, out: ["dcmdump", "-q", "-Un", "-M", "+sd", "+r", "+st", "0020,0013", *tags_d, str(root)],
             dcmdump_ok, "dcmdump not found: apt-get install -y dcmtk (or run with --install)",
             validate=_validate_dcmdump),
        Tool("floor-py", "floor: os.open/os.read 8 KB per file (Python, 1 process)",
             lambda root, out: [sys.executable, "-c", FLOOR_PY, str(root)], validate=_validate_count),
        Tool("floor-head", "floor: find | xargs head -c 8192 (C, 1 process)",
             lambda root, out: ["sh", "-c",
                                'find "$1" -type f -print0 | xargs -0 head -q -c 8192 > /dev/null', "sh",
                                str(root)]),
        Tool("floor-head-par", f"floor: find | xargs -P {os.cpu_count()} head -c 8192 (C, all cores)",
             lambda root, out: ["sh", "-c",
                                f'find "$1" -type f -print0 | xargs -0 -n 2000 -P {os.cpu_count()} '
                                'head -q -c 8192 > /dev/null', "sh", str(root)]),
    ]
    if wanted is not None:
        tools = [t for t in tools if t.name in wanted or t.is_ours]
    for t in tools:
        if not t.available:
            log(f"SKIP {t.name}: {t.why_missing}")
    return tools, ours_env


def _find_totals(doc: Any) -> dict[str, int] | None:
    """Sum XNAT-style totals found in a survey report (top level, or over its resources)."""
    keys = ("totalMismatchedFiles", "totalDuplicates", "totalFilesInDuplicates", "totalBadFiles",
            "totalNonActionableDuplicates", "totalMovedFiles", "totalRemovedFiles", "totalFileErrors")
    best: tuple[int, list[dict[str, Any]]] | None = None

    def visit(node: Any, depth: int) -> None:
        nonlocal best
        if isinstance(node, dict):
            if any(k in node for k in keys):
                if best is None or depth < best[0]:
                    best = (depth, [node])
                elif depth == best[0]:
                    best[1].append(node)
                return
            for v in node.values():
                visit(v, depth + 1)
        elif isinstance(node, list):
            for v in node:
                visit(v, depth + 1)

    visit(doc, 0)
    if best is None:
        return None
    out: dict[str, int] = {}
    for node in best[1]:
        for k in keys:
            if isinstance(node.get(k), int):
                out[k] = out.get(k, 0) + node[k]
    return out


def check_our_report(out_dir: Path, corpus: Corpus) -> str:
    report = out_dir / "survey-report.json"
    if not report.is_file():
        return "no survey-report.json written"
    try:
        doc = json.loads(report.read_text())
        totals = _find_totals(doc)
    except (OSError, ValueError) as exc:
        return f"survey-report.json unreadable: {exc}"
    if corpus.kind == "empty":
        files = doc.get("totals", {}).get("files") if isinstance(doc, dict) else None
        return "report written, 0 files" if files == 0 else f"MISMATCH: report says {files} files, expected 0"
    if totals is None:
        return "no XNAT-style totals found in survey-report.json"
    diffs = [f"{k} {totals.get(k)} != expected {v}" for k, v in corpus.manifest["expected"].items()
             if k in totals and totals[k] != v]
    return "report totals match the corpus" if not diffs else "MISMATCH: " + "; ".join(diffs)


# --------------------------------------------------------------------------------------------------
# Benchmark driver
# --------------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    corpus: str
    files: int
    tool: str
    label: str
    command: str
    runs_s: list[float] = field(default_factory=list)
    best_s: float | None = None
    files_per_s: float | None = None
    ms_per_file: float | None = None
    ms_per_file_after_startup: float | None = None  # ours only: (best - start-up best) / files
    maxrss_mib: float | None = None
    tree_peak_mib: float | None = None
    cpu_s: float | None = None
    foreign_cpu_s: float | None = None  # CPU used by other processes during the best run
    returncode: int | None = None
    skipped: str | None = None
    note: str | None = None


def bench_tool(tool: Tool, corpus: Corpus, corpus_name: str, args: argparse.Namespace,
               ours_env: dict[str, str], scratch: Path) -> Measurement:
    out = scratch / f"out-{tool.name}"
    cmd = tool.cmd_for(corpus.root, out)
    m = Measurement(corpus_name, corpus.files, tool.name, tool.label, shlex.join(cmd))
    if not tool.available:
        m.skipped = tool.why_missing
        return m
    env = tool.env if tool.env is not None else (ours_env if tool.is_ours else None)

    def once(capture: Path | None) -> RunResult:
        shutil.rmtree(out, ignore_errors=True)
        wait_quiet(args.wait_quiet)
        if capture is not None:
            with capture.open("wb") as fh:
                return run_measured(cmd, stdout=fh, sample_tree=tool.is_ours, env=env)
        return run_measured(cmd, sample_tree=tool.is_ours, env=env)

    # warm-up (untimed): also the validation run, with stdout kept
    capture = scratch / f"stdout-{tool.name}.txt"
    warm = once(capture)
    notes = []
    if warm.returncode != 0:
        notes.append(f"exit {warm.returncode}")
        if tool.is_ours:
            m.skipped = f"our survey failed (exit {warm.returncode}): {warm.stderr_tail.strip()[-600:]}"
            m.returncode = warm.returncode
            log(f"SKIP ours: {m.skipped}")
            return m
    if tool.validate is not None:
        problem = tool.validate(capture.read_text(errors="replace"), corpus)
        if problem:
            notes.append(f"VALIDATION: {problem}")
            log(f"{tool.name} on {corpus_name}: {problem}")
    if tool.is_ours:
        verdict = check_our_report(out, corpus)
        notes.append(verdict)
        log(f"ours on {corpus_name}: {verdict}")
    capture.unlink(missing_ok=True)
    runs: list[RunResult] = []
    spent = warm.seconds
    for _ in range(args.repeat):
        if runs and not tool.is_ours and args.peer_budget and spent >= args.peer_budget:
            notes.append(f"{len(runs)} timed run(s): --peer-budget {args.peer_budget:g} s reached")
            break
        runs.append(once(None))
        spent += runs[-1].seconds
    best = min(runs, key=lambda r: r.seconds)
    m.runs_s = [round(r.seconds, 4) for r in runs]
    m.best_s = best.seconds
    if corpus.files:
        m.files_per_s = corpus.files / best.seconds
        m.ms_per_file = 1000 * best.seconds / corpus.files
    m.maxrss_mib = max(r.maxrss_kib for r in runs) / 1024
    peaks = [r.tree_peak_kib for r in runs if r.tree_peak_kib is not None]
    m.tree_peak_mib = max(peaks) / 1024 if peaks else None
    m.cpu_s = best.cpu_s
    m.returncode = best.returncode
    m.foreign_cpu_s = best.foreign_cpu_s
    busy = _busy_note(runs, best)
    if busy:
        notes.append(busy)
        log(f"{tool.name} on {corpus_name}: {busy}")
    catalogs = int(corpus.manifest.get("catalogs", 0))
    if best.returncode != 0 and tool.name.startswith("dcmdump") and catalogs:
        # dcmdump exits with the number of files it could not read (mod 256): our catalog XML files
        notes = [n for n in notes if not n.startswith("exit ")]
        notes.append(f"exit {best.returncode}: expected, the {catalogs} catalog XML files are not DICOM")
    elif best.returncode != 0 and not tool.is_ours:
        notes.append(best.stderr_tail.strip().splitlines()[-1][:200] if best.stderr_tail.strip() else "")
    m.note = "; ".join(n for n in notes if n) or None
    shutil.rmtree(out, ignore_errors=True)
    log(f"{corpus_name:>18} {tool.name:<15} best {best.seconds:8.3f} s  {_fmt(m.files_per_s, '10.0f')} files/s  "
        f"runs {m.runs_s}")
    return m


def bench_startup(tool: Tool, args: argparse.Namespace, ours_env: dict[str, str], scratch: Path) -> Measurement:
    """Our survey (same command line as ``tool``) on an empty folder: its fixed start-up cost."""
    root = scratch / "empty-root"
    root.mkdir(parents=True, exist_ok=True)
    empty = Corpus("empty", root, {}, {"dicom_files": 0, "header_bytes_mean": 0, "catalogs": 0, "expected": {}},
                   None)
    startup = replace(tool, name="ours-startup", label="ours: start-up (empty folder)")
    return bench_tool(startup, empty, "empty folder", args, ours_env, scratch)


def add_after_startup(ms: Sequence[Measurement]) -> None:
    """ms/file after start-up for every run of our survey on a corpus (``ours`` and ``ours-python``)."""
    startup = next((m for m in ms if m.tool == "ours-startup" and m.best_s), None)
    if startup is None or startup.best_s is None:
        return
    for m in ms:
        if m.tool in ("ours", "ours-python") and m.best_s and m.files:
            m.ms_per_file_after_startup = 1000 * (m.best_s - startup.best_s) / m.files


def sync_fs(path: Path) -> float:
    """Flush the file system holding ``path`` (untimed preparation); the seconds it took."""
    t0 = time.perf_counter()
    subprocess.run(["sync", "-f", str(path)], check=False)
    return time.perf_counter() - t0


def bench_mitigation(corpus: Corpus, corpus_name: str, args: argparse.Namespace, ours_cmd: list[str] | None,
                     ours_env: dict[str, str], scratch: Path) -> list[Measurement]:
    results: list[Measurement] = []
    affected = [a for a in (corpus.root.parent / "affected.txt").read_text().splitlines() if a]
    n_aff = len(affected)
    # baselines: cp of the affected files into a backup tree (the unavoidable I/O of a backup), then the
    # same followed by a sync of the backup's file system (our mitigation makes its backups durable first)
    backup = scratch / "cp-backup"
    stdin_data = b"\0".join(a.encode() for a in affected)
    baselines = [
        ("cp-affected", f"cp --parents of the {n_aff} affected files",
         ["xargs", "-0", "cp", "--parents", "-p", "-t", str(backup)]),
        ("cp-affected-sync", f"cp --parents of the {n_aff} affected files, then sync",
         ["sh", "-c", 'xargs -0 cp --parents -p -t "$1" && sync -f "$1"', "sh", str(backup)]),
    ]
    for tool_name, label, cp_cmd in baselines:
        m = Measurement(corpus_name, n_aff, tool_name, label, shlex.join(cp_cmd) + " < affected-list")
        runs = []
        for _ in range(args.repeat + 1):
            shutil.rmtree(backup, ignore_errors=True)
            backup.mkdir(parents=True)
            sync_fs(backup)  # the run before's writes are flushed first: each run starts with an idle disk
            wait_quiet(args.wait_quiet)
            runs.append(run_measured(cp_cmd, cwd=corpus.root, stdin_data=stdin_data))
        runs = runs[1:]  # first was the warm-up
        best = min(runs, key=lambda r: r.seconds)
        m.runs_s = [round(r.seconds, 4) for r in runs]
        m.best_s, m.returncode, m.cpu_s = best.seconds, best.returncode, best.cpu_s
        m.foreign_cpu_s, m.note = best.foreign_cpu_s, _busy_note(runs, best)
        if best.returncode != 0:
            m.note = "; ".join(filter(None, [f"exit {best.returncode}: {best.stderr_tail.strip()[-200:]}",
                                             m.note]))
        m.files_per_s = n_aff / best.seconds if n_aff else None
        m.maxrss_mib = best.maxrss_kib / 1024
        results.append(m)
        log(f"{corpus_name:>18} {tool_name:<15} best {best.seconds:8.3f} s  runs {m.runs_s}")
        shutil.rmtree(backup, ignore_errors=True)

    mm = Measurement(corpus_name, n_aff, "ours-mitigate", "xnat-resource-survey mitigate (on a copy)", "")
    results.append(mm)
    if ours_cmd is None:
        mm.skipped = "our CLI is not importable"
        return results
    runs = []
    for i in range(args.repeat):
        copy = scratch / "mitigation-copy"
        shutil.rmtree(copy, ignore_errors=True)
        t0 = time.perf_counter()
        subprocess.run(["cp", "-a", str(corpus.root), str(copy)], check=True)
        copy_s = time.perf_counter() - t0
        out1, out2, bdir = scratch / "mit-survey", scratch / "mit-out", scratch / "mit-backup"
        for d in (out1, out2, bdir):
            shutil.rmtree(d, ignore_errors=True)
        sv = run_measured([*ours_cmd, "survey", str(copy), "--output", str(out1), "--all-resources",
                           "--log-format", "json"], env=ours_env)
        if sv.returncode != 0:
            mm.skipped = f"survey of the copy failed (exit {sv.returncode}): {sv.stderr_tail.strip()[-400:]}"
            break
        # like cp+sync's: mitigate's syncfs should flush its own writes, not the untimed copy's
        sync_s = sync_fs(copy)
        wait_quiet(args.wait_quiet)
        cmd = [*ours_cmd, "mitigate", str(copy), "--report", str(out1 / "survey-report.json"),
               "--backup-dir", str(bdir), "--output", str(out2), "--log-format", "json"]
        mm.command = shlex.join(cmd)
        r = run_measured(cmd, env=ours_env, sample_tree=True)
        if r.returncode == 2 and i == 0:  # usage error: probably the option set or subcommand is not there
            r2 = run_measured(cmd[:-2], env=ours_env, sample_tree=True)  # without --log-format
            if r2.returncode in (0, 1):
                r, mm.command = r2, shlex.join(cmd[:-2])
        if r.returncode not in (0, 1):
            mm.skipped = f"mitigate failed (exit {r.returncode}): {r.stderr_tail.strip()[-600:]}"
            log(f"SKIP ours-mitigate: {mm.skipped}")
            break
        if r.returncode == 1:
            mm.note = "exit 1 (mitigation left errors)"
        report = out2 / "mitigation-report.json"
        if report.is_file() and i == 0:
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(report.read_text())
                totals = doc.get("totals") if isinstance(doc.get("totals"), dict) else _find_totals(doc)
                exp = corpus.manifest["expected"]
                mm.note = "; ".join(filter(None, [
                    mm.note, f"report totals {json.dumps(totals)}",
                    f"corpus: {exp['totalMismatchedFiles']} mismatches, {exp['totalDuplicates']} duplicate pairs"]))
        runs.append(r)
        log(f"mitigation run {i + 1}: {r.seconds:.3f} s (corpus copy took {copy_s:.1f} s and the sync after "
            f"the survey {sync_s:.1f} s, not counted)")
        shutil.rmtree(copy, ignore_errors=True)
    if runs:
        best = min(runs, key=lambda r: r.seconds)
        mm.runs_s = [round(r.seconds, 4) for r in runs]
        mm.best_s, mm.returncode, mm.cpu_s = best.seconds, best.returncode, best.cpu_s
        mm.foreign_cpu_s = best.foreign_cpu_s
        mm.note = "; ".join(filter(None, [mm.note, _busy_note(runs, best)]))
        mm.files_per_s = n_aff / best.seconds if n_aff else None
        mm.maxrss_mib = max(r.maxrss_kib for r in runs) / 1024
        peaks = [r.tree_peak_kib for r in runs if r.tree_peak_kib is not None]
        mm.tree_peak_mib = max(peaks) / 1024 if peaks else None
    for d in ("mitigation-copy", "mit-survey", "mit-out", "mit-backup"):
        shutil.rmtree(scratch / d, ignore_errors=True)
    return results


# --------------------------------------------------------------------------------------------------
# Machine and reporting
# --------------------------------------------------------------------------------------------------


def _tool_version(cmd: Sequence[str]) -> str:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    text = (r.stdout + r.stderr).strip().splitlines()
    return text[0] if text else "?"


def ours_walker(venv: Path, env: dict[str, str] | None) -> str:
    """Which element walker our survey runs with ``env``: "C", "Python", or "?"."""
    py = venv / "bin" / "python"
    if not py.exists():
        return "?"
    try:
        probe = "from container_app.survey.dicom import headers; print(headers.ACCELERATED)"
        r = subprocess.run([str(py), "-c", probe],
                           env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return {"True": "C", "False": "Python"}.get(r.stdout.strip(), "?")


def machine_info(workdir: Path, venv: Path, ours_env: dict[str, str] | None = None) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError), open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    fs = "?"
    with contextlib.suppress(OSError):
        fs = subprocess.run(["stat", "-f", "-c", "%T", str(workdir)], capture_output=True, text=True).stdout.strip()
    py = venv / "bin" / "python"
    ours_py = _tool_version([str(py), "-c", "import sys, pydicom; print(sys.version.split()[0], "
                            "'pydicom', pydicom.__version__)"]) if py.exists() else "?"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": mem_gib,
        "kernel": platform.release(),
        "harness_python": platform.python_version(),
        "ours_python": ours_py,
        "ours_walker": ours_walker(venv, ours_env),
        "workdir_fs": fs,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "gdcmscanner": _tool_version(["gdcmscanner", "--version"]),
        "dcmdump": _tool_version(["dcmdump", "--version"]),
    }


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def markdown(machine: dict[str, Any], corpora: Sequence[tuple[str, Corpus]], ms: Sequence[Measurement],
             repeat: int) -> str:
    py = machine["ours_python"] if machine["ours_python"] != "?" else machine["harness_python"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['usable_cores']} cores usable ({machine['cores']} online), "
        f"{machine['memory_gib']} GiB RAM, Linux {machine['kernel']}, {machine['workdir_fs']} file system; "
        f"Python {py}; our element walker: {machine.get('ours_walker', '?')}; {machine['gdcmscanner']}; "
        f"{machine['dcmdump']}.",
        f"Warm page cache, best of {repeat} after one warm-up run.",
        "",
        "| Corpus | Files | Mean header (bytes before pixel data) | Generated in |",
        "|---|---:|---:|---:|",
    ]
    for name, c in corpora:
        hdr = c.manifest["header_bytes_mean"]
        gen = f"{c.generation_s:.1f} s" if c.generation_s is not None else f"{c.manifest['generation_s']} s (cached)"
        lines.append(f"| {name} | {c.files} | {hdr / 1024:.1f} KiB | {gen} |")
    lines += [
        "",
        "| Corpus | Tool | Best (s) | Files/s | ms/file | ms/file after start-up | Ours ÷ peer (time) "
        "| Peak RSS (MiB) | CPU (s) | Notes |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    ours_by_corpus = {m.corpus: m for m in ms if m.tool == "ours" and m.best_s}
    for m in ms:
        label = m.label.replace("|", "\\|")
        if m.skipped:
            lines.append(f"| {m.corpus} | {label} | - | - | - | - | - | - | - | skipped: "
                         f"{m.skipped.splitlines()[0][:120]} |")
            continue
        ours = ours_by_corpus.get(m.corpus)
        ratio = "" if m.tool.startswith(("ours", "cp-affected")) else (
            _fmt(ours.best_s / m.best_s, ".2f") if ours and ours.best_s and m.best_s else "-")
        if m.tool == "ours-mitigate":
            parts = []
            for base, name in (("cp-affected", "cp"), ("cp-affected-sync", "cp+sync")):
                cp = next((x for x in ms if x.corpus == m.corpus and x.tool == base and x.best_s), None)
                if cp and cp.best_s and m.best_s:
                    parts.append(f"{m.best_s / cp.best_s:.2f} vs {name}")
            ratio = "; ".join(parts) or "-"
        rss = _fmt(m.maxrss_mib, ".0f")
        if m.tree_peak_mib is not None:
            rss += f" (tree PSS {m.tree_peak_mib:.0f})"
        lines.append(f"| {m.corpus} | {label} | {_fmt(m.best_s, '.3f')} | {_fmt(m.files_per_s, ',.0f')} | "
                     f"{_fmt(m.ms_per_file, '.3f')} | {_fmt(m.ms_per_file_after_startup, '.3f')} | "
                     f"{ratio} | {rss} | {_fmt(m.cpu_s, '.2f')} | "
                     f"{(m.note or '').replace('|', '/')[:400]} |")
    lines += [
        "",
        "Peak RSS is the largest single process of the command's tree"
        + (" (GNU time %M)" if USE_GNU_TIME else " (wait4 rusage; without GNU time this includes the "
           "harness's own RSS, an upper bound)")
        + "; for our survey the sampled summed PSS of the "
        "whole process tree (workers included) is in parentheses. Ours ÷ peer > 1 means ours is slower. "
        "Peers write to /dev/null; ours writes its reports. "
        "BUSY MACHINE marks a best run during which processes outside the measured command used more than "
        "10% of the CPUs (from /proc/stat): rerun on a quiet machine before quoting that figure.",
    ]
    startup = next((m for m in ms if m.tool == "ours-startup" and m.best_s), None)
    if startup is not None:
        smallest = min((m.files for m in ms if m.tool == "ours" and m.best_s), default=200)
        lines += [
            "",
            f"Our survey has a fixed cost, {startup.best_s:.3f} s here (the \"start-up (empty folder)\" row: "
            "interpreter start, imports, the worker pool, writing the reports), that a "
            f"{smallest:,}-file corpus cannot amortise, so its ms/file there is mostly start-up. "
            "\"ms/file after start-up\" = 1000 * (best - start-up best) / files, for our survey's rows only: "
            "that per-file figure is what grows with the archive.",
        ]
    if any(m.tool == "cp-affected-sync" for m in ms):
        lines += [
            "",
            "Mitigation: \"vs cp+sync\" compares with cp followed by `sync -f` of the backup folder's file "
            "system, because our mitigation makes its backups durable (syncfs) before it touches any original, "
            "which plain cp does not.",
        ]
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if not part:
            continue
        mult = 1
        if part[-1] in "km":
            mult = 1000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        out.append(int(float(part) * mult))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="corpus cache and scratch directory")
    ap.add_argument("--sizes", default="10000,100000", help="single-frame corpus sizes (files), e.g. 1k,10k")
    ap.add_argument("--multiframe", type=int, default=200, help="number of enhanced multi-frame files (0: none)")
    ap.add_argument("--frames", type=int, default=5000, help="per-frame functional group items per file")
    ap.add_argument("--files-per-scan", type=int, default=200)
    ap.add_argument("--layout", choices=("session", "project"), default="session",
                    help="session: ROOT/SCANS/<scan>/DICOM; project: ROOT/BENCH/arc001/SESSnnnn/SCANS/...")
    ap.add_argument("--no-catalogs", action="store_true", help="do not write scan_<id>_catalog.xml files")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per tool (best is reported)")
    ap.add_argument("--peer-budget", type=float, default=60.0,
                    help="stop timing a peer (not ours) once its runs, warm-up included, took this many "
                         "seconds (at least one timed run; 0: no limit)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="generator processes")
    ap.add_argument("--venv", default=str(REPO / ".venv"), help="virtualenv holding our package")
    ap.add_argument("--ours-args", default="", help="extra arguments for our survey, e.g. '--jobs 4'")
    ap.add_argument("--skip-ours", action="store_true")
    ap.add_argument("--python-walker", action="store_true",
                    help=f"also time our survey on every corpus with its pure-Python element walker "
                         f"({PURE_PYTHON_ENV}=1)")
    ap.add_argument("--peers", default="",
                    help="comma list of peers to run (gdcmscanner,dcmdump,dcmdump-stop,floor-py,floor-head,"
                         "floor-head-par); default all")
    ap.add_argument("--install", action="store_true",
                    help="apt-get install missing peers (also done when CI=true)")
    ap.add_argument("--mitigation", action="store_true",
                    help="also time our mitigate on a copy of each single-frame corpus vs cp of the affected "
                         "files, and vs that cp followed by sync")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="before each run, wait up to S seconds for the CPUs to be less than 10%% busy "
                         "(for shared machines)")
    ap.add_argument("--generate-only", action="store_true", help="build the corpora and stop")
    ap.add_argument("--json", type=Path, help="write all figures to this JSON file")
    ap.add_argument("--markdown", type=Path, help="also write the Markdown tables to this file")
    args = ap.parse_args(argv)

    _self_check_naming()
    workdir: Path = args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    corpora: list[tuple[str, Corpus]] = []
    for n in parse_sizes(args.sizes):
        p = SingleParams(files=n, files_per_scan=args.files_per_scan, layout=args.layout,
                         catalogs=not args.no_catalogs, seed=args.seed)
        corpora.append((f"single-frame {n:,}", ensure_single(workdir, p, args.jobs)))
    if args.multiframe > 0:
        mp = MultiParams(files=args.multiframe, frames=args.frames, catalogs=not args.no_catalogs, seed=args.seed)
        corpora.append((f"multi-frame {args.multiframe}x{args.frames}", ensure_multi(workdir, mp, args.jobs)))
    if args.generate_only:
        for name, c in corpora:
            print(f"{name}: {c.root}  ({c.files} files, generation {c.manifest['generation_s']} s)")
        return 0

    tools, ours_env = build_tools(args)
    ours_cmd, _, _ = ours_command(Path(args.venv))
    machine = machine_info(workdir, Path(args.venv), ours_env)
    log(f"our element walker: {machine['ours_walker']}")
    if args.python_walker and not args.skip_ours:
        walker = ours_walker(Path(args.venv), {**ours_env, PURE_PYTHON_ENV: "1"})
        machine["ours_python_walker"] = walker
        if walker != "Python":
            log(f"WARNING: with {PURE_PYTHON_ENV}=1 our survey reports walker {walker!r}, not 'Python'")
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=workdir))
    measurements: list[Measurement] = []
    try:
        ours_tool = next((t for t in tools if t.name == "ours"), None)
        if ours_tool is not None:
            measurements.append(bench_startup(ours_tool, args, ours_env, scratch))
        for name, corpus in corpora:
            for tool in tools:
                measurements.append(bench_tool(tool, corpus, name, args, ours_env, scratch))
            if args.mitigation and corpus.kind == "single":
                measurements += bench_mitigation(corpus, name, args, ours_cmd if not args.skip_ours else None,
                                                 ours_env, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    add_after_startup(measurements)

    md = markdown(machine, corpora, measurements, args.repeat)
    print(md)
    if args.markdown:
        args.markdown.write_text(md + "\n")
    if args.json:
        doc = {
            "machine": machine,
            "repeat": args.repeat,
            "corpora": [{"name": n, "root": str(c.root), "kind": c.kind, "files": c.files,
                         "generation_s": c.generation_s, "cached": c.generation_s is None,
                         "manifest": c.manifest} for n, c in corpora],
            "measurements": [asdict(m) for m in measurements],
        }
        args.json.write_text(json.dumps(doc, indent=2))
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
