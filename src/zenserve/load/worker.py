"""One load process: its share of the connections on one event loop, for one run.

The coordinator (``zenserve.load.coordinator``) talks to each worker over a
pipe: the worker connects and says ``ready``; the coordinator answers
``start`` with one start time for every worker (the monotonic clock is
system-wide), so warmup, seconds of the timeline and the end line up across
processes. Every quarter second the worker sends ``progress``; at the end,
``done`` with its report (histograms in HdrHistogram's encoded format).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection

from zenserve.load.connection import ASKING, CONNECTING, READY, LoadConnection, Shared, clock
from zenserve.load.eventloop import loop_name, new_event_loop
from zenserve.load.fastlane import FastLane, lane_available
from zenserve.load.loops import ClosedLoopConnection, OpenLoopConnection
from zenserve.load.mix import build_cycle, starting_point
from zenserve.load.options import BenchOptions
from zenserve.load.recorder import IntervalCounts, encode, histogram_from

PROGRESS_INTERVAL = 0.25
# After the end, requests in flight may finish for this long (at most the
# timeout): a server that stalls at the very end is still charged for it.
DRAIN_LIMIT = 1.0
DRAIN_POLL = 0.005

# Messages on the pipe (the first item of each tuple).
READY_MESSAGE, START, ABORT, PROGRESS, DONE, FAILED = (
    "ready", "start", "abort", "progress", "done", "failed")


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """Worker ``index`` runs connections ``first_connection`` .. + ``connections`` - 1."""

    options: BenchOptions
    index: int
    first_connection: int
    connections: int


@dataclass(frozen=True, slots=True)
class Interval:
    """One timeline row of one worker: counts, and encoded HDR histograms (microseconds)."""

    seconds: float
    answered: int
    errors: tuple[int, ...]
    latency: str
    service: str | None


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """Everything a worker measured after the warmup."""

    intervals: tuple[Interval, ...]
    user_seconds: float  # CPU in the measured time (and the drain), user ...
    system_seconds: float  # ... and kernel
    unfinished: int
    event_loop: str
    late_sends: int = 0  # open loop: sends more than LATE_LIMIT behind the schedule ...
    max_lag: float = 0.0  # ... and the largest lag, in seconds

    @property
    def cpu_seconds(self) -> float:
        """User and kernel CPU together."""
        return self.user_seconds + self.system_seconds


def worker_main(channel: Connection, plan: WorkerPlan) -> None:
    """Entry point of a worker process (the coordinator handles Ctrl-C, not workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop = new_event_loop(plan.options.event_loop)
    try:
        report = loop.run_until_complete(Worker(plan, channel, loop).run())
        if report is not None:
            channel.send((DONE, report))
    except Exception as error:
        # The coordinator may be gone (its end of the pipe closed): then nobody listens.
        with contextlib.suppress(OSError):
            channel.send((FAILED, f"worker {plan.index}: {type(error).__name__}: {error}"))
    finally:
        loop.close()
        channel.close()


class Worker:
    """Runs one worker's connections through warmup, measurement and drain."""

    def __init__(self, plan: WorkerPlan, channel: Connection,
                 loop: asyncio.AbstractEventLoop) -> None:
        options = plan.options
        self.options = options
        self.channel = channel
        self.loop = loop
        self.shared = Shared(loop, options.host, options.port, options.timeout,
                             options.connection_per_request)
        if options.fast_lane and not options.open_loop and lane_available():
            self.shared.lane = FastLane(loop, self.shared.latency)
        cycle = build_cycle(options.questions, options.unknown_ratio, options.error_ratio,
                            options.max_request_bytes, options.connection_per_request,
                            options.seed)
        kind = OpenLoopConnection if options.open_loop else ClosedLoopConnection
        indexes = range(plan.first_connection, plan.first_connection + plan.connections)
        self.global_indexes = list(indexes)
        self.connections: list[LoadConnection] = [
            kind(self.shared, starting_point(cycle, index)) for index in indexes]
        # Per timeline row: its length, error counts, latency and service counts.
        self.rows: list[tuple[float, tuple[int, ...], IntervalCounts, IntervalCounts]] = []
        self.errors_before = (0,) * len(self.shared.errors)
        self.ticker: asyncio.Handle | None = None

    async def run(self) -> WorkerReport | None:
        """Connect, wait for the start, run; None if the coordinator aborted."""
        try:
            return await self._run()
        finally:
            if self.shared.lane is not None:
                self.shared.lane.close()

    async def _run(self) -> WorkerReport | None:
        connected = await self._prepare()
        self.channel.send((READY_MESSAGE, connected, self.shared.connect_error))
        message = await self._receive()
        if message[0] != START:
            self._abandon_all()
            await self._settle()
            return None
        return await self._measure(float(str(message[1])))

    async def _prepare(self) -> int:
        for connection in self.connections:
            connection.connect()
        deadline = clock() + self.options.timeout
        while clock() < deadline and any(c.state == CONNECTING for c in self.connections):
            await asyncio.sleep(DRAIN_POLL)
        for connection in self.connections:
            connection.cancel_connect()
        return sum(c.state == READY for c in self.connections)

    async def _receive(self) -> tuple[object, ...]:
        received: asyncio.Future[tuple[object, ...]] = self.loop.create_future()

        def readable() -> None:
            if not received.done():
                try:
                    received.set_result(self.channel.recv())
                except EOFError:
                    received.set_result((ABORT,))

        self.loop.add_reader(self.channel.fileno(), readable)
        try:
            return await received
        finally:
            self.loop.remove_reader(self.channel.fileno())

    async def _sleep_until(self, moment: float) -> None:
        await asyncio.sleep(max(0.0, moment - clock()))

    async def _measure(self, start: float) -> WorkerReport:
        options = self.options
        measure_start = start + options.warmup
        measure_end = measure_start + options.duration
        await self._sleep_until(start)
        self._begin(start, measure_end)
        self.ticker = self.loop.call_soon(self._tick, start)
        if options.warmup > 0:
            await self._sleep_until(measure_start)
            self._cut(0.0)
            self.rows.clear()  # the warmup is not counted
        self.shared.late_sends, self.shared.max_lag = 0, 0.0
        cpu_start = os.times()
        boundaries = [measure_start + second for second in range(1, math.ceil(options.duration))]
        previous = measure_start
        for boundary in boundaries:
            await self._sleep_until(boundary)
            self._cut(boundary - previous)
            previous = boundary
        await self._sleep_until(measure_end)
        unfinished = await self._stop_and_drain()
        self._cut(measure_end - previous)
        cpu_end = os.times()
        cpu_seconds = (cpu_end.user - cpu_start.user, cpu_end.system - cpu_start.system)
        if self.ticker is not None:
            self.ticker.cancel()
        await self._settle()
        return self._report(cpu_seconds, unfinished)

    async def _settle(self) -> None:
        """Let closed connections and cancelled connects finish before the loop closes."""
        others = asyncio.all_tasks() - {asyncio.current_task()}
        await asyncio.gather(*others, return_exceptions=True)
        await asyncio.sleep(0)  # connection_lost callbacks

    def _begin(self, start: float, measure_end: float) -> None:
        self.shared.started = True
        self.shared.started_at = start
        self.shared.stopping = False
        rate = self.options.rate
        for index, connection in zip(self.global_indexes, self.connections, strict=True):
            if isinstance(connection, OpenLoopConnection) and rate is not None:
                # Connection i starts i/R seconds in: the total stream is evenly spaced.
                connection.schedule(start + index / rate, self.options.connections / rate,
                                    measure_end)
            connection.advance()

    def _tick(self, start: float) -> None:
        now = clock()
        for connection in self.connections:
            if connection.state == ASKING or connection.state == CONNECTING:
                connection.check_timeout(now)
        answered = self.shared.latency.count()  # one latency per correct answer
        try:
            self.channel.send((PROGRESS, answered, sum(self.shared.errors)))
        except OSError:
            self.loop.stop()  # the coordinator is gone: so is the reason to go on
            return
        ticks = math.floor((now - start) / PROGRESS_INTERVAL) + 1
        self.ticker = self.loop.call_later(
            start + ticks * PROGRESS_INTERVAL - now, self._tick, start)

    def _cut(self, seconds: float) -> None:
        errors = tuple(self.shared.errors)
        latency, service = self.shared.latency.cut(), self.shared.service.cut()
        errors_in_row = tuple(now - before
                              for now, before in zip(errors, self.errors_before, strict=True))
        self.rows.append((seconds, errors_in_row, latency, service))
        self.errors_before = errors
        self._scan_later(latency)
        if self.options.open_loop:
            self._scan_later(service)

    def _scan_later(self, counts: IntervalCounts) -> None:
        """Scan the bins a step per loop iteration: no long stall charged to requests."""
        if not counts.done:
            counts.scan_step()
            self.loop.call_soon(self._scan_later, counts)

    async def _stop_and_drain(self) -> int:
        self.shared.stopping = True
        for connection in self.connections:
            connection.stop()
        deadline = clock() + min(self.options.timeout, DRAIN_LIMIT)
        while clock() < deadline and any(c.state == ASKING for c in self.connections):
            await asyncio.sleep(DRAIN_POLL)
        return self._abandon_all()

    def _abandon_all(self) -> int:
        self.shared.stopping = True
        return sum(connection.abandon() for connection in self.connections)

    def _report(self, cpu_seconds: tuple[float, float], unfinished: int) -> WorkerReport:
        open_loop = self.options.open_loop
        intervals = []
        for seconds, errors, latency_counts, service_counts in self.rows:
            latency = latency_counts.sparse()
            intervals.append(Interval(
                seconds,
                sum(latency[1]),  # one latency per correct answer
                errors,
                encode(histogram_from(latency)),
                encode(histogram_from(service_counts.sparse())) if open_loop else None,
            ))
        return WorkerReport(tuple(intervals), *cpu_seconds, unfinished, loop_name(self.loop),
                            self.shared.late_sends, self.shared.max_lag)
