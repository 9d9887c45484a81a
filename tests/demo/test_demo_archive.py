"""The demo archive: what is on disk matches its manifest, and it is the same on every run."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from container_app.demo import synth
from container_app.demo.archive import DEMO_PATIENT_NAME, build_demo_archive
from container_app.demo.synth import Plant


def _header_name(path: Path) -> tuple[tuple[str, str], str] | None:
    """The (class, instance) key and expected name read from a file, or None for a bad file."""
    try:
        ds = dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return None
    if "SOPClassUID" not in ds:
        return None

    def value(keyword: str) -> str:
        elem = ds.get(keyword)
        raw = "" if elem is None else str(ds[keyword].value if not ds[keyword].VM > 1 else ds[keyword].value[0])
        return raw.strip() or f"no-value-for-{keyword}"

    key = (value("SOPClassUID"), value("SOPInstanceUID"))
    name = "-".join([value("StudyInstanceUID"), value("SeriesNumber"), value("InstanceNumber"),
                     synth.xnat_hash(list(key))]) + ".dcm"
    return key, name


def test_demo_archive_matches_manifest(tmp_path: Path) -> None:
    started = time.perf_counter()
    manifest = build_demo_archive(tmp_path)
    assert time.perf_counter() - started < 1.0
    assert manifest.session_root == tmp_path / "DEMO" / "arc001" / "DEMO_MR1"

    # Survey the DICOM resources independently of the manifest, from the files themselves.
    totals: dict[str, int] = defaultdict(int)
    uids: set[tuple[str, str]] = set()
    for scan in sorted((manifest.session_root / "SCANS").iterdir()):
        folder = scan / "DICOM"
        assert (folder / f"scan_{scan.name}_catalog.xml").is_file()
        groups: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
        for path in sorted(folder.iterdir()):
            if path.name.endswith("_catalog.xml"):
                continue
            totals["files"] += 1
            result = _header_name(path)
            if result is None:
                totals["bad"] += 1
                continue
            key, expected = result
            groups[key].append((path.name, expected))
            if DEMO_PATIENT_NAME.replace("^", "_") in path.name:
                totals["identifying"] += 1
        uids |= set(groups)
        for members in groups.values():
            if len(members) == 1:
                totals["mismatched" if members[0][0] != members[0][1] else "conforming"] += 1
            elif len({expected for _, expected in members}) == 1:
                totals["duplicate_groups"] += 1
                totals["files_in_duplicates"] += len(members)
            else:
                totals["nonactionable"] += 1

    assert totals["files"] == manifest.total_files == 30
    assert len(uids) == manifest.total_uids
    assert totals["conforming"] == manifest.conforming == 10
    assert totals["mismatched"] == manifest.mismatched == 10
    assert totals["duplicate_groups"] == manifest.duplicate_groups == 4
    assert totals["files_in_duplicates"] == manifest.files_in_duplicates == 8
    assert totals["nonactionable"] == manifest.nonactionable_duplicate_groups == 0
    assert totals["bad"] == manifest.bad_files == 2
    assert totals["identifying"] == manifest.identifying_names == 12

    # The layout's plants agree with the manifest too.
    layout = manifest.layout
    dicom_files = [f for r in layout.resources if r.format == "DICOM" for f in r.files]
    assert len(dicom_files) == manifest.total_files
    assert sum(f.is_bad for f in dicom_files) == manifest.bad_files
    assert len(layout.with_plant(Plant.LEGACY_NAME)) == manifest.identifying_names
    assert len(layout.with_plant(Plant.DUPLICATE_IDENTICAL)) == 6
    assert len(layout.with_plant(Plant.DUPLICATE_DIFFERENT)) == 2
    assert {f.name for f in layout.with_plant(Plant.CLIENT_NAME)} == {"IM0001", "IM0002"}
    assert {r.scan_id for r in layout.resources if r.scan_id} == set(manifest.resource_status)
    snapshots = manifest.session_root / "RESOURCES" / "SNAPSHOTS"
    assert (snapshots / "SNAPSHOTS_catalog.xml").is_file()
    assert len(list(snapshots.glob("*.png"))) == 4
    # Scan 2 is implicit VR, as pre-upgrade scanners often wrote.
    legacy = next(iter((manifest.session_root / "SCANS/2/DICOM").glob("Doe_Jane*.dcm")))
    assert dcmread(legacy).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert dcmread(manifest.session_root / "SCANS/1/DICOM" / layout.resource("1").files[0].name
                   ).file_meta.TransferSyntaxUID == ExplicitVRLittleEndian


def test_demo_archive_is_deterministic(tmp_path: Path) -> None:
    def snapshot(root: Path) -> list[tuple[str, bytes, float]]:
        return [(str(p.relative_to(root)), p.read_bytes() if p.is_file() else b"", p.stat().st_mtime)
                for p in sorted(root.rglob("*"))]

    build_demo_archive(tmp_path / "a")
    build_demo_archive(tmp_path / "b")
    assert snapshot(tmp_path / "a") == snapshot(tmp_path / "b")
