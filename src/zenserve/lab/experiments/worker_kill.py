"""Section 4b, a worker killed mid-run: requests lost, and time until a replacement runs.

The server runs with ``--workers 2``; normal clients ask as in the
availability experiment. ``kill_after`` seconds into the measured time the
oldest worker gets SIGKILL (no chance to finish anything). Lost requests are
those the normal clients did not get answered; the recovery time runs from
the kill until the supervisor's replacement worker process exists.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time

import psutil

from zenserve.lab.experiments.availability import success_ratio
from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, summarize
from zenserve.lab.runner import Lab, bench_options, generator_limited, serve_arguments
from zenserve.load import BenchResult, Progress
from zenserve.process import ServerProcess
from zenserve.worker_pool import MIN_HEALTHY_SECONDS

SECTION = "worker_kill"
WORKERS = 2
# The supervisor promises a replacement within a second; wait five before giving up.
REPLACEMENT_LIMIT = 5.0
POLL = 0.002
# The supervisor delays replacing a worker that died young (crash-loop back-off):
# the victim must be older than that, by this margin, so that what is timed is
# the replacement and not the back-off.
AGE_MARGIN = 0.3
# From the start of a load run to its first measured moment, roughly (processes, connects).
RUN_SETUP = 0.1


def steps(plan: Plan) -> int:
    """Load runs this part of the section makes."""
    return len(plan.kill_architectures) * plan.kill_timing.repetitions


class WorkerKiller:
    """Kills the oldest worker when the run is ``at`` seconds in; times its replacement."""

    def __init__(self, server: ServerProcess, at: float) -> None:
        self.parent = psutil.Process(server.process.pid)
        self.at = at
        self.killed_at: float | None = None
        self.recovery_s = math.nan
        self._watcher: threading.Thread | None = None

    def workers(self) -> list[psutil.Process]:
        """The server's workers (its direct children), oldest first."""
        return sorted(self.parent.children(recursive=False),
                      key=lambda child: (child.create_time(), child.pid))

    def oldest_age(self) -> float:
        """Seconds the oldest worker has been running (0 if there is none)."""
        workers = self.workers()
        return time.time() - workers[0].create_time() if workers else 0.0

    def __call__(self, progress: Progress) -> None:
        """The load's progress callback: kill once the run is ``at`` seconds in."""
        if self.killed_at is not None or progress.elapsed_s < self.at:
            return
        workers = self.workers()
        self.killed_at = time.monotonic()
        if not workers:
            return
        victim = workers[0].pid
        os.kill(victim, signal.SIGKILL)
        self.killed_at = time.monotonic()
        survivors = {worker.pid for worker in workers[1:]}
        self._watcher = threading.Thread(target=self._watch, args=(survivors,),
                                         name="zenserve-replacement-watch", daemon=True)
        self._watcher.start()

    def _watch(self, survivors: set[int]) -> None:
        assert self.killed_at is not None
        deadline = self.killed_at + REPLACEMENT_LIMIT
        while time.monotonic() < deadline:
            try:
                if {worker.pid for worker in self.workers()} - survivors:
                    self.recovery_s = time.monotonic() - self.killed_at
                    return
            except psutil.Error:
                return  # the server itself is gone
            time.sleep(POLL)

    def finish(self) -> float:
        """Seconds from the kill to the replacement (NaN: no kill, or no replacement)."""
        if self._watcher is not None:
            self._watcher.join(REPLACEMENT_LIMIT + 1.0)
        return self.recovery_s


def run(lab: Lab, plan: Plan, rate: float) -> list[Point]:
    """Every architecture with 2 workers, one of them killed in each run."""
    timing = plan.kill_timing
    kill_at = timing.warmup + plan.kill_after
    points: list[Point] = []
    for architecture in plan.kill_architectures:
        results: list[BenchResult] = []
        recoveries: list[float] = []
        what = f"{architecture} --workers {WORKERS}, one killed"
        with lab.server(architecture, *serve_arguments(workers=WORKERS),
                        steps=timing.repetitions) as server:
            if server is None:
                continue
            for repetition in range(1, timing.repetitions + 1):
                lab.reporter.step(f"{what} (run {repetition}/{timing.repetitions})")
                killer = WorkerKiller(server, kill_at)
                # Only needed on the first run: later victims are the survivors of earlier runs.
                time.sleep(max(0.0, MIN_HEALTHY_SECONDS + AGE_MARGIN
                               - (killer.oldest_age() + RUN_SETUP + kill_at)))
                options = bench_options(server.port, plan.latency_slots, timing.warmup,
                                        timing.duration, rate=rate, connection_per_request=True)
                result = lab.bench(options, what, progress=killer)
                recovery = killer.finish()
                if result is not None:
                    results.append(result)
                    recoveries.append(recovery)
                    if math.isnan(recovery):
                        lab.warn(f"{what}: no replacement worker within {REPLACEMENT_LIMIT:g}s")
                lab.reporter.advance()
        points += _summaries(architecture, rate, results, recoveries)
    return points


def _summaries(architecture: str, rate: float, results: list[BenchResult],
               recoveries: list[float]) -> list[Point]:
    saturated = any(generator_limited(result) for result in results)
    where = {"workers": WORKERS, "condition": "worker killed", "x_name": "rate_rps", "x": rate}
    return [
        summarize(SECTION, architecture, "requests_lost",
                  [result.errors_total + result.unfinished for result in results],
                  saturated, **where),
        summarize(SECTION, architecture, "recovery_ms",
                  [seconds * 1000 for seconds in recoveries], saturated, **where),
        summarize(SECTION, architecture, "success_ratio",
                  [success_ratio(result) for result in results], saturated, **where),
    ]
