"""Process workers: N forked copies of one architecture serving one shared listening socket.

The chapter's multi-process server, and with an event loop in each worker its
"best of both worlds". The parent binds (or inherits) the listener, forks the
workers, says ``Listening at`` once every worker is ready, then supervises in
the style of gunicorn's arbiter: signals become bytes on a pipe, and one loop
handles them, reaps dead workers and refills their slots.

Why one listener inherited through fork rather than one SO_REUSEPORT listener
per worker: all workers drain one accept queue, so a worker that dies (or is
busy, as a ``single`` worker is) strands no connection, whereas SO_REUSEPORT
hashes each connection to one socket's queue and closing that socket resets
what waits in it (the kernel's ``tcp_migrate_req`` discussion); and the parent
holds the socket for its whole life, so replacing workers never closes the
port, which deployment relies on. The price: the kernel does not balance the
load between workers, whoever is waiting in accept/epoll first wins.

Workers import their architecture themselves, after the fork: the parent
never creates an event loop, a gevent hub or a uvloop to be inherited broken.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import resource
import selectors
import signal
import socket
import time
from collections.abc import Callable, Iterator
from functools import partial

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from zenserve.accept_share import AcceptShares
from zenserve.config import MAX_WORKERS, ServerConfig
from zenserve.descriptors import require_spare_descriptors
from zenserve.errors import ZenserveError
from zenserve.metrics import announce_metrics, start_metrics
from zenserve.net import describe_address
from zenserve.runner import (
    ReadyCallback,
    announce_ready,
    build_context,
    install_shutdown_signals,
    open_listener,
)
from zenserve.servers import get_architecture, server_class
from zenserve.servers.base import ServeContext
from zenserve.shared_stats import SharedStatsTable, StatsPublisher
from zenserve.stats import Stats
from zenserve.supervision import ReadyChannel, SignalInbox
from zenserve.worker_pool import Exit, WorkerPool

log = logging.getLogger("zenserve.workers")

# After --graceful-timeout, workers get this long to close and exit before
# SIGKILL; after SIGINT ("at once") they get only this long.
STOP_MARGIN_SECONDS = 3.0
# Every worker must report ready within this (importing an architecture takes far less).
STARTUP_TIMEOUT_SECONDS = 30.0
# The loop reaps at least this often, even if a SIGCHLD were lost.
TICK_SECONDS = 1.0
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Supervisor:
    """The arbiter loop: handle signals, reap and replace dead workers, keep the count at target.

    ``on_exit`` hears of every worker that is reaped (before its slot is
    refilled). Creating a Supervisor does nothing to the process; ``start``
    installs its signal handling and ``close`` restores it.
    """

    def __init__(self, pool: WorkerPool, channel: ReadyChannel, graceful_timeout: float,
                 on_exit: Callable[[Exit], None] = lambda exit: None) -> None:
        self._pool = pool
        self._channel = channel
        self._graceful_timeout = graceful_timeout
        self._on_exit = on_exit
        self._inbox: SignalInbox | None = None
        self._selector: selectors.BaseSelector | None = None

    def start(self) -> bool:
        """Fork every worker and wait until each is ready; False if told to stop first.

        Raises ``ZenserveError`` (one line) when a worker cannot start.
        """
        self._inbox = SignalInbox((*_STOP_SIGNALS, signal.SIGCHLD))
        self._selector = selectors.DefaultSelector()
        self._pool.parent_only_fds += [*self._inbox.fds(), self._selector.fileno()]
        self._selector.register(self._inbox, selectors.EVENT_READ)
        self._selector.register(self._channel, selectors.EVENT_READ)
        self._pool.fill(time.monotonic())
        ready: set[int] = set()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while len(ready) < self._pool.size:
            if (remaining := deadline - time.monotonic()) <= 0:
                raise ZenserveError(f"workers not ready within {STARTUP_TIMEOUT_SECONDS:g}s")
            signals, messages = self._wait(remaining)
            if stop := self._stop_requested(signals):
                self._stop(graceful=stop == signal.SIGTERM)
                return False
            for index, message in messages:
                if message != "ready":
                    raise ZenserveError(f"worker {index} cannot start: {_reason(message)}")
                ready.add(index)
            for exit in self._reap():
                raise ZenserveError(f"worker {exit.slot} {exit.describe()} before it was ready")
        return True

    def run(self) -> None:
        """Supervise until SIGTERM (graceful) or SIGINT (at once), then wait for the workers."""
        while True:
            refill = self._pool.next_refill()
            timeout = TICK_SECONDS if refill is None else refill - time.monotonic()
            signals, messages = self._wait(min(max(timeout, 0.0), TICK_SECONDS))
            if stop := self._stop_requested(signals):
                self._stop(graceful=stop == signal.SIGTERM)
                return
            for index, message in messages:
                if message == "ready":
                    log.info("Worker %d is ready", index)
                else:
                    log.error("Worker %d cannot start: %s", index, _reason(message))
            for exit in self._reap():
                log.warning("Worker %d (pid %d) %s; replacing it", exit.slot, exit.pid,
                            exit.describe())
            self._pool.fill(time.monotonic())

    def close(self) -> None:
        """Kill any worker still running and restore the signal handling."""
        for exit in self._pool.kill_all():
            self._on_exit(exit)
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._inbox is not None:
            self._inbox.close()
            self._inbox = None

    def _wait(self, timeout: float) -> tuple[list[int], list[tuple[int, str]]]:
        assert self._selector is not None and self._inbox is not None
        self._selector.select(timeout)
        return self._inbox.drain(), self._channel.receive()

    @staticmethod
    def _stop_requested(signals: list[int]) -> int:
        """SIGINT if it came (it wins), else SIGTERM if it came, else 0."""
        return next((signum for signum in (signal.SIGINT, signal.SIGTERM) if signum in signals), 0)

    def _reap(self) -> list[Exit]:
        exits = self._pool.reap(time.monotonic())
        for exit in exits:
            self._on_exit(exit)
        return exits

    def _stop(self, graceful: bool) -> None:
        """Forward the stop to every worker, wait for them with a deadline, then kill."""
        self._pool.signal_all(signal.SIGTERM if graceful else signal.SIGINT)
        deadline = time.monotonic() + STOP_MARGIN_SECONDS
        if graceful:
            deadline += self._graceful_timeout
        while self._pool.alive and (remaining := deadline - time.monotonic()) > 0:
            signals, _ = self._wait(min(remaining, TICK_SECONDS))
            if graceful and signal.SIGINT in signals:  # impatient: stop at once after all
                graceful = False
                self._pool.signal_all(signal.SIGINT)
                deadline = min(deadline, time.monotonic() + STOP_MARGIN_SECONDS)
            for exit in self._reap():
                log.info("Worker %d (pid %d) %s", exit.slot, exit.pid, exit.describe())
        if self._pool.alive:
            log.warning("%d worker(s) still running at the stop deadline; killing them",
                        self._pool.alive)


def _reason(message: str) -> str:
    """What a worker's ``error ...`` report says, without the keyword."""
    return message.removeprefix("error ")


def serve_in_worker(index: int, listener: socket.socket, context: ServeContext,
                    table: SharedStatsTable, channel: ReadyChannel,
                    shares: AcceptShares | None = None) -> int:
    """Run the architecture's Server in this forked worker until a signal stops it."""
    # This process's own counters, and its say in who accepts the next connection.
    context = dataclasses.replace(
        context, stats=Stats(),
        accept_share=shares.for_worker(index) if shares is not None else None)
    try:
        server = server_class(context.config.architecture)(listener, context)
        require_spare_descriptors(shares.slots if shares is not None else 0)
    except ZenserveError as error:
        channel.report(index, f"error {error}")
        return 2
    install_shutdown_signals(server)
    publisher = StatsPublisher(table, index, context.stats)
    publisher.start()
    channel.report(index, "ready")
    try:
        server.serve_forever()
    finally:
        publisher.stop()
    return 0


def pool_metrics(pool: WorkerPool) -> Iterator[Metric]:
    """The supervisor's own metrics, next to the workers' counters."""
    yield GaugeMetricFamily("zenserve_workers", "Worker processes running.", value=pool.alive)
    yield CounterMetricFamily("zenserve_worker_restarts", "Workers replaced after they died.",
                              value=pool.restarts)


def serve_with_workers(config: ServerConfig, ready: ReadyCallback = announce_ready,
                       generation: str = "") -> None:
    """Serve ``config`` with ``config.workers`` supervised processes until SIGTERM or SIGINT."""
    if not 1 <= config.workers <= MAX_WORKERS:
        raise ZenserveError(f"--workers must be 1 to {MAX_WORKERS}")
    # The name now; each worker imports the module.
    architecture = get_architecture(config.architecture)
    context = build_context(config)  # a bad table or callable fails here, before any fork
    with contextlib.ExitStack() as cleanup:
        cleanup.callback((listener := open_listener(config)).close)
        with starting_workers(config.workers):
            table = cleanup.enter_context(contextlib.closing(SharedStatsTable(config.workers)))
            # Only the event loops take turns to accept (AcceptTurns); a blocking
            # worker would just inherit an eventfd per worker, unused: 64 of them
            # under `ulimit -n 64` left it none to accept with.
            shares = (cleanup.enter_context(contextlib.closing(AcceptShares(config.workers)))
                      if architecture.event_loop else None)
            channel = cleanup.enter_context(contextlib.closing(ReadyChannel()))
        main = partial(serve_in_worker, listener=listener, context=context, table=table,
                       channel=channel, shares=shares)
        pool = WorkerPool(config.workers, main)
        pool.parent_only_fds.append(channel.fileno())
        # The metrics thread runs while workers are forked: safe, because a child
        # only closes the metrics socket and never touches the thread's objects
        # or locks (a scrape in progress at that instant leaves the child a copy
        # of that one connection's fd, which is closed when the worker exits).
        metrics = start_metrics(config, table.totals, partial(pool_metrics, pool), generation)
        if metrics is not None:
            cleanup.callback(metrics.close)
            pool.parent_only_fds.append(metrics.fileno())
        supervisor = Supervisor(pool, channel, config.limits.graceful_timeout,
                                on_exit=lambda exit: _retire(exit, table, shares))
        cleanup.callback(supervisor.close)
        with starting_workers(config.workers):
            started = supervisor.start()
        if started:
            ready(describe_address(listener.getsockname()))
            announce_metrics(metrics)
            supervisor.run()


@contextlib.contextmanager
def starting_workers(count: int) -> Iterator[None]:
    """Turn running out of a resource (descriptors, memory) while starting workers into one line."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        if error.errno == errno.EMFILE:
            soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            reason += f" (the limit, ulimit -n, is {soft_limit})"
        raise ZenserveError(f"cannot start {count} workers: {reason}") from None


def _retire(exit: Exit, table: SharedStatsTable, shares: AcceptShares | None) -> None:
    """A worker was reaped: keep its counts, and let no peer wait for it to accept."""
    table.retire(exit.slot)
    if shares is not None:
        shares.vacate(exit.slot)
