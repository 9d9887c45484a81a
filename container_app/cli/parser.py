"""The argparse pieces the commands share: a parser that raises, value converters, and option groups.

Nothing here writes files, and building the parser reads none: parsing argv must stay cheap and safe. The one
read is `--jobs`'s default, the process's CPU limits (a few small files under /proc and /sys), at parse time.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from typing import TypeAlias

from container_app.core.errors import UsageError
from container_app.core.naming import DEFAULT_TEMPLATE
from container_app.core.vocabulary import ExecutorChoice, KeepPolicy, RestFileOperations
from container_app.support.cpus import usable_cpus

PROG = "xnat-resource-survey"

#: What each command's `add_parser(subparsers)` receives: the top-level parser's `add_subparsers()` action.
Subparsers: TypeAlias = "argparse._SubParsersAction[CommandParser]"


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so `main` decides the exit code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


AUTO_JOBS = "auto"


def job_count(text: str) -> int:
    """`--jobs`: a positive whole number, or "auto" for the CPUs this process may use (not the host's count)."""
    if text.strip().lower() == AUTO_JOBS:
        return usable_cpus()
    return positive_int(text)


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log-format", choices=("auto", "console", "json"), default="auto",
                        help="console on a terminal, JSON lines otherwise (default: auto)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    """Which resources a survey reads: `survey` and `mitigate` (which may survey first) both take these."""
    parser.add_argument("--template", default=DEFAULT_TEMPLATE,
                        help="the site's dicomFileNameTemplate (default: XNAT's since 1.8.7)")
    parser.add_argument("--resource-label", action="append", dest="labels", metavar="LABEL",
                        help="survey resources with this label (repeatable, or comma-separated; default DICOM)")
    parser.add_argument("--all-resources", action="store_true", help="survey every resource, whatever its label")
    parser.add_argument("--since", type=iso_date, metavar="YYYY-MM-DD",
                        help="only resources with something changed on or after this day")
    # The default is the string "auto", which argparse passes through `job_count` only when --jobs is absent,
    # so the CPU limits are read at parse time, never while building the parser.
    parser.add_argument("--jobs", type=job_count, default=AUTO_JOBS, metavar="N",
                        help="worker processes (default: the CPUs this process may use, from its affinity "
                             "and its cgroup's CPU quota)")


def add_mitigation_options(parser: argparse.ArgumentParser, *, hidden: bool = False) -> None:
    """`mitigate`'s options; `survey` carries them hidden, as the Container Service gives both one command line."""

    def say(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    parser.add_argument("--backup-dir", metavar="BACKUP",
                        help=say("where originals are copied before any change (default: OUT/backup)"))
    parser.add_argument("--dry-run", action="store_true", help=say("write the plan and change nothing"))
    parser.add_argument("--keep", choices=[k.value for k in KeepPolicy], default=KeepPolicy.NEWEST.value,
                        help=say("which copy of a duplicate to keep (default: newest, as XNAT)"))
    parser.add_argument("--executor", choices=[e.value for e in ExecutorChoice], default=ExecutorChoice.AUTO.value,
                        help=say("filesystem: change files under ROOT; xnat: through XNAT's REST API "
                                 "(auto: filesystem where ROOT is writable)"))
    parser.add_argument("--rest-file-operations", choices=[r.value for r in RestFileOperations],
                        default=RestFileOperations.REFUSE.value,
                        help=say("on servers without XNAT's mitigation API, allow renames through upload and "
                                 "delete (which downgrades catalog entries); default refuse"))
    parser.add_argument("--xnat-session", metavar="ID",
                        help=say("executor xnat: the XNAT ID of the session mounted at ROOT (the session "
                                 "wrapper passes it)"))
    parser.add_argument("--xnat-project", metavar="ID",
                        help=say("executor xnat: the XNAT project whose sessions ROOT holds (sessions are "
                                 "found by label; default: the project in each catalog)"))
    parser.add_argument("--xnat-scan", metavar="URI",
                        help=say("executor xnat: the XNAT URI of the scan mounted at ROOT, "
                                 "/experiments/<session ID>/scans/<scan ID> (the scan wrapper passes it)"))
    parser.add_argument("--xnat-timeout", type=positive_seconds, default=1800.0, metavar="SECONDS",
                        help=say("executor xnat: how long to wait for XNAT's survey or mitigation of one "
                                 "resource (default 1800)"))


def resource_labels(values: Sequence[str] | None) -> frozenset[str]:
    """`--resource-label` values (repeated, or comma-separated) as a set; DICOM when none is given."""
    if not values:
        return frozenset({"DICOM"})
    labels = frozenset(p.strip() for v in values for p in v.split(",") if p.strip())
    if not labels:
        raise UsageError("--resource-label needs a label")
    return labels

