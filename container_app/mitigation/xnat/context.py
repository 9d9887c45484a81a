"""What both ways of mitigating through XNAT share during one run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from container_app.mitigation.journal import Journal
from container_app.mitigation.xnat.archive import XnatArchive


@dataclass
class WayContext:
    archive: XnatArchive
    root: str
    run_id: str
    journal: Journal
    survey: Mapping[str, Mapping[str, Any]]  # our survey's resources by path
    wait_s: float
