"""Path rules for names that come from outside (archive layout values, reports): pure string checks."""

from __future__ import annotations

from container_app.core.errors import FileProblem
from container_app.core.naming import unsafe_name_reason


def safe_component(text: str | None) -> str:
    """A folder name for the backup layout: layout values come from the archive and must not steer paths."""
    if not text or unsafe_name_reason(text) or text.startswith("."):
        return "_"
    return text


def safe_relative(path: str) -> str:
    """A path from a report, checked to stay below ROOT."""
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") or unsafe_name_reason(p) for p in parts):
        raise FileProblem(f"the report names an unsafe path {path!r}")
    return path
