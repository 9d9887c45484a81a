"""Progress lines: on stderr, so that stdout carries only the Markdown tables (pasted into the README)."""

from __future__ import annotations

import sys


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)
