"""A mitigation run's resources, one after the other (issue 17): planned, executed in batches, reported.

Each surveyed resource is planned as it is read from the survey report; the plans are executed in
batches (one sync of the file system per step serves a batch), and each result goes at once to the
log, the mitigation report (its temporary lines) and the page. What is held at any time is one
batch of resources, never the run: memory does not grow with the archive.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import Any

from container_app.core.outcomes import ActionResult, ResourceResult
from container_app.core.plan import MitigationPlan, ResourcePlan
from container_app.core.vocabulary import KeepPolicy, Outcome, ResourceStatus
from container_app.mitigation.filesystem import backup_folder_for, stale_reason
from container_app.mitigation.protocol import Executor, untouched
from container_app.mitigation.report_files import MITIGATION_PLAN, log_resource, log_summary
from container_app.mitigation.request import MitigationRequest, MitigationSummary
from container_app.mitigation.survey_stream import CheckedReport, plan_of, survey_resources
from container_app.reports.html.survey_page import HtmlReportWriter
from container_app.reports.mitigation import MITIGATION_REPORT, mitigation_head
from container_app.reports.mitigation_writer import MitigationReportWriter, PlanWriter
from container_app.support.anchored import Anchor
from container_app.support.progress import RunProgress

#: What makes a run's exit code say "look at the report": a resource not (or not wholly) mitigated.
TROUBLED = frozenset({ResourceStatus.PARTIAL, ResourceStatus.FAILED, ResourceStatus.STALE, ResourceStatus.LOCKED})

#: A batch shares one sync of the file system per step; its resources stay locked until it ends. It is
#: cut once it reaches a bound (so the resource that reaches it is the batch's last, whatever its size).
BATCH_FILES = 2000
BATCH_RESOURCES = 100
#: Surveyed files held while a batch fills (resources with nothing to do wait with it, for the page's order).
HELD_FILES = 20000

Pending = list[tuple[dict[str, Any], ResourcePlan | None]]


def batches(resources: Iterable[dict[str, Any]], keep: KeepPolicy, envelope: dict[str, Any]) -> Iterator[Pending]:
    """The surveyed resources with their plans, in report order, cut where a batch of plans is full."""
    pending: Pending = []
    files = held = plans = 0
    for resource in resources:
        plan = plan_of(resource, keep, envelope)
        pending.append((resource, plan))
        held += len(resource["files"])
        if plan is not None:
            plans += 1
            files += len(plan.actions)
        # Cut once full, before the next resource is read: deciding after reading it would hold two
        # resources at once, and with resources of 36,000 files that is the run's peak memory.
        if plans and (files >= BATCH_FILES or plans >= BATCH_RESOURCES or held >= HELD_FILES):
            yield pending
            pending, files, held, plans = [], 0, 0, 0
    if pending:
        yield pending


class Run:
    """One run's outputs: the mitigation report, the page, and the summary the CLI turns into an exit code."""

    def __init__(self, request: MitigationRequest, envelope: dict[str, Any], report_path: str, backup_root: str,
                 started: Any) -> None:
        self.request = request
        self.envelope = envelope
        self.report_path = report_path
        self.backup_root = backup_root
        self.started = started
        self.troubled = False

    def _plan_head(self) -> MitigationPlan:
        e = self.envelope
        return MitigationPlan(e["runId"], e["root"], e["template"], self.request.keep, ())

    def preview(self, root: str, checked: CheckedReport, *, checked_stale: bool, executor: str) -> MitigationSummary:
        """A dry run: each resource PLANNED, or STALE where the real run would find it changed (the same
        read-only checks the file executor makes before it touches a resource); the plan written too."""
        head = self._plan_head()
        plan_file = PlanWriter(os.path.join(self.request.output, MITIGATION_PLAN), head)
        try:
            with Anchor.open(root) as archive:

                def results(pending: Pending) -> Iterator[ResourceResult]:
                    for _, plan in pending:
                        if plan is None:
                            continue
                        plan_file.add(plan)
                        folder = backup_folder_for(self.backup_root, head.run_id, plan)
                        stale = stale_reason(archive, plan) if checked_stale and plan.actions else None
                        if stale is not None:
                            yield untouched(plan, folder, ResourceStatus.STALE, stale)
                            continue
                        actions = tuple(ActionResult(a, Outcome.PLANNED) for a in plan.actions)
                        yield ResourceResult(plan, ResourceStatus.PLANNED, folder, actions)

                summary = self._report(survey_resources(self.report_path, checked), results, None, None,
                                       executor, dry_run=True)
        except BaseException:
            plan_file.abort()
            raise
        plan_file.commit()
        return MitigationSummary(summary.report_path, troubled=False)

    def execute(self, executor: Executor, resources: Iterable[dict[str, Any]], checked: CheckedReport,
                journal: str, state: str) -> MitigationSummary:
        with RunProgress("mitigate", checked.planned_actions) as progress:

            def results(pending: Pending) -> Iterator[ResourceResult]:
                plans = [plan for _, plan in pending if plan is not None]
                for result in executor.execute_batch(plans) if plans else ():
                    progress.advance(len(result.plan.actions))
                    yield result

            return self._report(resources, results, journal, state, executor.name, dry_run=False)

    def _report(self, resources: Iterable[dict[str, Any]], results_of: Any, journal: str | None,
                state: str | None, executor: str, *, dry_run: bool) -> MitigationSummary:
        out = self.request.output
        report = MitigationReportWriter(out)
        page = HtmlReportWriter(out)
        try:
            self._add_all(resources, results_of, report, page, dry_run=dry_run)
            e = self.envelope
            head = mitigation_head(e["runId"], e["root"], e["template"], self.request.keep.value, self.report_path,
                                   self.backup_root, journal, dry_run, self.started, executor)
            tail = {"totals": report.totals.as_dict()}
            path = os.path.join(out, MITIGATION_REPORT)
            report.write(path, head, tail)
            page.finish(e, {**head, **tail}, mitigation_report_path=path)
            if state is not None:
                report.write(os.path.join(state, MITIGATION_REPORT), head, tail)  # restore finds it by the backups
        except BaseException:
            page.abort()
            raise
        finally:
            report.close()
        log_summary({**head, **tail}, report.rows, path)
        return MitigationSummary(path, troubled=self.troubled)

    def _add_all(self, resources: Iterable[dict[str, Any]], results_of: Any, report: MitigationReportWriter,
                 page: HtmlReportWriter, *, dry_run: bool) -> None:
        """Every resource's result into the report and the page. A function of its own, so that the last
        batch (its surveyed resources, plans and results) is let go before the report is written."""
        for pending in batches(resources, self.request.keep, self.envelope):
            results = iter(results_of(pending))
            for resource, plan in pending:
                if plan is None:
                    page.add(resource)
                    continue
                result = next(results)
                log_resource(result, dry_run=dry_run)
                page.add(resource, report.add(result))
                self.troubled |= result.status in TROUBLED
