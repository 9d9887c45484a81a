"""What each command was asked to do: frozen records parsed from argv (by the command modules), nothing more."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from container_app.core.naming import NamingTemplate
from container_app.core.vocabulary import ExecutorChoice, KeepPolicy, RestFileOperations
from container_app.support.logs import LogFormat


@dataclass(frozen=True, slots=True)
class Common:
    log_format: LogFormat
    verbose: bool


@dataclass(frozen=True, slots=True)
class SurveySettings:
    common: Common
    root: str
    output: str
    template: NamingTemplate
    labels: frozenset[str]
    all_resources: bool
    since: dt.date | None
    jobs: int
    fail_on_divergent: bool


@dataclass(frozen=True, slots=True)
class DemoSettings:
    common: Common
    output: str
    jobs: int


@dataclass(frozen=True, slots=True)
class MitigateSettings:
    survey: SurveySettings  # how to survey first when no report is given, and where ROOT is
    report: str | None
    backup_dir: str
    dry_run: bool
    keep: KeepPolicy
    executor: ExecutorChoice
    rest_file_operations: RestFileOperations
    xnat_session: str | None = None  # the XNAT session ID (accession number) mounted at ROOT
    xnat_project: str | None = None  # the XNAT project whose sessions ROOT holds (sessions found by label)
    xnat_scan: str | None = None  # the XNAT URI of the scan mounted at ROOT (/experiments/<id>/scans/<scan>)
    xnat_timeout: float = 1800.0  # seconds to wait for XNAT's survey or mitigation of one resource

    @property
    def common(self) -> Common:
        return self.survey.common


@dataclass(frozen=True, slots=True)
class RestoreSettings:
    common: Common
    report: str
    output: str | None


@dataclass(frozen=True, slots=True)
class RollupSettings:
    common: Common
    reports: tuple[str, ...]
    output: str


Settings = SurveySettings | DemoSettings | MitigateSettings | RestoreSettings | RollupSettings
