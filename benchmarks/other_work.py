"""How busy the machine was with work other than the benchmark's own, measured during the run.

A load average cannot tell a benchmark's own servers and load generators from
someone else's test suite, and a benchmark that keeps both cores busy always
looks "busy" by it. This samples, a few times a second, the CPU time of every
process outside this script's process tree (the tree is looked up at each
sample, so servers, workers and load processes started later count as ours),
and reports the other processes' share of the machine. Processes that start and
end between two samples are missed; a test suite running alongside is not.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from types import TracebackType

import psutil

SAMPLE_SECONDS = 0.25
# Other work using more than this share of the machine makes the numbers provisional.
BUSY_SHARE = 0.05


class OtherWork:
    """``with OtherWork() as other: ...`` then ``other.share`` and ``other.note()``."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, float], float] = {}
        self._other_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = self._ended = 0.0

    def __enter__(self) -> OtherWork:
        self._started = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._ended = time.monotonic()

    @property
    def share(self) -> float:
        """Other processes' CPU time over the run, as a share of all the cores' time."""
        elapsed = (self._ended or time.monotonic()) - self._started
        cores = os.cpu_count() or 1
        return self._other_seconds / (elapsed * cores) if elapsed > 0 else 0.0

    def note(self) -> str | None:
        """Why the numbers cannot be final, or None when nothing else ran."""
        if self.share <= BUSY_SHARE:
            return None
        return (f"other work used {self.share:.0%} of the machine during the run "
                "(processes outside this benchmark)")

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._sample()

    def _sample(self) -> None:
        me = psutil.Process()
        ours = {me.pid}
        with contextlib.suppress(psutil.Error):
            ours.update(child.pid for child in me.children(recursive=True))
        seen: dict[tuple[int, float], float] = {}
        for process in psutil.process_iter(["pid", "create_time", "cpu_times"]):
            info = process.info
            if info["pid"] in ours or info["cpu_times"] is None:
                continue
            key = (info["pid"], info["create_time"])
            used = info["cpu_times"].user + info["cpu_times"].system
            seen[key] = used
            if key in self._last:
                self._other_seconds += max(0.0, used - self._last[key])
        self._last = seen
