"""The mitigation report and plan written resource by resource (issue 17), in the envelope layout.

`finishedAt` comes before `resources` in the mitigation report, and is known only at the end: each
resource's line goes to a temporary file in OUT as its result arrives (validated against the schema's
resource definition), and `write` joins the envelope and those lines into the report, as
`mitigation_report_text` would lay out the whole document. Only a small row per resource is kept,
for the run's totals and the table on the terminal.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import IO, Any

from container_app.core.outcomes import ResourceResult
from container_app.core.plan import MitigationPlan, ResourcePlan, plan_document, plan_totals
from container_app.reports.envelope import MITIGATION_LAYOUT, EnvelopeWriter, compact_json
from container_app.reports.mitigation import MitigationTotals, mitigation_resource_document, summary_row
from container_app.reports.schemas import MITIGATION_SCHEMA, validate
from container_app.support.fsutil import SaveFile

_PIECE = 1 << 20


class MitigationReportWriter:
    """Collects resources' lines in a temporary file in `out_dir`; `write` makes the report from them."""

    def __init__(self, out_dir: str) -> None:
        # Non-UTF-8 file names arrive as lone surrogates: written as `\udcXX`, as SaveFile writes them.
        self._lines: IO[str] = tempfile.TemporaryFile(  # noqa: SIM115
            "w+", encoding="utf-8", errors="backslashreplace", newline="\n", dir=out_dir)
        self.totals = MitigationTotals()
        self.rows: list[dict[str, Any]] = []  # one small row per resource: the terminal's table

    def add(self, result: ResourceResult) -> dict[str, Any]:
        """One resource's result: validated, written, counted; its document returned (for the page)."""
        document = mitigation_resource_document(result)
        validate(document, MITIGATION_SCHEMA, "resource")
        self._lines.write(compact_json(document) + "\n")
        self.totals.add(document)
        self.rows.append(summary_row(document))
        return document

    def write(self, path: str, head: Mapping[str, Any], tail: Mapping[str, Any]) -> None:
        """The report at `path`, atomically: `head`, the resources as added, `tail` (the totals)."""
        validate({**head, "resources": [], **tail}, MITIGATION_SCHEMA)
        self._lines.flush()
        self._lines.seek(0)
        with SaveFile(path) as handle:
            writer = EnvelopeWriter(handle, head, MITIGATION_LAYOUT)
            for _ in range(len(self.rows)):
                writer.add_pieces(self._pieces())
            writer.close(tail)

    def _pieces(self) -> Iterator[str]:
        """The next resource's line from the temporary file, a MiB at a time, without its newline (compact JSON
        holds none): one resource of 36,000 files is a line of ~70 MB, which read whole (and its newline cut
        off, a copy) was the run's peak (issue 17)."""
        while True:
            piece = self._lines.readline(_PIECE)
            if not piece:
                raise OSError("the mitigation report's temporary file ends early")
            if piece.endswith("\n"):
                yield piece[:-1]
                return
            yield piece

    def close(self) -> None:
        self._lines.close()


class PlanWriter:
    """`mitigation-plan.json` (a dry run's), resource by resource: `plan_document`'s layout and fields."""

    def __init__(self, path: str, head: MitigationPlan) -> None:
        self._head = head
        self._file = SaveFile(path)
        envelope = {k: v for k, v in plan_document(head).items() if k not in ("resources", "totals")}
        self._writer = EnvelopeWriter(self._file.open(), envelope, MITIGATION_LAYOUT)
        self._totals: Counter[str] = Counter(plan_totals(()))

    def add(self, plan: ResourcePlan) -> None:
        one = MitigationPlan(self._head.run_id, self._head.root, self._head.template, self._head.keep, (plan,))
        self._writer.add(compact_json(plan_document(one)["resources"][0]))
        self._totals.update(plan_totals((plan,)))

    def commit(self) -> None:
        self._writer.close({"totals": dict(self._totals)})
        self._file.commit()

    def abort(self) -> None:
        self._file.abort()
