"""The generations of one host: spawning, supervising and reaping their workers.

The ``Fleet`` keeps each generation at its target size (replacing a worker
that dies or stops answering its heartbeat, with a back-off when it crashes
young), drains the workers a strategy retires, and routes connections handed
back by draining workers. ``LocalTraffic`` is the ``rollout.Traffic`` the step
engine drives on one host.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from zenserve.deploy.analysis import Sample
from zenserve.deploy.generation import Generation
from zenserve.deploy.pool import READY, WorkerProcess
from zenserve.deploy.reactor import Reactor
from zenserve.deploy.release import Release
from zenserve.deploy.router import Router

log = logging.getLogger("zenserve.deploy")

# How far back `deploy status` looks for a generation's live success ratio and p99.
RECENT_SECONDS = 10.0


class Fleet:
    """Every generation on this host, their workers and the router between them."""

    def __init__(self, reactor: Reactor, on_event: Callable[[str], None]) -> None:
        self.reactor = reactor
        self._event = on_event
        self.generations: dict[int, Generation] = {}
        self.router = Router(self._watch_backlog)
        self.recent: dict[int, deque[tuple[float, Sample]]] = {}
        self.retired = Sample()  # counts of generations that are gone
        # Workers started ahead of need (imports done), so a new generation's
        # workers start in milliseconds rather than an interpreter's start-up.
        self.spares: list[WorkerProcess] = []
        self.spare_count = 1

    def launch(self, release: Release) -> Generation:
        generation = Generation(release)
        self.generations[generation.id] = generation
        self.router.add(generation)
        self.recent[generation.id] = deque()
        log.info("%s: launched (%s, %d workers)", generation.label, release.architecture,
                 release.workers)
        return generation

    def tick(self, now: float) -> None:
        """Reap, heal, grow: keep every generation at its target."""
        for generation in list(self.generations.values()):
            for worker in list(generation.workers):
                if worker.reap(now):
                    generation.exited(worker, now)
                    if not worker.exit_expected and generation.target:
                        reason = worker.failure or (
                            f"exited with status {worker.process.returncode}")
                        self._event(f"{generation.label}: worker {worker.pid} {reason}; "
                                    "replacing it")
                else:
                    worker.check_health(now)
            self._grow(generation, now)
            self._remember(generation, now)
        self._keep_spares(now)
        self.router.flush()

    def _grow(self, generation: Generation, now: float) -> None:
        while len(generation.live()) < generation.target and now >= generation.next_spawn:
            worker = self.spares.pop(0) if self.spares else self._spawn()
            worker.assign(generation, next(generation.slots))
            generation.workers.append(worker)

    def _spawn(self) -> WorkerProcess:
        return WorkerProcess(self.reactor, self.router.route)

    def _keep_spares(self, now: float) -> None:
        self.spares = [spare for spare in self.spares if not spare.reap(now)]
        while len(self.spares) < self.spare_count:
            self.spares.append(self._spawn())

    def _remember(self, generation: Generation, now: float) -> None:
        history = self.recent[generation.id]
        if not history or now - history[-1][0] >= 1.0:
            history.append((now, generation.sample()))
            while len(history) > RECENT_SECONDS + 1:
                history.popleft()

    def total(self) -> Sample:
        """Every answer of every generation this supervisor ever ran."""
        total = self.retired
        for generation in self.generations.values():
            total = total + generation.sample()
        return total

    def recent_sample(self, generation: Generation) -> Sample:
        history = self.recent.get(generation.id)
        current = generation.sample()
        return current - history[0][1] if history else current

    def retire(self, generation: Generation, count: int | None) -> None:
        """Drain ``count`` workers (None: all), the not-yet-ready ones first."""
        live = sorted(generation.live(), key=lambda worker: worker.state == READY)
        chosen = live if count is None else live[:count]
        generation.target = 0 if count is None else max(0, generation.target - len(chosen))
        for worker in chosen:
            worker.drain(generation.release.limits.graceful_timeout)
        self.router.flush()

    def forget_drained(self, keep: set[int]) -> None:
        """Drop generations that are fully drained and no longer stable or candidate."""
        for gen_id, generation in list(self.generations.items()):
            if gen_id not in keep and generation.drained:
                self.retired = self.retired + generation.sample()
                self.router.remove(generation)
                del self.generations[gen_id]
                self.recent.pop(gen_id, None)

    def stop_all(self) -> None:
        """SIGTERM: every worker finishes its conversations where they are, then exits."""
        self._retire_spares()
        for generation in self.generations.values():
            generation.target = 0
            generation.weight = 0
            for worker in generation.workers:
                worker.stop(generation.release.limits.graceful_timeout)

    def kill_all(self) -> None:
        self._retire_spares()
        for generation in self.generations.values():
            generation.target = 0
            for worker in generation.workers:
                worker.kill("the supervisor is stopping at once")

    def _retire_spares(self) -> None:
        self.spare_count = 0
        for spare in self.spares:
            spare.stop(0.0)

    @property
    def idle(self) -> bool:
        return not self.spares and not any(
            generation.workers for generation in self.generations.values())

    def _watch_backlog(self, worker: WorkerProcess) -> None:
        def on_writable() -> None:
            self.reactor.unwatch(worker.connections)
            self.router.flush()

        if worker.connections.fileno() >= 0:
            self.reactor.watch(worker.connections, on_writable=on_writable)


class LocalTraffic:
    """The step engine's view of this host: generations of workers behind the router."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def scale(self, generation: Any, count: int) -> None:
        generation.target = count

    def ready_count(self, generation: Any) -> int:
        return len(generation.ready())

    def start_failure(self, generation: Any) -> str | None:
        if generation.start_failures:
            return str(generation.last_failure)
        return None

    def set_weights(self, weights: dict[Any, int]) -> None:
        for generation, weight in weights.items():
            generation.weight = weight
        self.fleet.router.flush()

    def retire(self, generation: Any, count: int | None = None) -> None:
        self.fleet.retire(generation, count)

    def drained(self, generation: Any) -> bool:
        return bool(generation.drained)

    def sample(self, generation: Any) -> Sample:
        sample: Sample = generation.sample()
        return sample


def wait_until(fleet: Fleet, done: Any, timeout: float, reactor: Reactor) -> bool:
    """Run the fleet until ``done()`` or ``timeout``; for startup, before serving."""
    deadline = time.monotonic() + timeout
    while not done():
        now = time.monotonic()
        if now >= deadline:
            return False
        reactor.run_once(min(0.02, deadline - now))
        fleet.tick(time.monotonic())
    return True
