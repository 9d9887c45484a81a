"""A corpus's parameters, and from them its cache key and folder name.

The key is a hash of ``asdict(params)``, so every field's name, default and order are part of it: renaming,
adding or reordering a field (or changing a default) moves every cached corpus to a new folder. Bump
``GENERATOR_VERSION`` instead when the content changes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

GENERATOR_VERSION = 5  # bump when the corpus content changes, so that cached corpora are rebuilt


def params_key(params: Any) -> str:
    """The corpus cache key: a hash of every parameter (and the generator's version), so any change regenerates."""
    return hashlib.sha1(json.dumps(asdict(params), sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class SingleParams:
    files: int
    files_per_scan: int = 200
    mismatch_ratio: float = 0.05
    duplicate_ratio: float = 0.02
    layout: str = "session"  # session | project
    scans_per_session: int = 10  # project layout only
    catalogs: bool = True
    seed: int = 20240601
    version: int = GENERATOR_VERSION

    def key(self) -> str:
        return params_key(self)

    def dirname(self) -> str:
        return f"single-{self.files}-{self.layout}-{self.key()}"


@dataclass(frozen=True)
class MultiParams:
    files: int = 200
    frames: int = 5000
    catalogs: bool = True
    seed: int = 20240601
    version: int = GENERATOR_VERSION

    def key(self) -> str:
        return params_key(self)

    def dirname(self) -> str:
        return f"multiframe-{self.files}x{self.frames}-{self.key()}"
