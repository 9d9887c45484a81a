"""A resource too big for one worker (issue 17): every worker takes chunks of it and does all its per-file work.

Per file, in the workers: read the header, judge a link, classify as far as one file allows (expected
name, identifying tags, catalog and legacy-name reasons: `classify_file`), check the content of a file
away from its expected name (it is mismatched or a duplicate: checked either way), and render and
validate its document as if it had no duplicate. The main process only joins: groups the files by
(SOPClassUID, SOPInstanceUID), which needs all of them, and re-renders the members of duplicate
groups (whose status, reasons and de-identification the group decides). The next big resource is
handed to the workers before the last one is joined, so both are busy.

Measured on one legacy resource of 39,600 files (36,000 instances, every file misnamed, 10% with a
second copy), --jobs 2, on a loaded machine: the main process's CPU went from 11.4 s to 7.2 s and the
workers' from 12.6 s to 24.2 s. What the main process still spends is mostly unpickling the workers'
rows, the join and content-check merge (a `replace` per checked file), the catalog's parse and the
HTML page's per-file rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from multiprocessing.pool import AsyncResult, Pool
from typing import Any, Protocol, TypeVar, runtime_checkable

from container_app.core.classify import (
    FileFinding,
    FilePart,
    ResourceFindings,
    catalog_uids,
    classify_file,
    join,
    with_check,
    with_content_checks,
    with_deidentification,
)
from container_app.core.deidentification import CopySignals
from container_app.core.records import ContentCheck, HeaderValues, Resource
from container_app.survey import anchored_reads
from container_app.survey.deidentification import TABLE_EDITION, XnatLabels, signals_chunk
from container_app.survey.dicom.reader import survey_file
from container_app.survey.discover import load_catalog
from container_app.survey.worker import (
    WorkerContext,
    check_chunk,
    check_one,
    context,
    directory_of,
    judge_link,
)

T_co = TypeVar("T_co", covariant=True)

CHUNK = 128  # files per task
_CHECK_SHARE = 16  # files per content-check task of the main process (duplicates at their expected name)
_SIGNALS_SHARE = 4  # copies per de-identification task: each reads a whole file


@runtime_checkable
class FileWiseRender(Protocol[T_co]):
    """A `render` that can render a resource's files apart (in the workers) and join their texts."""

    def __call__(self, findings: ResourceFindings) -> T_co: ...

    def render_file(self, resource_path: str, finding: FileFinding) -> str: ...

    def assemble(self, findings: ResourceFindings, file_texts: Sequence[str]) -> T_co: ...


_Row = tuple[FilePart, ContentCheck | None, str | None]  # part, its check (if checked), its text if single
_PartTask = tuple[str, str, Sequence[str], Mapping[str, str | None] | None, bool]


def part_chunk(task: _PartTask) -> list[_Row]:
    """A worker's chunk of a big resource: every per-file step, in the order of `names`."""
    directory, resource_path, names, catalog, render_files = task
    ctx = context()
    render = _file_wise(ctx) if render_files else None
    rows: list[_Row] = []
    anchored_reads.read_ahead(directory, names)
    for name in names:
        record = judge_link(ctx.root, directory, survey_file(directory, name, ctx.read_plan))
        part = for_join(classify_file(record, ctx.template, catalog))
        # Away from its expected name, a file is mismatched or a duplicate: a mitigation touches it. Its bytes
        # are hashed only if it is one of several copies, which the joined resource tells (`_findings`).
        checked = part.expected_name is not None and not part.at_expected_name
        check = check_one(directory, name, digest=False) if checked else None
        text = None
        if render is not None:
            single = part.single_finding()
            text = render.render_file(resource_path, single if check is None else with_check(single, check))
        rows.append((part, check, text))
    return rows


def for_join(part: FilePart) -> FilePart:
    """The part as the joining process needs it: of the header values, only the instance's UIDs.

    Joining and rendering look at no other value once a file is classified; the rest (a dozen strings a file)
    would be pickled to the main process and held there for the whole resource (issue 17's memory target).
    """
    header = part.record.header
    if header is None:
        return part
    uids = {k: header.values[k] for k in _JOIN_KEYWORDS if k in header.values}
    return replace(part, record=replace(part.record, header=HeaderValues(uids)))


_JOIN_KEYWORDS = ("SOPClassUID", "SOPInstanceUID")


def render_chunk(task: tuple[str, Sequence[FileFinding]]) -> list[str]:
    resource_path, findings = task
    render_file = _file_wise(context()).render_file
    return [render_file(resource_path, f) for f in findings]


def _file_wise(ctx: WorkerContext) -> FileWiseRender[Any]:
    if not isinstance(ctx.render, FileWiseRender):  # start() asks for file texts only of such a render
        raise RuntimeError("the survey's render cannot render files apart")
    return ctx.render


@dataclass(frozen=True, slots=True)
class Pending:
    """A big resource handed to the workers: its catalog read, its chunks under way."""

    resource: Resource
    directory: str
    file_wise: bool
    parts: AsyncResult[list[list[_Row]]] | list[list[_Row]]


def start(ctx: WorkerContext, resource: Resource, pool: Pool | None) -> Pending:
    directory = directory_of(ctx.root, resource)
    resource = load_catalog(ctx.root, resource)
    catalog = catalog_uids(resource)
    file_wise = isinstance(ctx.render, FileWiseRender)
    tasks: list[_PartTask] = []
    for i in range(0, len(resource.files), CHUNK):
        names = resource.files[i : i + CHUNK]
        # Each chunk carries its own entries of the catalog only: a whole catalog per task would be pickled
        # once per chunk.
        share = None if catalog is None else {n: catalog[n] for n in names if n in catalog}
        tasks.append((directory, resource.rel_path, names, share, file_wise))
    parts = pool.map_async(part_chunk, tasks) if pool is not None else [part_chunk(t) for t in tasks]
    return Pending(resource, directory, file_wise, parts)


def finish(pending: Pending, pool: Pool | None, render: Callable[[ResourceFindings], Any]) -> Any:
    """Join a started resource's chunks into its findings and render them."""
    parts = pending.parts if isinstance(pending.parts, list) else pending.parts.get()
    rows = sorted((row for chunk in parts for row in chunk), key=lambda row: row[0].name)
    findings = _findings(pending, rows, pool)
    if not isinstance(render, FileWiseRender) or not pending.file_wise:
        return render(findings)
    resource_path = findings.resource.rel_path
    in_groups = {m for g in findings.groups for m in g.members}
    redo = [f for f in findings.files if f.name in in_groups]
    redone = dict(zip((f.name for f in redo), _render(pool, resource_path, redo), strict=True))
    texts = [redone[f.name] if f.name in redone else _single_text(row) for f, row in zip(findings.files, rows,
                                                                                          strict=True)]
    return render.assemble(findings, texts)


def _single_text(row: _Row) -> str:
    if row[2] is None:  # part_chunk renders every file when the render is file-wise
        raise RuntimeError(f"{row[0].name}: no document rendered in the worker")
    return row[2]


def _findings(pending: Pending, rows: Sequence[_Row], pool: Pool | None) -> ResourceFindings:
    """`classify`, content checks and de-identification, as `pipeline._classify` does them for a small resource."""
    findings = join(pending.resource, [row[0] for row in rows])
    to_check = findings.to_check()
    if not to_check:
        return findings
    copies = set(findings.to_digest())
    checks = {row[0].name: row[1] for row in rows if row[1] is not None and row[0].name not in copies}
    # The copies of one instance, hashed (their bytes are compared): the only files the workers could not
    # know to hash, or, at their expected name, to check at all.
    rest = [name for name in to_check if name in copies]
    for name, result in _map(pool, check_chunk, [(pending.directory, rest[i : i + _CHECK_SHARE], True)
                                                 for i in range(0, len(rest), _CHECK_SHARE)]):
        if result is not None:
            checks[name] = result
    findings = with_content_checks(findings, checks)
    differing = findings.differing_copies()
    if not differing:
        return findings
    identity = pending.resource.identity
    labels = XnatLabels(session=identity.session, subject=identity.subject)
    shares = [(pending.directory, differing[i : i + _SIGNALS_SHARE], labels)
              for i in range(0, len(differing), _SIGNALS_SHARE)]
    signals: dict[str, CopySignals] = {n: s for n, s in _map(pool, signals_chunk, shares) if s is not None}
    return with_deidentification(findings, signals, TABLE_EDITION)


def _render(pool: Pool | None, resource_path: str, findings: Sequence[FileFinding]) -> list[str]:
    tasks = [(resource_path, findings[i : i + CHUNK]) for i in range(0, len(findings), CHUNK)]
    return list(_map(pool, render_chunk, tasks))


A = TypeVar("A")
R = TypeVar("R")


def _map(pool: Pool | None, function: Callable[[A], list[R]], tasks: Sequence[A]) -> Iterator[R]:
    """The tasks' results, flattened, in order: in the workers when there are any."""
    results = pool.map(function, tasks) if pool is not None and tasks else [function(t) for t in tasks]
    return (item for result in results for item in result)
