"""Moments as reports write them: UTC, milliseconds, and run ids that sort by time."""

from __future__ import annotations

import datetime as dt
import secrets


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(moment: dt.datetime) -> str:
    return f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(4)}"
