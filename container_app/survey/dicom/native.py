"""The optional C module (`_walk.c`) and the switch that turns it off.

The C module speeds up the two hot loops of the DICOM reader: the element walk (`fast_path`) and
the first pass of value decoding (`decode`). Where it is missing, or turned off, both run in
Python with the same results. `ACCELERATED` says which one runs: the container image's test, the
benchmark and the admin guide print it.
"""

from __future__ import annotations

import os
from types import ModuleType

#: Set to 1 to run the pure-Python code even where the C module is built (comparisons, benchmarks).
PURE_PYTHON_ENV = "XNAT_RESOURCE_SURVEY_PURE_PYTHON"


def _load_native_module() -> ModuleType | None:
    """The C module when it was built and not turned off, else None: the Python code then."""
    if os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0"):
        return None
    try:
        from container_app.survey.dicom import _walk as native
    except ImportError:
        return None
    return native


NATIVE = _load_native_module()
ACCELERATED = NATIVE is not None
