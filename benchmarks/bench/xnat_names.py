"""XNAT's file names (docs: /work/shared/xnat-reference.md section 1), so that the corpus holds the names our
survey expects and the mismatched names it must find."""

from __future__ import annotations

import struct
from collections.abc import Sequence

from bench.dicom_bytes import MR_STORAGE


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


def self_check_naming() -> None:
    """Two known names: checked before generating, so that a broken hash cannot build a corpus of wrong names."""
    got = xnat_default_name("1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034", "4", "2", MR_STORAGE,
                            "1.3.12.2.1107.5.2.32.35177.3.2006121409365951632817982")
    assert got == "1.3.12.2.1107.5.2.32.35177.30000006121218324675000000034-4-2-1qs88hj.dcm", got
    got = base36(java_list_hash(["9.9.9.9.9.123.456.789", "1.3.12.2.1107.5.2.32.35177.3.2006121409365951632817982"]))
    assert got == "1m0zhq7", got
