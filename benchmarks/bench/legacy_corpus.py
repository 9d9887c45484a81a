"""The ``legacy`` corpus (issue 17): the archives admins will run the tool on. Every file of a misnamed
resource carries a pre-1.8.7 ``SOPHashDicomFileNamer`` name (with the patient's name) or a numbered ``IMnnnn``
name, resources hold tens of thousands of files, 10% of the instances have a second copy (half of those copies
differ in their bytes), and a variant has realistic MR sizes (128-512 KB per file).

``legacy_every`` > 0 builds the million-file project layout instead: every k-th resource misnamed, the others
under XNAT's default name.
"""

from __future__ import annotations

import json
import os
import random
import struct
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.corpus import FIXED_MTIME_NS, Corpus, _cached_corpus, _pool, _publish, _staging, _write_file
from bench.corpus_params import GENERATOR_VERSION, params_key
from bench.dicom_bytes import MR_STORAGE, make_uid
from bench.mr_templates import PATIENT, build_single_frame_template
from bench.progress import log
from bench.xnat_names import xnat_default_name, xnat_legacy_name

# Small pixel data (like the classic corpus) or realistic MR slices: 256x256 to 512x512 at 16 bits
SMALL_SIDES = (16, 32, 48, 64)
REAL_SIDES = (256, 320, 400, 512)  # 128, 200, 312, 512 KiB of pixel data


@dataclass(frozen=True)
class LegacyParams:
    resources: int = 3
    instances_per_resource: int = 33_000  # + 10% copies: ~36,300 files per resource
    legacy_ratio: float = 0.30  # of the misnamed files: legacy names; the others IMnnnn
    duplicate_ratio: float = 0.10  # instances with a second copy
    differing_ratio: float = 0.5  # of those copies: different bytes
    realistic_sizes: bool = False
    layout: str = "session"  # session | project (one resource per session)
    legacy_every: int = 0  # 0: every resource misnamed; k: every k-th resource misnamed, the others default
    seed: int = 20240601
    version: int = GENERATOR_VERSION

    def key(self) -> str:
        return params_key(self)

    def dirname(self) -> str:
        size = "real" if self.realistic_sizes else "small"
        return f"legacy-{self.resources}x{self.instances_per_resource}-{size}-{self.layout}-{self.key()}"

    def rel_dir(self, r: int) -> str:
        if self.layout == "project":
            return f"BENCH/arc001/SESS{r + 1:05d}/SCANS/1/DICOM"
        return f"SCANS/{r + 1}/DICOM"


def _resource(args: tuple[str, LegacyParams, int]) -> dict[str, Any]:
    """Write one resource; what it holds, counted as it is written (the manifest is the sum of these)."""
    root, p, r = args
    from bench.corpus import _TEMPLATE as template  # set in the worker by the pool's initializer
    assert template is not None
    rel = p.rel_dir(r)
    d = os.path.join(root, rel)
    os.makedirs(d, exist_ok=True)
    rng = random.Random(f"{p.seed}-legacy-{r}")
    session = r if p.layout == "project" else 0
    scan = 1 if p.layout == "project" else r + 1
    misnamed = p.legacy_every == 0 or r % p.legacy_every == 0
    study_uid = make_uid(p.seed, "lstudy", session)
    series_uid = make_uid(p.seed, "lseries", session, scan)
    side = (REAL_SIDES if p.realistic_sizes else SMALL_SIDES)[r % 4]
    pixel = bytearray(rng.randbytes(side * side * 2))
    csa = b"SV10\x04\x03\x02\x01" + rng.randbytes(500 + (r * 977) % 5000)
    c: dict[str, Any] = {"files": 0, "bytes": 0, "legacy": 0, "im": 0, "default": 0, "pairs": 0, "differing": 0}
    affected: list[str] = []
    for inst in range(1, p.instances_per_resource + 1):
        sop = make_uid(p.seed, "lsop", session, scan, inst)
        z = -60.0 + 6.5 * ((inst - 1) % 24)
        pixel[0:4] = struct.pack("<I", inst)  # every instance's pixels differ
        values: dict[str, bytes | str] = {
            "MediaStorageSOPInstanceUID": sop, "SOPInstanceUID": sop, "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": series_uid, "SeriesNumber": str(scan), "InstanceNumber": str(inst),
            "AccessionNumber": f"ACC{session:07d}", "SeriesDescription": f"ep2d_bold scan {scan}",
            "ContentTime": f"1020{inst % 60:02d}.{inst * 137 % 1000:03d}000",
            "ReferencedSOPInstanceUID": make_uid(p.seed, "llocalizer", session),
            "ImagePositionPatient": f"-115.24\\-131.79\\{z:.4g}", "SliceLocation": f"{z:.4g}",
            "Rows": struct.pack("<H", side), "Columns": struct.pack("<H", side),
            "CSAImageHeaderInfo": csa, "PixelData": bytes(pixel),
        }
        data = template.render(values)
        if not misnamed:
            kind, name = "default", xnat_default_name(study_uid, str(scan), str(inst), MR_STORAGE, sop)
        elif rng.random() < p.legacy_ratio:
            kind = "legacy"
            name = xnat_legacy_name(PATIENT["PatientName"], "MR", PATIENT["StudyDescription"], str(scan),
                                    str(inst), PATIENT["StudyDate"], PATIENT["StudyTime"], MR_STORAGE, sop)
        else:
            kind, name = "im", f"IM{inst:04d}"
        dup = misnamed and rng.random() < p.duplicate_ratio
        _write_file(os.path.join(d, name), data, FIXED_MTIME_NS + (86_400 * 10**9 if dup else 0))
        c[kind] += 1
        c["files"] += 1
        c["bytes"] += len(data)
        if kind != "default":
            affected.append(f"{rel}/{name}")
        if dup:
            copy = data
            if rng.random() < p.differing_ratio:
                # same instance, different bytes: the last pixel byte flipped (a re-sent, re-encoded copy)
                copy = data[:-1] + bytes([data[-1] ^ 0xFF])
                c["differing"] += 1
            _write_file(os.path.join(d, f"{inst}.dcm"), copy, FIXED_MTIME_NS)
            c["pairs"] += 1
            c["files"] += 1
            c["bytes"] += len(copy)
            affected.append(f"{rel}/{inst}.dcm")
    c["affected"] = affected
    return c


def ensure_legacy(workdir: Path, p: LegacyParams, jobs: int) -> Corpus:
    final = workdir / p.dirname()
    cached = _cached_corpus("legacy", final, asdict(p))
    if cached is not None:
        return cached
    log(f"generating the legacy corpus {final} ...")
    t0 = time.perf_counter()
    tmp, root = _staging(workdir, p.dirname())
    with _pool(jobs, build_single_frame_template(), None) as pool:
        parts = pool.map(_resource, [(str(root), p, r) for r in range(p.resources)], chunksize=1)
    elapsed = time.perf_counter() - t0
    total = {k: sum(int(x[k]) for x in parts) for k in ("files", "bytes", "legacy", "im", "default", "pairs",
                                                         "differing")}
    manifest = {
        "params": asdict(p),
        "dicom_files": total["files"],
        "instances": total["files"] - total["pairs"],
        "resources": p.resources,
        "files_per_resource": [int(x["files"]) for x in parts],
        "bytes": total["bytes"],
        "file_bytes_mean": round(total["bytes"] / max(total["files"], 1)),
        "legacy_named": total["legacy"],
        "im_named": total["im"],
        "default_named": total["default"],
        "copies": total["pairs"],
        "differing_copies": total["differing"],
        "affected_files": sum(len(x["affected"]) for x in parts),
        "generation_s": round(elapsed, 2),
    }
    _publish(tmp, final, manifest, [a for x in parts for a in x["affected"]])
    log(f"generated {total['files']} files ({total['bytes'] / 2**20:.0f} MiB) in {elapsed:.1f} s")
    return Corpus("legacy", final / "root", asdict(p), manifest, elapsed)


def manifest_of(corpus: Corpus) -> str:
    return json.dumps({k: v for k, v in corpus.manifest.items() if k != "params"})
