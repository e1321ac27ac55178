"""An event loop's timers: connections' deadlines (a lazily re-armed heap), io answers due.

A busy connection's idle deadline moves on every request. Pushing a heap
entry each time would allocate per request, so instead each connection keeps
its true ``deadline`` as a plain attribute that the loop moves freely, and the
heap holds the time it is ``armed`` for. An entry is pushed only when a
deadline moves *earlier* than the armed time (a question started, and the
request timeout is shorter than the idle one); when an entry falls due and its
connection's deadline has meanwhile moved later, it is pushed again at the new
time. So a connection costs one heap push per timeout period, not per request.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar


class Timed(Protocol):
    """What the heap needs from a connection."""

    deadline: float  # when it must be dealt with (moved freely by the loop)
    armed: float  # the earliest time it has an entry in the heap for
    serial: int  # unique per connection: breaks ties between equal deadlines
    open: bool


T = TypeVar("T", bound=Timed)

# Stale entries (superseded by an earlier push) are dropped when they surface;
# rebuild the heap if they ever outnumber the live ones by this factor, so a
# client that starts questions in a hurry cannot grow it without bound.
_STALE_FACTOR = 4


class Deadlines(Generic[T]):
    """The nearest deadline among many connections, and which ones have passed."""

    def __init__(self) -> None:
        # (armed time, serial, item), soonest first. Public so that a loop can read
        # ``heap[0][0]`` every turn without a call; always this same list.
        self.heap: list[tuple[float, int, T]] = []
        self._live: dict[int, T] = {}

    def add(self, item: T) -> None:
        """Start tracking ``item`` at its current ``deadline``."""
        self._live[item.serial] = item
        item.armed = math.inf
        self.arm(item)

    def discard(self, item: T) -> None:
        """Stop tracking ``item`` (its entries are dropped when they surface)."""
        self._live.pop(item.serial, None)

    def arm(self, item: T) -> None:
        """Call after moving ``item.deadline`` earlier; later moves need nothing."""
        if item.deadline < item.armed:
            item.armed = item.deadline
            heapq.heappush(self.heap, (item.deadline, item.serial, item))
            if len(self.heap) > _STALE_FACTOR * len(self._live) + 64:
                self._rebuild()

    def nearest(self) -> float:
        """The earliest armed time (infinity when nothing is tracked)."""
        return self.heap[0][0] if self.heap else math.inf

    def expired(self, now: float) -> list[T]:
        """Every tracked item whose deadline is ``now`` or earlier; the others are re-armed."""
        heap, expired = self.heap, []
        while heap and heap[0][0] <= now:
            armed, _, item = heapq.heappop(heap)
            if not item.open or armed != item.armed:
                continue  # closed, or superseded by an earlier entry
            if item.deadline <= now:
                expired.append(item)
                item.armed = math.inf
            else:
                item.armed = item.deadline
                heapq.heappush(heap, (item.deadline, item.serial, item))
        return expired

    def _rebuild(self) -> None:
        self.heap[:] = [(item.armed, item.serial, item) for item in self._live.values()
                        if item.open and item.armed != math.inf]
        heapq.heapify(self.heap)


class AnswersDue(Generic[T]):
    """Answers waiting out ``--cost-kind io``'s delay, soonest first.

    The delay is the same for every question, so scheduling in time order
    keeps the queue sorted: a deque suffices, and answers on one connection
    stay in the order their questions arrived.
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._queue: deque[tuple[float, T, list[bytes]]] = deque()

    def schedule(self, now: float, item: T, questions: list[bytes]) -> None:
        self._queue.append((now + self.delay, item, questions))

    def nearest(self) -> float:
        """When the first answer is due (infinity when none waits)."""
        return self._queue[0][0] if self._queue else math.inf

    def pop_due(self, now: float) -> Iterator[tuple[T, list[bytes]]]:
        """Take every batch due by ``now``, in order."""
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, item, questions = queue.popleft()
            yield item, questions
