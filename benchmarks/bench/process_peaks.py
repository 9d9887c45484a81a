"""Peak RSS of the main process and of its largest worker, separately (the issue's bounds are per process:
main under 300 MB, each worker under 200 MB). Sampled from ``/proc/PID/status`` ``VmHWM``, the kernel's own
high-water mark, so a short peak between two samples is still seen as long as the process is sampled once
after it."""

from __future__ import annotations

import threading

from bench.process_tree import _descendants


def _hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakSampler(threading.Thread):
    """``pid`` is GNU time (or the command itself): the main process is the first descendant with memory
    beyond a few MB; every other descendant counts as a worker."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.main_kib = 0
        self.worker_kib = 0
        self.workers = 0
        self._seen: set[int] = set()
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            pids = _descendants(self.pid)
            # pids[0] is the root we started (GNU time when used); its first child is the command's main
            main = pids[1] if len(pids) > 1 else pids[0]
            for p in pids:
                kib = _hwm_kib(p)
                if p == main:
                    self.main_kib = max(self.main_kib, kib)
                elif p != self.pid:
                    self._seen.add(p)
                    self.worker_kib = max(self.worker_kib, kib)
            self.workers = len(self._seen)
            self._stop_evt.wait(self.interval)

    def stop(self) -> None:
        self._stop_evt.set()
        self.join()
