"""Plain aligned tables for a terminal: the survey's summary, and the mitigation's rows."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from container_app.core.vocabulary import RequestStatus

_SUMMARY_COLUMNS = (("resource", "path"), ("status", "requestStatus"), ("files", "totalEntries"),
                    ("uids", "totalUids"), ("mismatched", "totalMismatchedFiles"), ("dup groups", "totalDuplicates"),
                    ("bad", "totalBadFiles"), ("identifying", "identifyingNames"))


def text_table(columns: Sequence[tuple[str, str]], rows: Iterable[Mapping[str, Any]]) -> str:
    """Rows as a plain aligned table: the first two columns left-aligned (names), the rest right (counts)."""
    table = [[h for h, _ in columns]] + [[str(r[k]) for _, k in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    out = io.StringIO()
    for i, row in enumerate(table):
        cells = zip(row, widths, strict=True)
        out.write("  ".join(c.ljust(w) if j < 2 else c.rjust(w) for j, (c, w) in enumerate(cells)).rstrip())
        out.write("\n")
        if i == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    return out.getvalue()


def summary_table(rows: Iterable[Mapping[str, Any]], totals: Mapping[str, int], limit: int = 40) -> str:
    """A plain table of the resources that need attention (and how many conform), for a terminal."""
    rows = list(rows)
    shown = [r for r in rows if r["requestStatus"] != RequestStatus.CONFORMING.value][:limit]
    out = io.StringIO()
    out.write(text_table(_SUMMARY_COLUMNS, shown))
    hidden = sum(1 for r in rows if r["requestStatus"] != RequestStatus.CONFORMING.value) - len(shown)
    if hidden > 0:
        out.write(f"... and {hidden} more resources needing attention (see the report)\n")
    unreadable = [folder for r in rows for folder in r.get("unreadableFolders", ())]
    for folder in unreadable[:limit]:  # an ERROR row alone does not say why: the system's reason does
        out.write(f"could not read folder {folder['path']}: {folder['error']}\n")
    if len(unreadable) > limit:
        out.write(f"... and {len(unreadable) - limit} more folders that could not be read (see the report)\n")
    out.write(
        f"{totals['resources']} resources, {totals['files']} files: {totals['conforming']} conforming, "
        f"{totals['divergent']} divergent, {totals['noncompliant']} noncompliant; "
        f"{totals['mismatchedFiles']} mismatched files, {totals['duplicates']} duplicate groups, "
        f"{totals['badFiles']} bad files, {totals['identifyingNames']} names with identifying values"
    )
    if totals.get("unreadableFolders"):
        out.write(f"; unreadable folders: {totals['unreadableFolders']}")
    out.write("\n")
    return out.getvalue()
