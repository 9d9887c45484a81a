"""Fault switches of the stand-in: make chosen requests fail the ways real servers and networks fail."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

#: Named targets: the request categories `categories()` below gives each endpoint.
NAMED_TARGETS = frozenset({"upload", "delete", "files", "download", "refresh", "survey", "mitigate", "auth",
                           "listing", "resource", "any"})
STATUS_KINDS = frozenset({"401", "403", "404", "409", "500", "502", "503"})
#: Kinds that only make sense for some requests: they neither fire nor count elsewhere.
SPECIAL_KINDS = {"partial_upload": frozenset({"upload"}), "mitigation_error": frozenset({"mitigate_queue"})}
KINDS = STATUS_KINDS | frozenset({"slow", "drop"}) | frozenset(SPECIAL_KINDS)


def categories(method: str, segments: list[str]) -> frozenset[str]:
    """The named fault targets a request belongs to, from its normalised path segments (`/data/...`).

    Kept beside NAMED_TARGETS so that the names and the paths that earn them change together.
    `mitigate_queue` is not a target users name: it marks the requests `mitigation_error` applies to.
    """
    s = segments
    if (s[:2] == ["data", "services"] and len(s) > 2 and s[2] == "auth") or s[:2] == ["data", "auth"] or s == [
            "data", "JSESSION"] or not s:
        return frozenset({"auth"})
    if s[:4] == ["data", "services", "refresh", "catalog"]:
        return frozenset({"refresh"})
    if s[:3] == ["xapi", "resources", "survey"]:
        return frozenset({"survey"})
    if s[:3] == ["xapi", "resources", "mitigate"]:
        return frozenset({"mitigate", "mitigate_queue"} if method == "POST" else {"mitigate"})
    if "files" in s:
        index = s.index("files")
        if index == len(s) - 1:
            return frozenset({"files"} if method == "GET" else {"resource"})
        return frozenset({"download" if method == "GET" else "delete" if method == "DELETE" else "upload"})
    if s and s[-1] in ("projects", "experiments", "scans", "resources", "subjects"):
        return frozenset({"listing"})
    if len(s) >= 2 and s[-2] == "resources":
        return frozenset({"resource"})
    return frozenset()


@dataclass
class FaultRule:
    target: str
    kind: str
    times: int | None
    probability: float | None
    delay: float
    pattern: re.Pattern[str] | None
    rng: random.Random = field(repr=False, default_factory=random.Random)

    def matches(self, method: str, path: str, categories: frozenset[str]) -> bool:
        if self.pattern is not None:
            return self.pattern.search(f"{method} {path}") is not None
        return self.target == "any" or self.target in categories


@dataclass(frozen=True)
class Fired:
    target: str
    kind: str
    method: str
    path: str


class Faults:
    """Switches, settable while the stand-in runs: `set(target, kind, times=..., probability=..., seed=...)`.

    `target` is a named request category (see NAMED_TARGETS) or a regular expression searched in
    "METHOD /path". `kind` is an HTTP status ("401", "403", "404", "409", "500", "502", "503"), "slow"
    (answer after `delay` seconds), "drop" (close the connection without an answer), "partial_upload"
    (uploads: leave half the file on disk, no catalog change, answer 500) or "mitigation_error" (the
    queued mitigation ends in ERROR midway). `times=N` fires on the next N matches; `probability=p` fires
    at random with `seed`; neither fires on every match until `clear()`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self.fired: list[Fired] = []

    def set(self, target: str, kind: str, *, times: int | None = None, probability: float | None = None,
            seed: int = 0, delay: float = 1.0) -> None:
        kind = str(kind)
        if kind not in KINDS:
            raise ValueError(f"unknown stand-in fault kind {kind!r}: choose from {sorted(KINDS)}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        pattern = None if target in NAMED_TARGETS else re.compile(target)
        rule = FaultRule(target, kind, times, probability, delay, pattern, random.Random(seed))
        with self._lock:
            self._rules.append(rule)

    def clear(self, target: str | None = None) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if target is not None and r.target != target]

    @property
    def active(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def take(self, method: str, path: str, categories: frozenset[str]) -> list[FaultRule]:
        """The rules that fire on this request (one per kind at most), counting them down."""
        fired: list[FaultRule] = []
        with self._lock:
            for rule in list(self._rules):
                if any(f.kind == rule.kind for f in fired) or not rule.matches(method, path, categories):
                    continue
                allowed = SPECIAL_KINDS.get(rule.kind)
                if allowed is not None and not (allowed & categories):
                    continue
                if rule.probability is not None and rule.rng.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times == 0:
                        self._rules.remove(rule)
                fired.append(rule)
                self.fired.append(Fired(rule.target, rule.kind, method, path))
        return fired
