"""What times the sweep of an asyncio loop (``aio``): a thread, or the loop's own timer.

While any timer is scheduled, every turn of asyncio's loop reads the clock once
more and works out its select timeout with ``min`` and ``max``: about 2,800
instructions a turn under callgrind, a tenth of a request at one connection
and twice that for a coroutine (two turns per request). A periodic sweep on
``call_later`` keeps a timer scheduled for good, so asyncio's loops have a
thread time it instead (``ThreadTimedSweeps``): the thread wakes the loop with
``call_soon_threadsafe`` once per interval, and the loop's timer heap stays
empty while it serves. uvloop's timers live in libuv and cost nothing per turn,
so uvloop keeps ``call_later`` (``LoopTimedSweeps``).
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import Callable

from zenserve.signals import start_leaving_signals_to_main

# How long stop() waits for the timing thread (it wakes at once when told).
JOIN_SECONDS = 5.0


class Sweeps(abc.ABC):
    """Calls ``sweep`` on the loop's thread every ``interval`` seconds until ``stop``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float,
                 sweep: Callable[[], None]) -> None:
        self._loop = loop
        self._interval = interval
        self._sweep = sweep

    @abc.abstractmethod
    def stop(self) -> None:
        """No sweep after this returns (call it on the loop's thread, before the loop closes)."""


class LoopTimedSweeps(Sweeps):
    """One ``call_later`` per sweep, re-armed after each."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float,
                 sweep: Callable[[], None]) -> None:
        super().__init__(loop, interval, sweep)
        self._timer: asyncio.TimerHandle | None = loop.call_later(interval, self._on_timer)

    def _on_timer(self) -> None:
        self._sweep()
        self._timer = self._loop.call_later(self._interval, self._on_timer)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ThreadTimedSweeps(Sweeps):
    """A daemon thread waits out each interval and hands the sweep to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float,
                 sweep: Callable[[], None]) -> None:
        super().__init__(loop, interval, sweep)
        self._stopping = threading.Event()
        self._stopped = False
        # Set by the thread when it hands a sweep over, cleared when the sweep
        # runs: a loop stalled by a blocking cost gets one sweep, not a backlog.
        self._handed_over = False
        self._thread = threading.Thread(target=self._time_sweeps, name="zenserve-sweep",
                                        daemon=True)
        start_leaving_signals_to_main(self._thread)

    def _time_sweeps(self) -> None:
        while not self._stopping.wait(self._interval):
            if self._handed_over:
                continue
            self._handed_over = True
            try:
                self._loop.call_soon_threadsafe(self._on_tick)
            except RuntimeError:  # the loop closed under us: nothing left to sweep
                return

    def _on_tick(self) -> None:
        self._handed_over = False
        if not self._stopped:
            self._sweep()

    def stop(self) -> None:
        self._stopped = True  # a sweep already handed over does nothing now
        self._stopping.set()
        self._thread.join(JOIN_SECONDS)
