"""The record of one tool on one corpus, as the tables show it and the JSON holds it (``asdict``: the field
order is the JSON's key order)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Measurement:
    corpus: str
    files: int
    tool: str
    label: str
    command: str
    runs_s: list[float] = field(default_factory=list)
    best_s: float | None = None
    files_per_s: float | None = None
    ms_per_file: float | None = None
    ms_per_file_after_startup: float | None = None  # ours only: (best - start-up best) / files
    maxrss_mib: float | None = None
    tree_peak_mib: float | None = None
    cpu_s: float | None = None
    foreign_cpu_s: float | None = None  # CPU used by other processes during the best run
    returncode: int | None = None
    skipped: str | None = None
    note: str | None = None


def fmt(v: float | None, spec: str) -> str:
    """A figure, or "-" when there is none (skipped tool, empty corpus)."""
    return "-" if v is None else format(v, spec)
