"""Timing one tool on one corpus: an untimed warm-up run that also validates the output, then ``--repeat``
timed runs, the best of which is reported (warm page cache: the warm-up run loads it)."""

from __future__ import annotations

import argparse
import shlex
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from bench.corpus import Corpus
from bench.measurements import Measurement, fmt
from bench.progress import log
from bench.report_totals import check_our_report
from bench.timed_run import RunResult, busy_note, run_measured, wait_quiet
from bench.tools import Tool


def bench_tool(tool: Tool, corpus: Corpus, corpus_name: str, args: argparse.Namespace,
               ours_env: dict[str, str], scratch: Path) -> Measurement:
    out = scratch / f"out-{tool.name}"
    cmd = tool.cmd_for(corpus.root, out)
    m = Measurement(corpus_name, corpus.files, tool.name, tool.label, shlex.join(cmd))
    if not tool.available:
        return replace(m, skipped=tool.why_missing)
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
            skipped = f"our survey failed (exit {warm.returncode}): {warm.stderr_tail.strip()[-600:]}"
            log(f"SKIP ours: {skipped}")
            return replace(m, skipped=skipped, returncode=warm.returncode)
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
    peaks = [r.tree_peak_kib for r in runs if r.tree_peak_kib is not None]
    busy = busy_note(runs, best)
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
    m = replace(
        m,
        runs_s=[round(r.seconds, 4) for r in runs],
        best_s=best.seconds,
        files_per_s=corpus.files / best.seconds if corpus.files else None,
        ms_per_file=1000 * best.seconds / corpus.files if corpus.files else None,
        maxrss_mib=max(r.maxrss_kib for r in runs) / 1024,
        tree_peak_mib=max(peaks) / 1024 if peaks else None,
        cpu_s=best.cpu_s,
        foreign_cpu_s=best.foreign_cpu_s,
        returncode=best.returncode,
        note="; ".join(n for n in notes if n) or None,
    )
    shutil.rmtree(out, ignore_errors=True)
    log(f"{corpus_name:>18} {tool.name:<15} best {best.seconds:8.3f} s  {fmt(m.files_per_s, '10.0f')} files/s  "
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


def add_after_startup(ms: Sequence[Measurement]) -> list[Measurement]:
    """``ms`` with ms/file after start-up for every run of our survey on a corpus (``ours`` and ``ours-python``).

    Done once all rows are in, because it needs the start-up row's best time.
    """
    startup = next((m for m in ms if m.tool == "ours-startup" and m.best_s), None)
    if startup is None or startup.best_s is None:
        return list(ms)
    startup_s = startup.best_s
    return [replace(m, ms_per_file_after_startup=1000 * (m.best_s - startup_s) / m.files)
            if m.tool in ("ours", "ours-python") and m.best_s and m.files else m
            for m in ms]
