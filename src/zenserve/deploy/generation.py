"""A generation: the worker processes running one release, as the supervisor counts them."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from zenserve.deploy.analysis import Sample
from zenserve.deploy.release import Release

if TYPE_CHECKING:
    from zenserve.deploy.pool import WorkerProcess

# A worker that dies this soon after it started counts as a crash loop (back off).
YOUNG_SECONDS = 2.0
# Worker states, as pool.WorkerProcess names them.
STARTING, READY = "starting", "ready"


class Generation:
    """The workers running one release."""

    _ids = itertools.count(1)

    def __init__(self, release: Release) -> None:
        self.id = next(self._ids)
        self.release = release
        self.label = f"generation {self.id} ({release.version})"
        self.role = "candidate"
        self.target = 0
        self.weight = 0
        self.routed = 0  # connections sent to its workers (new ones and handed-back ones)
        self.workers: list[WorkerProcess] = []
        self.retired_sample = Sample()  # counts of workers that have exited
        self.start_failures = 0
        self.last_failure = ""
        self.restarts = 0
        self.crash_streak = 0
        self.next_spawn = 0.0
        self.slots = itertools.count(1)
        self._next_worker = 0

    def live(self) -> list[WorkerProcess]:
        """Workers that count towards the target (starting or ready)."""
        return [worker for worker in self.workers if worker.state in (STARTING, READY)]

    def ready(self) -> list[WorkerProcess]:
        return [worker for worker in self.workers if worker.state == READY]

    def sample(self) -> Sample:
        total = self.retired_sample
        for worker in self.workers:
            total = total + worker.sample
        return total

    def next_workers(self) -> list[WorkerProcess]:
        """The ready workers, starting from the next one in round-robin order."""
        ready = self.ready()
        if not ready:
            return []
        start = self._next_worker % len(ready)
        self._next_worker = start + 1
        return ready[start:] + ready[:start]

    def became_ready(self) -> None:
        self.crash_streak = 0

    def start_failed(self, reason: str) -> None:
        self.start_failures += 1
        self.last_failure = reason

    def exited(self, worker: WorkerProcess, now: float) -> None:
        """Account for a worker that has exited; back off if it died young."""
        self.workers.remove(worker)
        self.retired_sample = self.retired_sample + worker.sample
        if worker.exit_expected:
            return
        if not worker.failure:  # it died by itself
            self.last_failure = (f"worker {worker.pid} exited with status "
                                 f"{worker.process.returncode}")
            if worker.state_at_exit == STARTING:
                self.start_failures += 1
            else:
                self.restarts += 1
        if now - worker.started_at < YOUNG_SECONDS:
            self.crash_streak += 1
            self.next_spawn = now + min(0.1 * 2**self.crash_streak, 5.0)

    @property
    def drained(self) -> bool:
        return not self.workers and self.target == 0
