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

import structlog

from container_app.classify import ResourceFindings, classify, with_content_checks
from container_app.discover import Selection, discover
from container_app.headers import ContentCheck, ReadPlan, check_content, survey_file
from container_app.naming import NamingTemplate
from container_app.records import FileRecord, Reason, Resource

log = structlog.get_logger("xnat_resource_survey.survey")

_CHUNK = 128
PROGRESS_EVERY_S = 10.0

_plan: ReadPlan | None = None  # set once per worker process


def _init_worker(plan: ReadPlan) -> None:
    global _plan
    _plan = plan


def _read_chunk(task: tuple[int, str, Sequence[str]]) -> tuple[int, list[FileRecord]]:
    index, directory, names = task
    assert _plan is not None
    return index, [survey_file(directory, name, _plan) for name in names]


def _check_chunk(task: tuple[str, Sequence[str]]) -> list[tuple[str, ContentCheck | None]]:
    directory, names = task
    results: list[tuple[str, ContentCheck | None]] = []
    for name in names:
        try:
            results.append((name, check_content(os.path.join(directory, name))))
        except OSError:
            results.append((name, None))
    return results


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


def plan_resources(request: SurveyRequest) -> list[Resource]:
    def skipped(path: str, why: str) -> None:
        if why != "not selected":
            log.warning("folder skipped", path=path, reason=why)

    return list(discover(request.root, request.selection, on_skip=skipped))


def run(request: SurveyRequest, resources: Sequence[Resource],
        on_progress: Callable[[Progress], None] | None = None) -> Iterator[ResourceFindings]:
    """Survey `resources` (from `plan_resources`), yielding findings resource by resource, in order."""
    root = os.path.abspath(request.root)
    plan = ReadPlan.for_keywords(request.template.keywords)
    progress = Progress(total_files=sum(len(r.files) for r in resources), started=time.monotonic())
    progress.last_report = progress.started

    tasks = [
        (index, _directory(root, resource), resource.files[i : i + _CHUNK])
        for index, resource in enumerate(resources)
        for i in range(0, len(resource.files), _CHUNK)
    ]
    expected_chunks = [0] * len(resources)
    for index, _directory_path, _names in tasks:
        expected_chunks[index] += 1

    pool = _pool(request.jobs, plan)
    try:
        results: Iterator[tuple[int, list[FileRecord]]]
        if pool is None:
            _init_worker(plan)
            results = map(_read_chunk, tasks)
        else:
            results = pool.imap(_read_chunk, tasks)
        records: dict[int, list[FileRecord]] = {}
        next_index = 0
        for index, chunk in results:
            records.setdefault(index, []).extend(chunk)
            expected_chunks[index] -= 1
            progress.done_files += len(chunk)
            _maybe_report(progress, on_progress)
            while next_index < len(resources) and expected_chunks[next_index] == 0:
                yield _finish(root, resources[next_index], records.pop(next_index, []), request.template, pool)
                next_index += 1
        while next_index < len(resources):  # resources without files left to read
            yield _finish(root, resources[next_index], records.pop(next_index, []), request.template, pool)
            next_index += 1
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _maybe_report(progress: Progress, on_progress: Callable[[Progress], None] | None) -> None:
    now = time.monotonic()
    if on_progress is not None and now - progress.last_report >= PROGRESS_EVERY_S:
        progress.last_report = now
        on_progress(progress)


def _pool(jobs: int, plan: ReadPlan) -> Pool | None:
    if jobs <= 1:
        return None
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    return context.Pool(jobs, initializer=_init_worker, initargs=(plan,))


def _directory(root: str, resource: Resource) -> str:
    return root if resource.rel_path == "." else os.path.join(root, *resource.rel_path.split("/"))


def _finish(root: str, resource: Resource, records: list[FileRecord], template: NamingTemplate,
            pool: Pool | None) -> ResourceFindings:
    directory = _directory(root, resource)
    records = [_judge_link(root, directory, r) for r in records]
    records.sort(key=lambda r: r.name)
    findings = classify(resource, records, template)
    to_check = findings.to_check()
    if not to_check:
        return findings
    chunks = [(directory, to_check[i : i + 16]) for i in range(0, len(to_check), 16)]
    results = pool.map(_check_chunk, chunks) if pool is not None else map(_check_chunk, chunks)
    checks = {name: check for chunk in results for name, check in chunk if check is not None}
    return with_content_checks(findings, checks)


def _judge_link(root: str, directory: str, record: FileRecord) -> FileRecord:
    """A symbolic link is never read; say whether it points out of ROOT."""
    if Reason.SYMLINK not in record.reasons:
        return record
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(directory, record.name))
    if os.path.commonpath([real_root, target]) != real_root:
        return replace(record, reasons=(Reason.SYMLINK_OUTSIDE_ROOT,), detail="symbolic link leading out of ROOT")
    return record
