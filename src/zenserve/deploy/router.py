"""Routing accepted connections to generations by exact weights, and to their workers.

``SmoothWeighted`` is the smooth weighted round-robin of nginx: each choice adds
every weight to its running score, picks the highest and subtracts the total
from it. With weights 1 and 9 every run of ten choices holds exactly one of the
first, spread out rather than bunched, so a 10% canary gets 10% of *any* 100
connections, not 10% on average.

The ``Router`` never blocks: a worker whose channel is full is skipped for the
next one of its generation; when every worker of the chosen generation is
behind, the connection waits in a queue until one can take it.
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable

from zenserve.deploy.generation import Generation
from zenserve.deploy.pool import WorkerProcess


class SmoothWeighted:
    """Deterministic, smooth weighted choice among keys (here: generation ids)."""

    def __init__(self) -> None:
        self._scores: dict[int, int] = {}

    def choose(self, weights: dict[int, int]) -> int | None:
        """The next key; None when every weight is zero."""
        total, best, best_score = 0, None, 0
        scores = self._scores
        for key, weight in weights.items():
            if weight <= 0:
                continue
            score = scores.get(key, 0) + weight
            scores[key] = score
            total += weight
            if best is None or score > best_score:
                best, best_score = key, score
        if best is not None:
            scores[best] -= total
        return best

    def forget(self, key: int) -> None:
        self._scores.pop(key, None)


class Router:
    """Sends each connection's descriptor to a worker of a generation chosen by weight."""

    def __init__(self, on_backlog: Callable[[WorkerProcess], None]) -> None:
        self.generations: dict[int, Generation] = {}
        self._chooser = SmoothWeighted()
        self._on_backlog = on_backlog  # asks the supervisor to watch a full channel
        self.waiting: deque[int] = deque()  # routed nowhere yet: no generation can take them
        self.routed = 0

    def add(self, generation: Generation) -> None:
        self.generations[generation.id] = generation

    def remove(self, generation: Generation) -> None:
        self.generations.pop(generation.id, None)
        self._chooser.forget(generation.id)

    def weights(self) -> dict[int, int]:
        """Effective weights: a generation without a ready worker takes nothing."""
        return {gen_id: generation.weight if generation.ready() else 0
                for gen_id, generation in self.generations.items()}

    def route(self, fd: int) -> None:
        """Take ownership of ``fd``: send it to a worker now, or queue it."""
        if self.waiting or not self._send(fd):
            self.waiting.append(fd)

    def flush(self) -> None:
        """Retry queued connections (a worker became ready or caught up)."""
        while self.waiting:
            fd = self.waiting[0]
            if not self._send(fd):
                return
            self.waiting.popleft()

    def _send(self, fd: int) -> bool:
        weights = self.weights()
        gen_id = self._chooser.choose(weights)
        if gen_id is None:
            return False
        if self._send_to(self.generations[gen_id], fd):
            return True
        # Every worker of the chosen generation is behind (or stuck): rather than
        # stall everyone behind it, give the connection to another generation.
        for other_id, weight in sorted(weights.items(), key=lambda item: -item[1]):
            if other_id != gen_id and weight > 0 and self._send_to(self.generations[other_id], fd):
                return True
        return False

    def _send_to(self, generation: Generation, fd: int) -> bool:
        for worker in generation.next_workers():
            try:
                worker.send(fd)
            except BlockingIOError:
                self._on_backlog(worker)
                continue
            except OSError:
                continue  # the worker died; its exit is handled by its channel
            os.close(fd)
            self.routed += 1
            generation.routed += 1
            return True
        return False

    def close_waiting(self) -> None:
        """At exit: connections nobody will serve."""
        while self.waiting:
            with contextlib.suppress(OSError):
                os.close(self.waiting.popleft())
