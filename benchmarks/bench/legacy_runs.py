"""The rows of issue 17 on one legacy corpus: survey warm and cold against gdcmscanner and the N-reader
floors, mitigation and restore against ``cp -a`` + ``sync`` of the affected files, each with the peak RSS of
the main process and of its largest worker."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.cold_cache import evict, floor_threads_cmd
from bench.corpus import Corpus
from bench.measurements import Measurement
from bench.process_peaks import PeakSampler
from bench.progress import log
from bench.timed_run import GNU_TIME, USE_GNU_TIME, busy_cpu_s, busy_note, wait_quiet
from bench.timed_run import RunResult as _RunResult


@dataclass(frozen=True)
class PeakRun:
    run: _RunResult
    main_mib: float
    worker_mib: float
    workers: int


def run_peaks(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              stdin_data: bytes | None = None) -> PeakRun:
    """Like ``timed_run.run_measured``, with the main process's and the largest worker's peak RSS."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        full = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name, *cmd] if USE_GNU_TIME else list(cmd)
        busy0 = busy_cpu_s()
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd,
                                stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL)
        sampler = PeakSampler(proc.pid)
        sampler.start()
        if stdin_data is not None:
            assert proc.stdin is not None
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(stdin_data)
            proc.stdin.close()
        _, status, ru = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        busy1 = busy_cpu_s()
        sampler.stop()
        err.seek(0)
        tail = err.read()[-4000:].decode("utf-8", "replace")
        text = rss.read().split() if USE_GNU_TIME else []
        maxrss = int(text[-1]) if text and text[-1].isdigit() else ru.ru_maxrss
    cpu = ru.ru_utime + ru.ru_stime
    foreign = None if busy0 is None or busy1 is None else max(0.0, busy1 - busy0 - cpu)
    r = _RunResult(elapsed, os.waitstatus_to_exitcode(status), maxrss, cpu, None, tail, foreign)
    # without workers, GNU time's %M is the main process's own peak (exact, not sampled)
    main = max(sampler.main_kib, maxrss if sampler.workers == 0 else 0)
    return PeakRun(r, main / 1024, sampler.worker_kib / 1024, sampler.workers)


def _measure(corpus_name: str, files: int, tool: str, label: str, cmd: list[str], runs: Sequence[PeakRun],
             extra_note: str | None = None) -> Measurement:
    best = min(runs, key=lambda p: p.run.seconds)
    b = best.run
    note = [extra_note, busy_note([p.run for p in runs], b),
            f"peak RSS main {best.main_mib:.0f} MiB, largest of {best.workers} workers {best.worker_mib:.0f} MiB"]
    if b.returncode not in (0, 1):
        note.insert(0, f"exit {b.returncode}: {b.stderr_tail.strip()[-300:]}")
    return Measurement(corpus_name, files, tool, label, shlex.join(cmd), runs_s=[round(p.run.seconds, 3) for p in runs],
                       best_s=b.seconds, files_per_s=files / b.seconds if files else None,
                       ms_per_file=1000 * b.seconds / files if files else None,
                       maxrss_mib=max(best.main_mib, best.worker_mib, b.maxrss_kib / 1024), cpu_s=b.cpu_s,
                       foreign_cpu_s=b.foreign_cpu_s, returncode=b.returncode,
                       note="; ".join(n for n in note if n))


def survey_rows(corpus: Corpus, name: str, cmds: dict[str, tuple[str, list[str]]], env: dict[str, str],
                repeat: int, quiet_s: float, cold: bool) -> list[Measurement]:
    """Every command of ``cmds`` (tool -> (label, command)), warm (after one untimed run) or cold."""
    out = []
    for tool, (label, cmd) in cmds.items():
        runs = []
        if not cold:
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up
        for _ in range(repeat):
            if cold:
                evict(corpus.root)
            wait_quiet(quiet_s)
            runs.append(run_peaks(cmd, env=env))
        m = _measure(name, corpus.files, f"{tool}{' (cold)' if cold else ''}", label, cmd, runs,
                     "page cache evicted (posix_fadvise DONTNEED) before each run" if cold else None)
        log(f"{name:>24} {m.tool:<22} best {m.best_s or 0:8.3f} s  {m.files_per_s or 0:9.0f} files/s  {m.note}")
        out.append(m)
    return out


def survey_commands(ours_cmd: list[str] | None, gdcm: list[str] | None, root: Path, out: Path,
                    readers: Sequence[int]) -> dict[str, tuple[str, list[str]]]:
    cmds: dict[str, tuple[str, list[str]]] = {}
    if ours_cmd is not None:
        cmds["ours"] = ("xnat-resource-survey survey", [*ours_cmd, "survey", str(root), "--output", str(out),
                                                        "--all-resources", "--log-format", "json"])
    if gdcm is not None:
        cmds["gdcmscanner"] = ("gdcmscanner -r -p (5 tags)", gdcm)
    for n in readers:
        cmds[f"floor-{n}-readers"] = (f"floor: pread 8 KB of every file, {n} threads", floor_threads_cmd(root, n))
    return cmds


def mitigation_rows(corpus: Corpus, name: str, ours_cmd: list[str] | None, env: dict[str, str], scratch: Path,
                    quiet_s: float, repeat: int = 1, in_place: bool = False) -> list[Measurement]:
    """``cp -a`` + ``sync`` of the affected files (the baseline), then our mitigate and restore.

    Ours runs on a ``cp -a`` copy of the corpus (untimed), or, with ``in_place`` (the million-file run, which
    has no room for a copy), on the corpus itself: restore puts it back, and a corpus whose restore failed is
    marked stale so that the next run regenerates it."""
    affected = [a for a in (corpus.root.parent / "affected.txt").read_text().splitlines() if a]
    backup = scratch / "cp-backup"
    cp_cmd = ["sh", "-c", 'xargs -0 cp -a --parents -t "$1" && sync -f "$1"', "sh", str(backup)]
    runs = []
    for _ in range(repeat):
        shutil.rmtree(backup, ignore_errors=True)
        backup.mkdir(parents=True)
        subprocess.run(["sync", "-f", str(scratch)], check=False)
        wait_quiet(quiet_s)
        runs.append(run_peaks(cp_cmd, cwd=corpus.root, stdin_data=b"\0".join(a.encode() for a in affected)))
    shutil.rmtree(backup, ignore_errors=True)
    rows = [_measure(name, len(affected), "cp -a + sync", f"cp -a --parents of the {len(affected):,} affected "
                     "files, then sync -f", cp_cmd, runs)]
    log(f"{name:>24} cp -a + sync best {rows[0].best_s or 0:.3f} s")
    if ours_cmd is None:
        return rows
    mit_runs, res_runs = [], []
    mit_cmd: list[str] = []
    res_cmd: list[str] = []
    for _ in range(repeat):
        target = corpus.root
        if not in_place:
            target = scratch / "mit-copy"
            shutil.rmtree(target, ignore_errors=True)
            subprocess.run(["cp", "-a", str(corpus.root), str(target)], check=True)
        sv, mo, ro, bdir = (scratch / d for d in ("mit-survey", "mit-out", "res-out", "mit-backup"))
        for d in (sv, mo, ro, bdir):
            shutil.rmtree(d, ignore_errors=True)
        s = subprocess.run([*ours_cmd, "survey", str(target), "--output", str(sv), "--all-resources",
                            "--log-format", "json"], env=env, capture_output=True, text=True)
        if s.returncode not in (0, 1):
            log(f"survey before mitigation failed: {s.stderr[-400:]}")
            break
        subprocess.run(["sync", "-f", str(target)], check=False)
        wait_quiet(quiet_s)
        mit_cmd = [*ours_cmd, "mitigate", str(target), "--report", str(sv / "survey-report.json"),
                   "--backup-dir", str(bdir), "--output", str(mo), "--log-format", "json"]
        mit_runs.append(run_peaks(mit_cmd, env=env))
        subprocess.run(["sync", "-f", str(target)], check=False)
        wait_quiet(quiet_s)
        res_cmd = [*ours_cmd, "restore", "--report", str(mo / "mitigation-report.json"), "--output", str(ro),
                   "--log-format", "json"]
        res_runs.append(run_peaks(res_cmd, env=env))
        if in_place and res_runs[-1].run.returncode != 0:
            (corpus.root.parent / "manifest.json").unlink(missing_ok=True)
            log("restore failed on the corpus itself: marked stale (regenerated next time)")
        if not in_place:
            shutil.rmtree(target, ignore_errors=True)
    for leftover in ("mit-survey", "mit-out", "res-out", "mit-backup"):
        shutil.rmtree(scratch / leftover, ignore_errors=True)
    if mit_runs:
        rows.append(_measure(name, len(affected), "ours mitigate", "xnat-resource-survey mitigate", mit_cmd, mit_runs))
        rows.append(_measure(name, len(affected), "ours restore", "xnat-resource-survey restore", res_cmd, res_runs))
        for r in rows[-2:]:
            log(f"{name:>24} {r.tool:<16} best {r.best_s or 0:.3f} s  {r.note}")
    return rows


def ratio_rows(ms: Sequence[Measurement]) -> list[tuple[str, str, float | None]]:
    """(corpus, comparison, ratio) for every target the issue sets that these rows can answer."""
    by = {(m.corpus, m.tool): m for m in ms}
    out: list[tuple[str, str, float | None]] = []

    def ratio(a: Measurement | None, b: Measurement | None) -> float | None:
        return None if a is None or b is None or not a.best_s or not b.best_s else a.best_s / b.best_s

    for corpus in dict.fromkeys(m.corpus for m in ms):
        g = by.get
        out += [
            (corpus, "survey files/s vs gdcmscanner, warm (want >= 1.0)", ratio(g((corpus, "gdcmscanner")),
                                                                                g((corpus, "ours")))),
            (corpus, "survey files/s vs gdcmscanner, cold (want >= 3.0)",
             ratio(g((corpus, "gdcmscanner (cold)")), g((corpus, "ours (cold)")))),
            (corpus, "survey time / 32-reader floor, cold (want <= 1.5)",
             ratio(g((corpus, "ours (cold)")), g((corpus, "floor-32-readers (cold)")))),
            (corpus, "mitigate time / cp -a + sync (want <= 2.0)", ratio(g((corpus, "ours mitigate")),
                                                                          g((corpus, "cp -a + sync")))),
            (corpus, "restore time / cp -a + sync (want <= 2.0)", ratio(g((corpus, "ours restore")),
                                                                         g((corpus, "cp -a + sync")))),
        ]
    return [r for r in out if r[2] is not None]


def with_corpus(ms: Sequence[Measurement], corpus: str) -> list[Measurement]:
    return [replace(m, corpus=corpus) for m in ms]
