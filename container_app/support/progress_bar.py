"""The rich progress bar `support.progress` shows on a person's terminal.

Apart from `progress`, and imported only when a bar is shown: rich's progress machinery costs about 0.05 s
to import, which a run in a container (progress as log lines) need not pay.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Files per second, from the bar's own speed estimate."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


def new_bar(unit: str) -> Progress:
    """A bar on stderr that prints what is written to stdout and stderr above itself while it is live."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn(unit), TaskProgressColumn(), _RateColumn(unit), TimeElapsedColumn(),
        TextColumn("elapsed,"), TimeRemainingColumn(), TextColumn("left"),
        console=Console(file=sys.stderr), redirect_stdout=True, redirect_stderr=True, transient=False)
