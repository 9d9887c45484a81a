"""What the mitigation and restore commands are asked to do: the records the CLI builds and the library runs.

The library never reads the CLI's settings; it gets these. The survey that a mitigation without a report
runs first (and the XNAT executor's re-survey of the mount) is injected as `survey`, so this package
never imports the survey command.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from container_app.core.vocabulary import ExecutorChoice, KeepPolicy, RestFileOperations

#: Surveys ROOT into the given output folder and returns the path of the survey report it wrote.
Surveyor = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class MitigationRequest:
    root: str
    output: str  # OUT: mitigation-report.json, mitigation-plan.json (dry run), report.html
    report: str | None  # the survey report to act on; None: survey ROOT first with `survey`
    survey: Surveyor
    template: str  # the naming template asked for (--template), compared with the report's
    backup_dir: str
    dry_run: bool
    keep: KeepPolicy
    executor: ExecutorChoice
    rest_file_operations: RestFileOperations
    xnat_session: str | None = None  # the XNAT session ID (accession number) mounted at ROOT
    xnat_project: str | None = None  # the XNAT project whose sessions ROOT holds (sessions found by label)
    xnat_scan: str | None = None  # the XNAT URI of the scan mounted at ROOT (/experiments/<id>/scans/<scan>)
    xnat_timeout: float = 1800.0  # seconds to wait for XNAT's survey or mitigation of one resource


@dataclass(frozen=True, slots=True)
class MitigationSummary:
    """What a mitigation run ended with; the CLI turns it into an exit code."""

    report_path: str
    troubled: bool  # some resource is PARTIAL, FAILED, STALE or LOCKED


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    report: str  # a mitigation-report.json
    output: str | None  # where restore-report.json goes (default: beside the mitigation report)


@dataclass(frozen=True, slots=True)
class RestoreSummary:
    report_path: str
    refused: int  # files or catalogs that could not be restored
