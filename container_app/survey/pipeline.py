"""The survey pipeline: discover resources, read headers in worker processes, classify, check content.

Yields one `ResourceFindings` per resource as soon as it is complete, so reports stream and memory
stays bounded by the largest resource, not the archive.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from multiprocessing.pool import Pool
from typing import Any, TypeVar

import structlog

from container_app.core.classify import ResourceFindings, classify, with_content_checks, with_deidentification
from container_app.core.deidentification import CopySignals
from container_app.core.naming import NamingTemplate
from container_app.core.records import ContentCheck, FileRecord, Resource
from container_app.core.vocabulary import Reason
from container_app.survey.deidentification import TABLE_EDITION, XnatLabels, signals_chunk
from container_app.survey.dicom.read_plan import ReadPlan
from container_app.survey.dicom.reader import check_content, survey_file
from container_app.survey.discover import Selection, discover, load_catalog

log = structlog.get_logger("xnat_resource_survey.survey")

T = TypeVar("T")

PROGRESS_EVERY_S = 10.0
_CHUNK = 128  # files per task when every worker reads a share of one big resource
_BIG_RESOURCE = 2048  # larger resources are read in chunks by every worker, then classified here


def _identity(findings: ResourceFindings) -> ResourceFindings:
    return findings


@dataclass(frozen=True, slots=True)
class _WorkerContext:
    root: str
    read_plan: ReadPlan
    template: NamingTemplate
    render: Callable[[ResourceFindings], Any]


_context: _WorkerContext | None = None  # set once per worker process


def _init_worker(context: _WorkerContext) -> None:
    global _context
    _context = context


def _read_chunk(task: tuple[str, Sequence[str]]) -> list[FileRecord]:
    directory, names = task
    assert _context is not None
    read_plan = _context.read_plan
    return [survey_file(directory, name, read_plan) for name in names]


def _check_chunk(task: tuple[str, Sequence[str]]) -> list[tuple[str, ContentCheck | None]]:
    directory, names = task
    results: list[tuple[str, ContentCheck | None]] = []
    for name in names:
        try:
            results.append((name, check_content(os.path.join(directory, name))))
        except OSError:
            results.append((name, None))
    return results


def _survey_resource(task: tuple[int, Resource | None]) -> tuple[int, Any]:
    """A whole (small) resource in one worker: read, classify, check, render. None marks a big one."""
    index, resource = task
    if resource is None:
        return index, None
    assert _context is not None
    directory = _directory(_context.root, resource)
    records = _read_chunk((directory, resource.files))
    findings = _classify(_context.root, resource, records, _context.template, _check_chunk, signals_chunk)
    return index, _context.render(findings)


@dataclass(frozen=True, slots=True)
class SurveyRequest:
    root: str
    template: NamingTemplate
    selection: Selection
    jobs: int


@dataclass(slots=True)
class Progress:
    total_files: int
    done_files: int = 0
    started: float = 0.0
    last_report: float = 0.0


def resources_to_survey(request: SurveyRequest) -> list[Resource]:
    """The resources under ROOT that the request selects, in order; folders that cannot be listed are logged.

    Such a folder stays among the resources (with no files and the reason, or as part of its XNAT
    resource), so that every report shows it and counts it.
    """
    resources = list(discover(request.root, request.selection))
    for resource in resources:
        for folder in resource.unreadable:
            log.warning("folder unreadable", path=folder.path, reason=folder.error, resource=resource.rel_path)
    return resources


def run(request: SurveyRequest, resources: Sequence[Resource],
        on_progress: Callable[[Progress], None] | None = None,
        render: Callable[[ResourceFindings], T] = _identity) -> Iterator[T]:  # type: ignore[assignment]
    """Survey `resources` (from `resources_to_survey`), yielding `render(findings)` resource by resource, in order.

    `render` runs in the worker that surveyed the resource, so turning findings into report text is
    spread over the workers too; it must be a module-level function.
    """
    root = os.path.abspath(request.root)
    context = _WorkerContext(root, ReadPlan.for_keywords(request.template.keywords), request.template, render)
    progress = Progress(total_files=sum(len(r.files) for r in resources), started=time.monotonic())
    progress.last_report = progress.started
    units = [(i, r if len(r.files) <= _BIG_RESOURCE else None) for i, r in enumerate(resources)]

    pool = _pool(request.jobs, context)
    try:
        if pool is None:
            _init_worker(context)
            results: Iterator[tuple[int, Any]] = map(_survey_resource, units)
        else:
            results = pool.imap(_survey_resource, units)
        for index, rendered in results:
            resource = resources[index]
            if rendered is None:
                rendered = render(_survey_big(context, resource, pool))
            progress.done_files += len(resource.files)
            _maybe_report(progress, on_progress)
            yield rendered
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _survey_big(context: _WorkerContext, resource: Resource, pool: Pool | None) -> ResourceFindings:
    """A resource too big for one worker: every worker reads a share of it."""
    directory = _directory(context.root, resource)
    chunks = [(directory, resource.files[i : i + _CHUNK]) for i in range(0, len(resource.files), _CHUNK)]
    parts = pool.map(_read_chunk, chunks) if pool is not None else map(_read_chunk, chunks)
    records = [record for part in parts for record in part]

    def check(task: tuple[str, Sequence[str]]) -> list[tuple[str, ContentCheck | None]]:
        if pool is None:
            return _check_chunk(task)
        directory, names = task
        shares = [(directory, names[i : i + 16]) for i in range(0, len(names), 16)]
        return [pair for part in pool.map(_check_chunk, shares) for pair in part]

    def read_signals(task: _SignalsTask) -> list[tuple[str, CopySignals | None]]:
        if pool is None:
            return signals_chunk(task)
        directory, names, labels = task
        shares = [(directory, names[i : i + 4], labels) for i in range(0, len(names), 4)]
        return [pair for part in pool.map(signals_chunk, shares) for pair in part]

    return _classify(context.root, resource, records, context.template, check, read_signals)


def _maybe_report(progress: Progress, on_progress: Callable[[Progress], None] | None) -> None:
    now = time.monotonic()
    if on_progress is not None and now - progress.last_report >= PROGRESS_EVERY_S:
        progress.last_report = now
        on_progress(progress)


def _pool(jobs: int, context: _WorkerContext) -> Pool | None:
    if jobs <= 1:
        return None
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(jobs, initializer=_init_worker, initargs=(context,))


def _directory(root: str, resource: Resource) -> str:
    return root if resource.rel_path == "." else os.path.join(root, *resource.rel_path.split("/"))


_SignalsTask = tuple[str, Sequence[str], XnatLabels]


def _classify(root: str, resource: Resource, records: list[FileRecord], template: NamingTemplate,
              check: Callable[[tuple[str, Sequence[str]]], list[tuple[str, ContentCheck | None]]],
              read_signals: Callable[[_SignalsTask], list[tuple[str, CopySignals | None]]]) -> ResourceFindings:
    directory = _directory(root, resource)
    resource = load_catalog(root, resource)
    records = [_judge_link(root, directory, r) for r in records]
    records.sort(key=lambda r: r.name)
    findings = classify(resource, records, template)
    to_check = findings.to_check()
    if not to_check:
        return findings
    checks = {name: result for name, result in check((directory, to_check)) if result is not None}
    findings = with_content_checks(findings, checks)
    # Copies of one instance whose bytes differ: which discloses more (issue 15). Only these are read
    # further, so a resource without such groups pays nothing.
    differing = findings.differing_copies()
    if not differing:
        return findings
    labels = XnatLabels(session=resource.identity.session, subject=resource.identity.subject)
    signals = {name: result for name, result in read_signals((directory, differing, labels)) if result is not None}
    return with_deidentification(findings, signals, TABLE_EDITION)


def _judge_link(root: str, directory: str, record: FileRecord) -> FileRecord:
    """A symbolic link is never read; say whether it points out of ROOT."""
    if Reason.SYMLINK not in record.reasons:
        return record
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(directory, record.name))
    if os.path.commonpath([real_root, target]) != real_root:
        return replace(record, reasons=(Reason.SYMLINK_OUTSIDE_ROOT,), detail="symbolic link leading out of ROOT")
    return record
