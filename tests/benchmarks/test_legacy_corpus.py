"""The benchmark's legacy corpus holds what its manifest says: read back from disk with pydicom, every file is
counted by its name's kind, the copies are found by their SOP Instance UID, and the differing copies by bytes."""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench.legacy_corpus import LegacyParams, ensure_legacy


def test_legacy_corpus_matches_its_manifest(tmp_path: Path) -> None:
    p = LegacyParams(resources=2, instances_per_resource=150)
    corpus = ensure_legacy(tmp_path, p, 2)
    m = json.loads((corpus.root.parent / "manifest.json").read_text())
    files = sorted(f for f in corpus.root.rglob("*") if f.is_file())
    assert len(files) == m["dicom_files"] >= 300
    kinds: Counter[str] = Counter()
    by_uid: dict[str, list[bytes]] = defaultdict(list)
    for f in files:
        ds = pydicom.dcmread(f)
        by_uid[str(ds.SOPInstanceUID)].append(f.read_bytes())
        if f.name.startswith("IM"):
            kinds["im"] += 1
            assert f.name == f"IM{int(ds.InstanceNumber):04d}"
        elif f.name == f"{int(ds.InstanceNumber)}.dcm":
            kinds["copy"] += 1
        else:
            kinds["legacy"] += 1
            # the pre-1.8.7 name starts with the patient's name
            assert f.name.startswith(str(ds.PatientName).replace("^", "_"))
    assert kinds["im"] == m["im_named"] and kinds["legacy"] == m["legacy_named"]
    assert kinds["copy"] == m["copies"] > 0 and m["default_named"] == 0
    assert len(by_uid) == m["instances"] == p.resources * p.instances_per_resource
    pairs = [v for v in by_uid.values() if len(v) == 2]
    assert len(pairs) == m["copies"]
    assert sum(a != b for a, b in pairs) == m["differing_copies"] > 0
    affected = (corpus.root.parent / "affected.txt").read_text().split()
    assert len(affected) == m["affected_files"] == m["dicom_files"]  # every file is misnamed or a copy
    assert [m["files_per_resource"][r] for r in range(2)] == [
        sum(1 for f in files if f.parts[-3] == str(r + 1)) for r in range(2)]


def test_realistic_sizes_are_mr_slices(tmp_path: Path) -> None:
    corpus = ensure_legacy(tmp_path, LegacyParams(resources=4, instances_per_resource=5, duplicate_ratio=0,
                                                  realistic_sizes=True), 2)
    sizes = [f.stat().st_size for f in corpus.root.rglob("*") if f.is_file()]
    assert len(sizes) == 20
    assert min(sizes) >= 128 * 1024 and max(sizes) <= 512 * 1024 + 16 * 1024
