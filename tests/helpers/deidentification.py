"""Copies of one instance that differ in how much they disclose (issue 15), synthesized with pydicom.

The identifying values below are made up and distinctive, so a test can grep every output for them.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from container_app.demo import synth

MR = "1.2.840.10008.5.1.4.1.1.4"
PROJECT, SESSION, SUBJECT = "P1", "SESS_0001", "SUBJ_0001"
#: Values a copy that was never de-identified carries; never to appear in any output.
SECRETS = {"PatientName": "Zyxwabc^Qwertina", "PatientID": "MRN99887766", "PatientBirthDate": "19470312",
           "OtherPatientIDs": "ALT55443322", "InstitutionName": "Quuxville General Infirmary",
           "ReferringPhysicianName": "Plumbottom^Ignatius", "AccessionNumber": "ACC7731904"}
#: Free text an anonymizer wrote: counted as "present", never copied.
FREE_TEXT_METHOD = "Hospital script v7 by Dr Snodgrass"
BASE_MTIME = 1_700_000_000


def session_folder(root: Path) -> Path:
    """Where the copies go: an XNAT archive layout, so the session label is known from the path."""
    folder = root / PROJECT / "arc001" / SESSION / "SCANS" / "1" / "DICOM"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def original(uid_seed: str = "deid", number: int = 1, pixel: int = 7) -> Dataset:
    """An instance as the scanner sent it: every identifying value there."""
    ds = Dataset()
    ds.SOPClassUID = MR
    ds.SOPInstanceUID = synth.uid(uid_seed, number)
    ds.StudyInstanceUID = synth.uid(uid_seed, 1000)
    ds.SeriesInstanceUID = synth.uid(uid_seed, 2000)
    ds.Modality = "MR"
    ds.SeriesNumber = "1"
    ds.InstanceNumber = str(number)
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyDescription = "Brain"
    ds.SeriesDescription = "T1 axial"
    for keyword, value in SECRETS.items():
        setattr(ds, keyword, value)
    ds.Rows, ds.Columns = 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes([pixel]) * 16
    return ds


def copy_of(ds: Dataset, **changes: Any) -> Dataset:
    """A copy with some attributes changed (None deletes one)."""
    new = copy.deepcopy(ds)
    for keyword, value in changes.items():
        if value is None:
            if keyword in new:
                delattr(new, keyword)
        else:
            setattr(new, keyword, value)
    return new


def basic_profile(ds: Dataset, **marks: Any) -> Dataset:
    """What a Basic Profile anonymizer leaves: identifying values gone or replaced, the method marked."""
    new = copy_of(ds, PatientName="ANON", PatientID="ANON", PatientBirthDate=None, OtherPatientIDs=None,
                  InstitutionName=None, ReferringPhysicianName=None, AccessionNumber=None,
                  PatientIdentityRemoved="YES")
    for keyword, value in marks.items():
        setattr(new, keyword, value)
    return new


def dicognito(ds: Dataset) -> Dataset:
    """dicognito 0.17 (dicognito/anonymizer.py `_update_deidentification_method`): appends "DICOGNITO"."""
    return basic_profile(ds, DeidentificationMethod="DICOGNITO")


def ctp(ds: Dataset) -> Dataset:
    """CTP's DicomAnonymizer default script: DeidentificationMethod "CTP Default:  based on DICOM PS3.15
    AnnexE", and the code sequence with the Basic Profile code 113100 (CID 7050)."""
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "113100", "DCM"
    code.CodeMeaning = "Basic Application Confidentiality Profile"
    return basic_profile(ds, DeidentificationMethod="CTP Default:  based on DICOM PS3.15 AnnexE",
                         DeidentificationMethodCodeSequence=Sequence([code]))


def pydicom_deid(ds: Dataset) -> Dataset:
    """pydicom/deid's recipes ("deid.dicom" default): PatientIdentityRemoved YES, method "deid"."""
    return basic_profile(ds, DeidentificationMethod="deid")


def xnat_dicomedit(ds: Dataset, *, subject: str = SUBJECT) -> Dataset:
    """XNAT's default project anonymization script (DicomEdit 6, anon script in xnat-web's
    `DefaultAnonScript`): PatientName := subject label, PatientID := session label, StudyDescription :=
    project; no (0012,0062) and no method is written."""
    return copy_of(ds, PatientName=subject, PatientID=SESSION, StudyDescription=PROJECT)


def write(path: Path, ds: Dataset, mtime: int = BASE_MTIME, *, deflated: bool = False) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(ds.SOPClassUID)
    meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian if deflated else ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(path, enforce_file_format=True)
    os.utime(path, (mtime, mtime))
    return path


def all_output_text(*folders: Path, extra: str = "") -> str:
    """Every byte of every file under the folders, decoded leniently, plus `extra` (the logs)."""
    parts = [extra]
    for folder in folders:
        for file in sorted(folder.rglob("*")):
            if file.is_file():
                parts.append(file.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def assert_no_secret(text: str) -> None:
    for keyword, value in SECRETS.items():
        pieces = [value, *value.split("^")]
        for piece in pieces:
            assert piece not in text, f"{keyword} value found in an output"
    assert FREE_TEXT_METHOD not in text
