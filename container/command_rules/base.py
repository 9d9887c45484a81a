"""The checker every rule reports to, and the small checks all parts of the command share."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .vocabulary import ILLEGAL_INPUT_STRINGS, NAME_RE, RULES, SPLIT_UNSAFE_RE


def is_blank(value: Any) -> bool:
    """Missing, not a string, or only whitespace: XNAT treats all of these as absent."""
    return not isinstance(value, str) or not value.strip()


def replacement_key(item: Mapping[str, Any]) -> str:
    """The key XNAT replaces in the command line: the given one, else ``#name#``."""
    raw = item.get("replacement-key")
    return raw if isinstance(raw, str) and raw.strip() else f"#{item.get('name', '')}#"


class Checker:
    """One run over one command: the rule modules report here, in the order they check."""

    def __init__(self, command: Mapping[str, Any]) -> None:
        self.command = command
        self.errors: list[str] = []

    def error(self, where: str, message: str, rule: str) -> None:
        assert rule in RULES, rule
        self.errors.append(f"{where}: {message} [{rule}]")

    # -- shared helpers -------------------------------------------------------------------------------
    def objects(self, where: str, value: Any) -> list[Mapping[str, Any]]:
        """A list of JSON objects (anything else is reported and skipped)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(where, f"must be a list, found {type(value).__name__}", "json-type")
            return []
        items: list[Mapping[str, Any]] = []
        for index, item in enumerate(value):
            if isinstance(item, Mapping):
                items.append(item)
            else:
                self.error(f"{where}[{index}]", "must be an object", "json-type")
        return items

    def keys(self, where: str, item: Mapping[str, Any], known: Iterable[str]) -> None:
        for key in sorted(set(item) - set(known)):
            self.error(where, f"unknown key {key!r}", "unknown-key")

    def name(self, where: str, item: Mapping[str, Any], seen: set[str], kind: str) -> str:
        name = item.get("name")
        if is_blank(name):
            self.error(where, f"{kind} name cannot be blank", "name-chars")
            return ""
        assert isinstance(name, str)
        if not NAME_RE.match(name):
            self.error(where, f"{kind} name {name!r} may contain only A-Z a-z 0-9 _ -", "name-chars")
        if name in seen:
            self.error(where, f"{kind} name {name!r} is not unique", "unique-name")
        seen.add(name)
        return name

    def text(self, where: str, item: Mapping[str, Any], key: str, rule: str) -> None:
        if is_blank(item.get(key)):
            self.error(where, f"{key} must be present and not blank", rule)

    def boolean(self, where: str, item: Mapping[str, Any], key: str, *, required: bool = False) -> None:
        if key in item and not isinstance(item[key], bool):
            self.error(where, f"{key} must be true or false (a JSON boolean)", "json-type")
        elif required and key not in item:
            self.error(where, f"{key} must be set", "required-field")

    def launch_value(self, where: str, what: str, value: Any) -> None:
        """Values XNAT puts on the command line: refused strings, and splitting without a shell."""
        if not isinstance(value, str):
            self.error(where, f"{what} must be a string", "json-type")
            return
        for illegal in ILLEGAL_INPUT_STRINGS:
            if illegal in value:
                self.error(where, f"{what} {value!r} contains {illegal!r}, which XNAT refuses", "illegal-value")
        if self.command.get("override-entrypoint") is False and SPLIT_UNSAFE_RE.search(value):
            self.error(
                where,
                f"{what} {value!r} contains whitespace, a quote or a backslash; without a shell the "
                "Container Service splits or strips it",
                "split-unsafe",
            )
