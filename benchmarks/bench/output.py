"""The results as Markdown tables (printed on stdout, pasted into the README) and as a JSON document (every
run, for reading past the best one)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from bench.corpus import Corpus
from bench.measurements import Measurement, fmt
from bench.timed_run import USE_GNU_TIME


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
            fmt(ours.best_s / m.best_s, ".2f") if ours and ours.best_s and m.best_s else "-")
        if m.tool == "ours-mitigate":
            parts = []
            for base, name in (("cp-affected", "cp"), ("cp-affected-sync", "cp+sync")):
                cp = next((x for x in ms if x.corpus == m.corpus and x.tool == base and x.best_s), None)
                if cp and cp.best_s and m.best_s:
                    parts.append(f"{m.best_s / cp.best_s:.2f} vs {name}")
            ratio = "; ".join(parts) or "-"
        rss = fmt(m.maxrss_mib, ".0f")
        if m.tree_peak_mib is not None:
            rss += f" (tree PSS {m.tree_peak_mib:.0f})"
        lines.append(f"| {m.corpus} | {label} | {fmt(m.best_s, '.3f')} | {fmt(m.files_per_s, ',.0f')} | "
                     f"{fmt(m.ms_per_file, '.3f')} | {fmt(m.ms_per_file_after_startup, '.3f')} | "
                     f"{ratio} | {rss} | {fmt(m.cpu_s, '.2f')} | "
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


def json_document(machine: dict[str, Any], corpora: Sequence[tuple[str, Corpus]], ms: Sequence[Measurement],
                  repeat: int) -> dict[str, Any]:
    return {
        "machine": machine,
        "repeat": repeat,
        "corpora": [{"name": n, "root": str(c.root), "kind": c.kind, "files": c.files,
                     "generation_s": c.generation_s, "cached": c.generation_s is None,
                     "manifest": c.manifest} for n, c in corpora],
        "measurements": [asdict(m) for m in ms],
    }
