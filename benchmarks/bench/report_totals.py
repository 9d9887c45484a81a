"""Checking our survey's report against the totals the corpus was generated with, so that a fast but wrong
survey cannot pass unnoticed (the validation run of every ``ours`` row)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.corpus import Corpus


def find_totals(doc: Any) -> dict[str, int] | None:
    """Sum XNAT-style totals found in a survey report (top level, or over its resources)."""
    keys = ("totalMismatchedFiles", "totalDuplicates", "totalFilesInDuplicates", "totalBadFiles",
            "totalNonActionableDuplicates", "totalMovedFiles", "totalRemovedFiles", "totalFileErrors")
    best: tuple[int, list[dict[str, Any]]] | None = None

    def visit(node: Any, depth: int) -> None:
        nonlocal best
        if isinstance(node, dict):
            if any(k in node for k in keys):
                if best is None or depth < best[0]:
                    best = (depth, [node])
                elif depth == best[0]:
                    best[1].append(node)
                return
            for v in node.values():
                visit(v, depth + 1)
        elif isinstance(node, list):
            for v in node:
                visit(v, depth + 1)

    visit(doc, 0)
    if best is None:
        return None
    out: dict[str, int] = {}
    for node in best[1]:
        for k in keys:
            if isinstance(node.get(k), int):
                out[k] = out.get(k, 0) + node[k]
    return out


def check_our_report(out_dir: Path, corpus: Corpus) -> str:
    report = out_dir / "survey-report.json"
    if not report.is_file():
        return "no survey-report.json written"
    try:
        doc = json.loads(report.read_text())
        totals = find_totals(doc)
    except (OSError, ValueError) as exc:
        return f"survey-report.json unreadable: {exc}"
    if corpus.kind == "empty":
        files = doc.get("totals", {}).get("files") if isinstance(doc, dict) else None
        return "report written, 0 files" if files == 0 else f"MISMATCH: report says {files} files, expected 0"
    if totals is None:
        return "no XNAT-style totals found in survey-report.json"
    diffs = [f"{k} {totals.get(k)} != expected {v}" for k, v in corpus.manifest["expected"].items()
             if k in totals and totals[k] != v]
    return "report totals match the corpus" if not diffs else "MISMATCH: " + "; ".join(diffs)
