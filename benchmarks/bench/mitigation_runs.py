"""Timing our ``mitigate`` on a fresh copy of a corpus against ``cp`` of the affected files, and against that
``cp`` followed by ``sync -f`` (the fair baseline: our mitigation makes its backups durable before it touches
any original, which plain cp does not)."""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from bench.corpus import Corpus
from bench.measurements import Measurement
from bench.progress import log
from bench.report_totals import find_totals
from bench.timed_run import RunResult, busy_note, run_measured, wait_quiet


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
        runs: list[RunResult] = []
        for _ in range(args.repeat + 1):
            shutil.rmtree(backup, ignore_errors=True)
            backup.mkdir(parents=True)
            sync_fs(backup)  # the run before's writes are flushed first: each run starts with an idle disk
            wait_quiet(args.wait_quiet)
            runs.append(run_measured(cp_cmd, cwd=corpus.root, stdin_data=stdin_data))
        runs = runs[1:]  # first was the warm-up
        best = min(runs, key=lambda r: r.seconds)
        note = busy_note(runs, best)
        if best.returncode != 0:
            note = "; ".join(filter(None, [f"exit {best.returncode}: {best.stderr_tail.strip()[-200:]}", note]))
        m = Measurement(corpus_name, n_aff, tool_name, label, shlex.join(cp_cmd) + " < affected-list",
                        runs_s=[round(r.seconds, 4) for r in runs], best_s=best.seconds,
                        files_per_s=n_aff / best.seconds if n_aff else None, maxrss_mib=best.maxrss_kib / 1024,
                        cpu_s=best.cpu_s, foreign_cpu_s=best.foreign_cpu_s, returncode=best.returncode, note=note)
        results.append(m)
        log(f"{corpus_name:>18} {tool_name:<15} best {best.seconds:8.3f} s  runs {m.runs_s}")
        shutil.rmtree(backup, ignore_errors=True)

    row = Measurement(corpus_name, n_aff, "ours-mitigate", "xnat-resource-survey mitigate (on a copy)", "")
    if ours_cmd is None:
        results.append(replace(row, skipped="our CLI is not importable"))
        return results
    # what the runs below find out; the row is built from them once they are over
    command = ""
    skipped: str | None = None
    mit_note: str | None = None
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
            skipped = f"survey of the copy failed (exit {sv.returncode}): {sv.stderr_tail.strip()[-400:]}"
            break
        # like cp+sync's: mitigate's syncfs should flush its own writes, not the untimed copy's
        sync_s = sync_fs(copy)
        wait_quiet(args.wait_quiet)
        cmd = [*ours_cmd, "mitigate", str(copy), "--report", str(out1 / "survey-report.json"),
               "--backup-dir", str(bdir), "--output", str(out2), "--log-format", "json"]
        command = shlex.join(cmd)
        r = run_measured(cmd, env=ours_env, sample_tree=True)
        if r.returncode == 2 and i == 0:  # usage error: probably the option set or subcommand is not there
            r2 = run_measured(cmd[:-2], env=ours_env, sample_tree=True)  # without --log-format
            if r2.returncode in (0, 1):
                r, command = r2, shlex.join(cmd[:-2])
        if r.returncode not in (0, 1):
            skipped = f"mitigate failed (exit {r.returncode}): {r.stderr_tail.strip()[-600:]}"
            log(f"SKIP ours-mitigate: {skipped}")
            break
        if r.returncode == 1:
            mit_note = "exit 1 (mitigation left errors)"
        report = out2 / "mitigation-report.json"
        if report.is_file() and i == 0:
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(report.read_text())
                totals = doc.get("totals") if isinstance(doc.get("totals"), dict) else find_totals(doc)
                exp = corpus.manifest["expected"]
                mit_note = "; ".join(filter(None, [
                    mit_note, f"report totals {json.dumps(totals)}",
                    f"corpus: {exp['totalMismatchedFiles']} mismatches, {exp['totalDuplicates']} duplicate pairs"]))
        runs.append(r)
        log(f"mitigation run {i + 1}: {r.seconds:.3f} s (corpus copy took {copy_s:.1f} s and the sync after "
            f"the survey {sync_s:.1f} s, not counted)")
        shutil.rmtree(copy, ignore_errors=True)
    row = replace(row, command=command, skipped=skipped, note=mit_note)
    if runs:
        best = min(runs, key=lambda r: r.seconds)
        peaks = [r.tree_peak_kib for r in runs if r.tree_peak_kib is not None]
        row = replace(
            row,
            runs_s=[round(r.seconds, 4) for r in runs],
            best_s=best.seconds,
            files_per_s=n_aff / best.seconds if n_aff else None,
            maxrss_mib=max(r.maxrss_kib for r in runs) / 1024,
            tree_peak_mib=max(peaks) / 1024 if peaks else None,
            cpu_s=best.cpu_s,
            foreign_cpu_s=best.foreign_cpu_s,
            returncode=best.returncode,
            note="; ".join(filter(None, [mit_note, busy_note(runs, best)])),
        )
    for name in ("mitigation-copy", "mit-survey", "mit-out", "mit-backup"):
        shutil.rmtree(scratch / name, ignore_errors=True)
    results.append(row)
    return results
