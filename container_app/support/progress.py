"""Progress of a long run: a bar on a person's terminal, JSON lines in a container's log.

On a terminal (stderr is one and logs are in console form) a rich progress bar on stderr shows files done
of the total, the rate and the time left; log lines written meanwhile appear above it (the console log
stream resolves `sys.stderr` at each write, and rich redirects it while the bar is live), and so does
whatever is written to stdout meanwhile (a command's summary table), rather than running into the bar.
Anywhere else the bar is replaced by a `progress` log line every `interval` seconds, with the same
figures, as the survey has always written them: that is what a container's log and XNAT's log view can
show.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TYPE_CHECKING

from container_app.support import logs

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

log = logs.get_logger("xnat_resource_survey")

#: Seconds between progress lines where there is no terminal.
INTERVAL = 10.0


class RunProgress:
    """Counts `unit`s done of `total` for one command; use as a context manager, call `advance(n)`."""

    def __init__(self, what: str, total: int, *, unit: str = "files", interactive: bool | None = None,
                 interval: float = INTERVAL) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.interval = interval
        self.started = time.monotonic()
        self._last_line = self.started
        self.interactive = on_a_terminal() if interactive is None else interactive
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RunProgress:
        if self.interactive:
            from container_app.support.progress_bar import new_bar  # rich, only for a bar

            self._bar = new_bar(self.unit)
            self._bar.start()
            self._task = self._bar.add_task(self.what, total=self.total)
        return self

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self._bar is not None and self._task is not None:
            # Redrawn now, not at the next tick: a log line written next is printed above the bar as last
            # drawn, and callers advance once per resource, as often as they log.
            self._bar.update(self._task, completed=self.done, refresh=True)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self._line(now)

    def set_total(self, total: int) -> None:
        self.total = total
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, total=total)

    def _line(self, now: float) -> None:
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        remaining = max(self.total - self.done, 0)
        log.info("progress", command=self.what, files_done=self.done, files_total=self.total,
                 files_per_second=round(rate), eta_seconds=round(remaining / rate) if rate else None)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._bar is not None:
            if kind is None and self._task is not None:
                self._bar.update(self._task, completed=self.done)
            self._bar.stop()
            self._bar = None


def on_a_terminal() -> bool:
    """A bar only for a person: stderr is a terminal and the logs are in console form (not JSON lines)."""
    return logs.current_format() == "console" and sys.stderr.isatty()
