"""What every survey worker process holds and does per file: read headers, check content, judge links.

Set once per worker (`init_worker`); the pipeline and the big-resource path both hand it tasks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from container_app.core.naming import NamingTemplate
from container_app.core.records import ContentCheck, FileRecord, Resource
from container_app.core.vocabulary import Reason
from container_app.survey import anchored_reads
from container_app.survey.dicom.read_plan import ReadPlan
from container_app.survey.dicom.reader import check_content, survey_file


@dataclass(frozen=True, slots=True)
class WorkerContext:
    root: str
    read_plan: ReadPlan
    template: NamingTemplate
    render: Callable[[Any], Any]


_context: WorkerContext | None = None  # set once per worker process


def init_worker(context: WorkerContext) -> None:
    global _context
    _context = context
    # A worker started by spawn (no fork) inherits no descriptor: it holds ROOT now, so its first resource's
    # folder is walked from ROOT, never by its path (issue 13). A ROOT that cannot be opened was reported by
    # discovery already; its reads then fail one by one, as they say.
    with contextlib.suppress(OSError):
        anchored_reads.hold_root(context.root)


def context() -> WorkerContext:
    if _context is None:  # a task outside a worker, or a worker started without `init_worker`
        raise RuntimeError("survey worker used before init_worker")
    return _context


def read_chunk(task: tuple[str, Sequence[str]]) -> list[FileRecord]:
    directory, names = task
    read_plan = context().read_plan
    anchored_reads.read_ahead(directory, names)
    return [survey_file(directory, name, read_plan) for name in names]


def check_one(directory: str, name: str, *, digest: bool) -> ContentCheck | None:
    """The file's content check (`digest`: with its sha256); None when it could not be read (left unchecked)."""
    try:
        return check_content(os.path.join(directory, name), digest=digest)
    except OSError:
        return None


#: A content-check task: the resource's folder, the files' names, whether to hash them.
CheckTask = tuple[str, Sequence[str], bool]


def check_chunk(task: CheckTask) -> list[tuple[str, ContentCheck | None]]:
    directory, names, digest = task
    return [(name, check_one(directory, name, digest=digest)) for name in names]


def directory_of(root: str, resource: Resource) -> str:
    return root if resource.rel_path == "." else os.path.join(root, *resource.rel_path.split("/"))


def judge_link(root: str, directory: str, record: FileRecord) -> FileRecord:
    """A symbolic link is never read; say whether it points out of ROOT."""
    if Reason.SYMLINK not in record.reasons:
        return record
    real_root = os.path.realpath(root)
    target = os.path.realpath(os.path.join(directory, record.name))
    if os.path.commonpath([real_root, target]) != real_root:
        return replace(record, reasons=(Reason.SYMLINK_OUTSIDE_ROOT,), detail="symbolic link leading out of ROOT")
    return record
