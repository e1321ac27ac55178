"""Run a load test: start the worker processes, line them up, watch them, merge their reports."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess

from zenserve.errors import ZenserveError
from zenserve.load.connection import clock
from zenserve.load.options import BenchOptions
from zenserve.load.result import BenchResult, assemble
from zenserve.load.worker import (
    ABORT,
    DONE,
    FAILED,
    PROGRESS,
    READY_MESSAGE,
    START,
    WorkerPlan,
    WorkerReport,
    worker_main,
)

# Time for worker processes to start (a fresh interpreter each) and connect.
STARTUP_LIMIT = 30.0
# Margin after the run's planned end before workers are declared stuck.
FINISH_MARGIN = 30.0
# Every worker starts this long after the last one is ready, at the same moment.
START_DELAY = 0.05
PROGRESS_POLL = 0.25
# Workers that sent their report exit at once; past this they are killed.
STOP_PATIENCE = 5.0


class ServerUnreachable(ZenserveError):
    """No connection to the server could be opened at all."""


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot of a run in progress, for a progress bar or a log line."""

    elapsed_s: float
    total_s: float
    phase: str  # "warmup", "measuring" or "draining"
    requests: int  # correct answers so far, warmup included
    errors: int
    current_rps: float


ProgressCallback = Callable[[Progress], None]


def plans_for(options: BenchOptions) -> list[WorkerPlan]:
    """Split the connections over the processes as evenly as possible."""
    processes = options.process_count
    share, extra = divmod(options.connections, processes)
    plans, first = [], 0
    for index in range(processes):
        count = share + (index < extra)
        plans.append(WorkerPlan(options, index, first, count))
        first += count
    return plans


def run(options: BenchOptions, progress: ProgressCallback | None = None,
        context: SpawnContext | ForkServerContext | None = None) -> BenchResult:
    """Run one load test as ``options`` says; ``progress`` is called about 4 times a second.

    ``context`` starts the load processes (default: spawn, a fresh interpreter
    each); callers making many short runs may pass a forkserver context with
    ``zenserve.load.worker`` preloaded, which starts them in milliseconds.
    Raises ``ServerUnreachable`` if no connection could be opened at all, and
    ``ZenserveError`` if a worker process fails. Always bounded in time.
    """
    context = context or multiprocessing.get_context("spawn")
    channels: list[Connection] = []
    processes: list[BaseProcess] = []
    cpu_before = time.process_time()
    try:
        for plan in plans_for(options):
            ours, theirs = context.Pipe()
            process = context.Process(target=worker_main, args=(theirs, plan),
                                      name=f"zenserve-bench-{plan.index}", daemon=True)
            process.start()
            theirs.close()
            channels.append(ours)
            processes.append(process)
        _wait_ready(options, channels)
        start = clock() + START_DELAY
        for channel in channels:
            channel.send((START, start))
        reports = _collect(options, channels, start, progress)
    except BaseException:
        _stop(channels, processes, patience=0.0)
        raise
    _stop(channels, processes, patience=STOP_PATIENCE)
    wall = clock() - start
    coordinator_cpu = 100 * (time.process_time() - cpu_before) / wall
    return assemble(options, reports, coordinator_cpu)


def _receive(channel: Connection, deadline: float) -> tuple[object, ...]:
    if not channel.poll(max(0.0, deadline - clock())):
        raise ZenserveError("load process did not answer in time")
    try:
        message: tuple[object, ...] = channel.recv()
    except EOFError:
        raise ZenserveError("load process exited unexpectedly") from None
    if message[0] == FAILED:
        raise ZenserveError(str(message[1]))
    return message


def _wait_ready(options: BenchOptions, channels: list[Connection]) -> None:
    deadline = clock() + STARTUP_LIMIT + options.timeout
    connected, reason = 0, ""
    for channel in channels:
        message = _receive(channel, deadline)
        if message[0] != READY_MESSAGE:
            raise ZenserveError(f"load process sent {message[0]!r} before it was ready")
        connected += int(str(message[1]))
        reason = reason or str(message[2])
    if connected == 0:
        for channel in channels:
            channel.send((ABORT,))
        raise ServerUnreachable(f"cannot reach {options.host}:{options.port}: "
                                f"{reason or 'no connection within the timeout'}")


def _collect(options: BenchOptions, channels: list[Connection], start: float,
             progress: ProgressCallback | None) -> list[WorkerReport]:
    total = options.warmup + options.duration
    deadline = start + total + options.timeout + FINISH_MARGIN
    reports: dict[int, WorkerReport] = {}
    counts = {index: (0, 0) for index in range(len(channels))}
    last_time, last_requests = start, 0
    while len(reports) < len(channels):
        if clock() > deadline:
            raise ZenserveError("load processes did not finish in time")
        pending = [channel for index, channel in enumerate(channels) if index not in reports]
        for channel in wait(pending, timeout=PROGRESS_POLL):
            assert isinstance(channel, Connection)
            index = channels.index(channel)
            message = _receive(channel, deadline)
            if message[0] == PROGRESS:
                counts[index] = (int(str(message[1])), int(str(message[2])))
            elif message[0] == DONE:
                assert isinstance(message[1], WorkerReport)
                reports[index] = message[1]
        now = clock()
        if progress is not None and now - last_time >= PROGRESS_POLL:
            requests = sum(answered for answered, _ in counts.values())
            elapsed = now - start
            phase = ("warmup" if elapsed < options.warmup
                     else "measuring" if elapsed < total else "draining")
            progress(Progress(min(elapsed, total), total, phase, requests,
                              sum(errors for _, errors in counts.values()),
                              (requests - last_requests) / (now - last_time)))
            last_time, last_requests = now, requests
    return [reports[index] for index in range(len(channels))]


def _stop(channels: list[Connection], processes: list[BaseProcess], patience: float) -> None:
    """Close the pipes; give the workers ``patience`` seconds to exit, then kill them."""
    for channel in channels:
        channel.close()
    deadline = clock() + patience
    for process in processes:
        process.join(timeout=max(0.0, deadline - clock()))
        if process.is_alive():
            process.kill()
            process.join()
