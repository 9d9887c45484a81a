"""Generating the corpora (one process per core) and reusing them from the cache in ``--workdir``.

A corpus is generated into a hidden folder and renamed into place with its manifest in one step, so that a
folder under its final name is always complete (an interrupted run leaves only a hidden folder behind).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import struct
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.corpus_params import MultiParams, SingleParams
from bench.dicom_bytes import ENHANCED_MR_STORAGE, MR_STORAGE, Template, make_uid
from bench.mr_templates import PATIENT, build_multiframe_template, build_single_frame_template
from bench.progress import log
from bench.xnat_names import xnat_default_name, xnat_legacy_name


@dataclass(frozen=True)
class ScanJob:
    rel_dir: str  # directory of the scan's DICOM resource, relative to the corpus root
    session: int
    scan: int
    # (instance number, naming kind: "default" | "legacy" | "im", has a duplicate copy)
    instances: list[tuple[int, str, bool]]


@dataclass(frozen=True)
class ScanResult:
    """What a worker wrote; the defaults are those of no file at all, so that merging starts from them."""

    files: int = 0
    bytes: int = 0
    header_bytes: int = 0
    min_header: int = 1 << 30
    max_header: int = 0
    mismatched: int = 0
    duplicate_groups: int = 0
    affected: list[str] = field(default_factory=list)  # relative paths of mismatched and duplicate files


# Set in each worker by the pool's initializer: the templates are large (the multi-frame one is megabytes), so
# they are handed over once per worker (inherited by fork) instead of pickled with every job.
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
    affected: list[str] = []
    files = nbytes = header_bytes = mismatched = duplicate_groups = 0
    empty = ScanResult()
    min_header, max_header = empty.min_header, empty.max_header
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
        files += 1
        nbytes += len(data)
        if kind != "default":
            mismatched += 1
            affected.append(f"{job.rel_dir}/{name}")
        if dup:
            copy = legacy if kind == "default" else f"{inst}.dcm"
            _write_file(os.path.join(d, copy), data, FIXED_MTIME_NS)
            entries.append(CATALOG_ENTRY.format(name=copy, uid=sop, inst=inst))
            files += 1
            nbytes += len(data)
            duplicate_groups += 1
            affected += [f"{job.rel_dir}/{name}", f"{job.rel_dir}/{copy}"]
        header_bytes += header_size * (2 if dup else 1)
        min_header = min(min_header, header_size)
        max_header = max(max_header, header_size)
    if catalogs:
        with open(os.path.join(d, f"scan_{job.scan}_catalog.xml"), "w", encoding="utf-8") as fh:
            fh.write(CATALOG_HEAD.format(uid=series_uid) + "".join(entries) + CATALOG_TAIL)
    return ScanResult(files, nbytes, header_bytes, min_header, max_header, mismatched, duplicate_groups,
                      affected)


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
    empty = ScanResult()
    return ScanResult(
        files=sum(r.files for r in results),
        bytes=sum(r.bytes for r in results),
        header_bytes=sum(r.header_bytes for r in results),
        min_header=min([empty.min_header, *(r.min_header for r in results)]),
        max_header=max([empty.max_header, *(r.max_header for r in results)]),
        mismatched=sum(r.mismatched for r in results),
        duplicate_groups=sum(r.duplicate_groups for r in results),
        affected=[a for r in results for a in r.affected],
    )


@dataclass(frozen=True)
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
