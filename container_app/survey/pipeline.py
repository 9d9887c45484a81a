"""The survey pipeline: discover resources, read headers in worker processes, classify, check content.

Yields one `ResourceFindings` per resource as soon as it is complete, so reports stream and memory
stays bounded by the largest resource, not the archive.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from container_app.core.classify import ResourceFindings, classify, with_content_checks, with_deidentification
from container_app.core.naming import NamingTemplate
from container_app.core.records import ContentCheck, FileRecord, Resource
from container_app.support import logs
from container_app.survey.discover import Selection, discover, load_catalog

if TYPE_CHECKING:
    from multiprocessing.pool import Pool

    from container_app.core.deidentification import CopySignals
    from container_app.survey.deidentification import XnatLabels
    from container_app.survey.worker import CheckTask, WorkerContext

# What reads DICOM (the workers' modules, and pydicom under them: about 0.3 s of imports here) is imported
# by `run` when there are files to read, before its workers are forked, so they share one copy; a survey of
# an empty folder imports none of it.

log = logs.get_logger("xnat_resource_survey.survey")

T = TypeVar("T")

PROGRESS_EVERY_S = 10.0
_BIG_RESOURCE = 2048  # larger resources are shared out in chunks to every worker (big_resource)
#: The next big resource is read while the last is joined only if both together have no more files than
#: this: the workers' rows of a resource take several KB per file once unpickled here (220 MB at the peak of
#: a survey of three resources of 36,000 files, issue 17).
_PREFETCH_FILES = 40_000


def _identity(findings: ResourceFindings) -> ResourceFindings:
    return findings


def _survey_resource(task: tuple[int, Resource | None]) -> tuple[int, Any]:
    """A whole (small) resource in one worker: read, classify, check, render. None marks a big one."""
    from container_app.survey.deidentification import signals_chunk
    from container_app.survey.worker import check_chunk, context, directory_of, read_chunk

    index, resource = task
    if resource is None:
        return index, None
    ctx = context()
    directory = directory_of(ctx.root, resource)
    records = read_chunk((directory, resource.files))
    findings = _classify(ctx.root, resource, records, ctx.template, check_chunk, signals_chunk)
    return index, ctx.render(findings)


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
    if not resources:  # nothing to read, nothing to start
        return
    from container_app.survey import big_resource
    from container_app.survey.dicom.read_plan import ReadPlan
    from container_app.survey.worker import WorkerContext, init_worker

    root = os.path.abspath(request.root)
    context = WorkerContext(root, ReadPlan.for_keywords(request.template.keywords), request.template, render)
    progress = Progress(total_files=sum(len(r.files) for r in resources), started=time.monotonic())
    progress.last_report = progress.started
    units = [(i, r if len(r.files) <= _BIG_RESOURCE else None) for i, r in enumerate(resources)]

    bigs = [i for i, r in enumerate(resources) if len(r.files) > _BIG_RESOURCE]
    # Workers only for files to read: resources without any (a catalog alone, an unreadable folder) are
    # classified here, without the cost of starting processes.
    pool = _pool(request.jobs, context, progress.total_files) if progress.total_files else None
    try:
        if pool is None:
            init_worker(context)
            results: Iterator[tuple[int, Any]] = map(_survey_resource, units)
        else:
            results = pool.imap(_survey_resource, units)
        started: dict[int, big_resource.Pending] = {}
        for index, rendered in results:
            resource = resources[index]
            if rendered is None:
                # This big resource's chunks, then the next one's: the workers read the next while this
                # one is joined here.
                following = next((b for b in bigs if b > index), index)
                if len(resource.files) + len(resources[following].files) > _PREFETCH_FILES:
                    following = index  # both at once would hold both resources' rows: memory, not speed, bounds it
                for i in (index, following):
                    if i not in started:
                        started[i] = big_resource.start(context, resources[i], pool)
                rendered = big_resource.finish(started.pop(index), pool, render)
            progress.done_files += len(resource.files)
            _maybe_report(progress, on_progress)
            yield rendered
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _maybe_report(progress: Progress, on_progress: Callable[[Progress], None] | None) -> None:
    now = time.monotonic()
    if on_progress is not None and now - progress.last_report >= PROGRESS_EVERY_S:
        progress.last_report = now
        on_progress(progress)


#: From this many files on, workers start from a fork server rather than from this process.
_FORK_SERVER_FILES = 200_000
#: What the fork server imports once, so that every worker forked from it shares it.
_WORKER_MODULES = ["container_app.survey.worker", "container_app.survey.big_resource",
                   "container_app.survey.deidentification", "container_app.reports.survey"]


def _pool(jobs: int, context: WorkerContext, files: int) -> Pool | None:
    if jobs <= 1:
        return None
    import multiprocessing  # here: a survey without files to read starts no process

    from container_app.survey.worker import init_worker

    methods = multiprocessing.get_all_start_methods()
    # A worker forked from here shares this process's pages only until it touches them, and reference
    # counting touches every object it sees: after discovering a million files (every name held here),
    # each forked worker grew to 288 MiB. A fork server holds none of that; it costs its own start-up.
    if files >= _FORK_SERVER_FILES and "forkserver" in methods:
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload(_WORKER_MODULES)
        return server.Pool(jobs, initializer=init_worker, initargs=(context,))
    method = "fork" if "fork" in methods else "spawn"
    return multiprocessing.get_context(method).Pool(jobs, initializer=init_worker, initargs=(context,))


_SignalsTask = tuple[str, Sequence[str], "XnatLabels"]


def _classify(root: str, resource: Resource, records: list[FileRecord], template: NamingTemplate,
              check: Callable[[CheckTask], list[tuple[str, ContentCheck | None]]],
              read_signals: Callable[[_SignalsTask], list[tuple[str, CopySignals | None]]]) -> ResourceFindings:
    from container_app.survey.deidentification import TABLE_EDITION, XnatLabels
    from container_app.survey.worker import directory_of, judge_link

    directory = directory_of(root, resource)
    resource = load_catalog(root, resource)
    records = [judge_link(root, directory, r) for r in records]
    records.sort(key=lambda r: r.name)
    findings = classify(resource, records, template)
    to_check = findings.to_check()
    if not to_check:
        return findings
    copies = set(findings.to_digest())
    checks: dict[str, ContentCheck] = {}
    for digest in (False, True):
        names = [n for n in to_check if (n in copies) is digest]
        if names:
            checks.update((name, result) for name, result in check((directory, names, digest)) if result is not None)
    findings = with_content_checks(findings, checks)
    # Copies of one instance whose bytes differ: which discloses more (issue 15). Only these are read
    # further, so a resource without such groups pays nothing.
    differing = findings.differing_copies()
    if not differing:
        return findings
    labels = XnatLabels(session=resource.identity.session, subject=resource.identity.subject)
    signals = {name: result for name, result in read_signals((directory, differing, labels)) if result is not None}
    return with_deidentification(findings, signals, TABLE_EDITION)
