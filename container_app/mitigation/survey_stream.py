"""The survey report read resource by resource (issue 17): a mitigation never holds the whole report.

The report is read twice. The first pass checks all of it before anything changes: each resource
against the schema's resource definition as it arrives, the envelope once it is complete, and the
checks of `core.report_checks` (fed the resources as a stream), and counts what the plan will do. The
second pass plans and executes resource by resource. Both passes hash the bytes they read: the
second refuses a report whose bytes are not the ones the first checked. The parsing is ijson's
(a streaming JSON parser), never our own.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import ijson  # type: ignore[import-untyped]  # ijson ships no type information

from container_app.core.errors import ReportError, ReportValidationError
from container_app.core.plan import ResourcePlan, plan_mitigation
from container_app.core.report_checks import MAX_PROBLEMS_SHOWN, survey_report_problems
from container_app.core.vocabulary import KeepPolicy
from container_app.reports.schemas import SURVEY_SCHEMA, validate

RESOURCES = "resources"
#: The key `ReportStream.fields` gives each resource under; `resources` itself comes first, as an empty list.
RESOURCE = "resources[]"
_STARTS = frozenset({"start_map", "start_array"})
_ENDS = frozenset({"end_map", "end_array"})


class _HashingReader:
    """A binary handle's `read`, hashing every byte handed to the parser."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sha256.update(data)
        return data


def _build(event: str, value: Any, events: Iterator[tuple[str, str, Any]]) -> Any:
    """One JSON value, from its first event to its last."""
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1 if event in _STARTS else 0
    while depth:
        _, event, value = next(events)
        if event == "map_key":
            # Every file's document has the same few keys: one string each, not one per file (the parser
            # makes a new one per occurrence; at 36,000 files a resource that is ~25 MB of copies).
            value = sys.intern(value)
        builder.event(event, value)
        depth += 1 if event in _STARTS else -1 if event in _ENDS else 0
    return builder.value


def _top_level(events: Iterator[tuple[str, str, Any]], path: str) -> Iterator[tuple[str, Any]]:
    """The report's fields in file order; `resources` as an empty list, then one (RESOURCE, resource) per resource."""
    _, event, _ = next(events)
    if event != "start_map":
        raise ReportError(f"{path} is not a report: its JSON is not an object")
    seen: set[str] = set()
    for _, event, key in events:
        if event == "end_map":
            return
        if key in seen:  # json.loads would keep the last silently; two `resources` lists are two reports
            raise ReportError(f"{path} is not a JSON report: the field {key!r} appears twice")
        seen.add(key)
        _, event, value = next(events)
        if key == RESOURCES and event == "start_array":
            yield RESOURCES, []
            for _, event, value in events:
                if event == "end_array":
                    break
                yield RESOURCE, _build(event, value, events)
        else:
            yield key, _build(event, value, events)


#: ijson's C parser (yajl) for speed; its pure-Python one for the reports it cannot read: those with file
#: names that are not UTF-8, which the survey writes as the JSON escapes of lone surrogates (`\\udcff`).
FAST = ijson
EXACT = ijson.get_backend("python")


class NotUtf8Names(ReportError):
    """The fast parser met a name that is not UTF-8: read the report again with EXACT."""


class ReportStream:
    """One read of a report file: `fields()` as `_top_level` gives them; `sha256` of every byte once read."""

    def __init__(self, path: str, backend: Any = FAST) -> None:
        self.path = path
        self.backend = backend
        self.sha256: str | None = None

    def fields(self) -> Iterator[tuple[str, Any]]:
        path = self.path
        try:
            with open(path, "rb") as handle:
                reader = _HashingReader(handle)
                try:
                    yield from _top_level(self.backend.parse(reader, use_float=True), path)
                    # What follows the object (ijson refuses anything but white space) is hashed too.
                    while reader.read(1 << 16):
                        pass
                except UnicodeDecodeError as exc:
                    if self.backend is FAST:
                        raise NotUtf8Names(str(exc)) from None
                    raise ReportError(f"{path} is not a JSON report: {exc}") from None
                except (ijson.JSONError, ValueError, StopIteration) as exc:
                    raise ReportError(f"{path} is not a JSON report: {exc or 'it ends early'}") from None
        except OSError as exc:
            raise ReportError(f"cannot read report {path}: {exc.strerror or exc}") from exc
        self.sha256 = reader.sha256.hexdigest()


def plan_of(resource: dict[str, Any], keep: KeepPolicy, envelope: dict[str, Any]) -> ResourcePlan | None:
    """A resource's plan, or None when nothing is planned for it (the whole plan's rule, one resource)."""
    head = {"runId": envelope.get("runId"), "root": envelope.get("root"), "template": envelope.get("template")}
    plans = plan_mitigation({**head, RESOURCES: [resource]}, keep).resources
    return plans[0] if plans else None


@dataclass(frozen=True, slots=True)
class CheckedReport:
    """What the first pass learnt: the envelope (no resources), the bytes' digest, what the plan holds."""

    envelope: dict[str, Any]
    sha256: str
    planned_resources: int
    planned_actions: int
    backend: Any = FAST  # the parser that read it: the second pass uses the same


def check_survey_report(path: str, keep: KeepPolicy) -> CheckedReport:
    """Validate and check the whole report, resource by resource; raise ReportError if it cannot be used."""
    try:
        return _checked(path, keep, FAST)
    except NotUtf8Names:
        return _checked(path, keep, EXACT)


def _checked(path: str, keep: KeepPolicy, backend: Any) -> CheckedReport:
    stream = ReportStream(path, backend)
    envelope: dict[str, Any] = {}
    counts = {"resources": 0, "actions": 0}

    def resources() -> Iterator[dict[str, Any]]:
        for key, value in stream.fields():
            if key != RESOURCE:
                envelope[key] = value
                continue
            _validated(path, value, "resource")
            yield value
            # Counted only once checked: planning an unchecked resource could fail on what the checks refuse.
            if not survey_report_problems({RESOURCES: [value]}):
                plan = plan_of(value, keep, {})
                if plan is not None:
                    counts["resources"] += 1
                    counts["actions"] += len(plan.actions)

    problems = survey_report_problems({RESOURCES: resources()})
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN]) + ("; ..." if len(problems) > MAX_PROBLEMS_SHOWN else "")
        raise ReportError(f"{path} cannot be used for a mitigation, nothing was changed: {shown}")
    assert stream.sha256 is not None  # no early return without problems: the whole file was read
    _validated(path, envelope, None)  # with its list empty, as the survey checks it when it writes it
    envelope.pop(RESOURCES, None)
    return CheckedReport(envelope, stream.sha256, counts["resources"], counts["actions"], backend)


def _validated(path: str, document: dict[str, Any], definition: str | None) -> None:
    try:
        validate(document, SURVEY_SCHEMA, definition)
    except ReportValidationError as exc:
        raise ReportError(f"{path} is not a valid {SURVEY_SCHEMA.split('.')[0]}: {exc}") from exc


def survey_resources(path: str, checked: CheckedReport) -> Iterator[dict[str, Any]]:
    """The second pass: `path`'s resources, and at the end a ReportError if its bytes are not those checked."""
    stream = ReportStream(path, checked.backend)
    sha256 = checked.sha256
    for key, value in stream.fields():
        if key == RESOURCE:
            yield value
    if stream.sha256 != sha256:
        raise ReportError(f"{path} changed while the mitigation read it; survey again")
