"""Mounts: absolute paths and an explicit ``writable``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Checker, is_blank
from .vocabulary import MOUNT_KEYS


def check_mounts(checker: Checker) -> dict[str, Mapping[str, Any]]:
    """The mounts by name, for the output and wrapper input rules that refer to them."""
    mounts: dict[str, Mapping[str, Any]] = {}
    seen: set[str] = set()
    for index, mount in enumerate(checker.objects("mounts", checker.command.get("mounts"))):
        where = f"mounts[{index}]"
        checker.keys(where, mount, MOUNT_KEYS)
        name = checker.name(where, mount, seen, "mount")
        path = mount.get("path")
        if is_blank(path) or not str(path).startswith("/"):
            checker.error(where, f"path must be an absolute path, found {path!r}", "mount-path")
        checker.boolean(where, mount, "writable", required=True)
        if name:
            mounts[name] = mount
    return mounts
