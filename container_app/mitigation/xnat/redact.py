"""Secrets kept out of every log line, report and message."""

from __future__ import annotations

import re
from collections.abc import Collection
from urllib.parse import quote

__all__ = ["Redactor"]


class Redactor:
    """Removes secrets from any text before it reaches a log, a report or an exception."""

    def __init__(self, secrets: Collection[str | None]) -> None:
        # Longest first, so a secret containing another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
            encoded = quote(secret, safe="")
            if encoded != secret:
                text = text.replace(encoded, "***")
        return re.sub(r"(JSESSIONID=)[^;\s&]+", r"\1***", text)
