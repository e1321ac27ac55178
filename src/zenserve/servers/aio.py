"""What asyncio-callbacks, asyncio-coroutines and uvloop share: the loop around the conversations.

Each of those architectures only says how an accepted socket becomes a
conversation (``start_connection``) and what a conversation must do for a
sweep or a shutdown (``aio_connection.LoopConnection``); this module runs the loop (whose
factory is all that uvloop changes), accepts and admits clients, sweeps
timeouts, and shuts down gracefully.

It accepts on its own instead of through ``loop.create_server`` because on
Python 3.11 asyncio's accept loop, once out of descriptors, keeps calling
accept() up to ``backlog`` times per wake-up and schedules a retry timer for
every failure (CPython gh-151615): measured here, hundreds of thousands of
error reports a minute and a loop busy with its own retries. Accepting here
also lets ``--allow`` and ``--max-connections`` turn a client away before a
transport or protocol is built for it.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import gc
import logging
import select
import socket
from collections.abc import Callable

from zenserve.accept_share import AcceptTurns
from zenserve.net import describe_address
from zenserve.servers import base
from zenserve.servers.aio_connection import LoopConnection, RefusedClient
from zenserve.servers.aio_selector import LeanEpollSelector
from zenserve.servers.aio_sweep import Sweeps, ThreadTimedSweeps
from zenserve.servers.eventloop_connection import refuse_busy
from zenserve.servers.linger import refused_held_at_most
from zenserve.servers.sweep import STOP_POLL_SECONDS, sweep_interval

log = logging.getLogger("zenserve.server")

# Out of descriptors, accept() fails while the connection stays queued and the
# listener stays readable: stop watching it this long instead of spinning.
ACCEPT_BACKOFF_SECONDS = 0.1
# Connections taken per wake-up; the rest wait one turn of the loop, so a storm
# of connections cannot starve the clients already being served.
ACCEPTS_PER_WAKEUP = 64
# After aborting what a shutdown left open, how long to let the loop deliver
# connection_lost (a few turns; this only bounds it).
ABORT_SETTLE_SECONDS = 1.0


class LoopServer(base.Server):
    """An asyncio event loop serving every connection of one listener."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self.connections: set[LoopConnection] = set()
        self._graceful = True
        self._stop_asked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._accepting = False
        self._accept_failing = False
        self._accept_retry: asyncio.TimerHandle | None = None
        self._pause_timer: asyncio.TimerHandle | None = None
        self._sweeps: Sweeps | None = None
        self._sweep_every = sweep_interval(context.limits)
        self._refused_lingering = 0  # refused clients held, not counted as active
        # Under --workers: who takes the next connection.
        self._turns = (AcceptTurns(context.accept_share, self)
                       if context.accept_share is not None else None)
        if self._turns is not None:
            # Peers leave connections to this worker from now on (it says it is ready
            # next); until its loop runs, the pause bounds how long they wait.
            self._turns.watching()

    # What times the sweep on that loop (see aio_sweep; uvloop's server uses its timers).
    sweeps_class: type[Sweeps] = ThreadTimedSweeps

    @staticmethod
    def new_event_loop() -> asyncio.AbstractEventLoop:
        """The loop to serve on (uvloop's server returns its own)."""
        if not hasattr(select, "epoll"):
            return asyncio.new_event_loop()
        return asyncio.SelectorEventLoop(LeanEpollSelector())  # see aio_selector

    async def prepare(self) -> None:
        """Anything the loop should hold before the first client (uvloop's server has some)."""

    @abc.abstractmethod
    def start_connection(self, sock: socket.socket, peer: str) -> None:
        """Begin a conversation on an admitted, non-blocking socket (already counted)."""

    def connection_ended(self, connection: LoopConnection | None) -> None:
        """Every started connection calls this exactly once, when it is over."""
        if connection is not None:
            self.connections.discard(connection)
        self.context.stats.connections_active -= 1
        if self._turns is not None:
            self._turns.held_changed()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "only while serving"
        return self._loop

    def serve_forever(self) -> None:
        with asyncio.Runner(loop_factory=self.new_event_loop) as runner:
            runner.run(self._serve())

    def shutdown(self, graceful: bool = True) -> None:
        # Called from a signal handler: only flags and the loop's thread-safe wake-up.
        self._graceful = self._graceful and graceful
        self._stop_asked = True
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(self._on_stop_asked)

    def _on_stop_asked(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._loop = loop  # from here on shutdown() wakes the loop; before, the flag does
        if self._stop_asked:
            self._stop_event.set()
        await self.prepare()
        self.listener.setblocking(False)
        if self._turns is not None:
            loop.add_reader(self._turns.share.fileno(), self._turns.on_turn)
        # What exists by now (modules, the service's table, the loop) lasts as
        # long as the server: frozen, the collector stops walking all of it in
        # every older-generation collection (callgrind: 14,000 instructions per
        # connection, as connections' objects age into those generations).
        gc.freeze()
        self._start_accepting()
        self._sweeps = self.sweeps_class(loop, self._sweep_every, self._sweep)
        try:
            await self._stop_event.wait()
            self._stop_accepting()
            await self._finish_conversations()
        finally:
            self._stop_accepting()
            if self._turns is not None:
                loop.remove_reader(self._turns.share.fileno())
            if self._sweeps is not None:
                self._sweeps.stop()

    # Accepting.

    def _start_accepting(self) -> None:
        self._accept_retry = None
        if self.may_watch_listener():
            self.watch_listener()
            if self._turns is not None:
                self._turns.watching()

    def _stop_accepting(self) -> None:
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        self.unwatch_listener()
        if self._turns is not None:
            self._turns.withdraw()

    # The ListenerSwitch that AcceptTurns drives under --workers.

    def connections_held(self) -> int:
        return self.context.stats.connections_active

    def may_watch_listener(self) -> bool:
        return not self._stop_asked and self._accept_retry is None

    def watch_listener(self) -> None:
        if not self._accepting:
            self.loop.add_reader(self.listener.fileno(), self._accept)
            self._accepting = True

    def unwatch_listener(self) -> None:
        if self._accepting:
            self.loop.remove_reader(self.listener.fileno())
            self._accepting = False

    def start_pause_timer(self, seconds: float, expired: Callable[[], None]) -> None:
        self._pause_timer = self.loop.call_later(seconds, expired)

    def cancel_pause_timer(self) -> None:
        if self._pause_timer is not None:
            self._pause_timer.cancel()
            self._pause_timer = None

    def accept_queued(self) -> None:
        self._accept()

    def _accept(self) -> None:
        accept, turns = self.listener.accept, self._turns
        for _ in range(ACCEPTS_PER_WAKEUP):
            if turns is not None and not turns.may_accept():
                return
            try:
                sock, address = accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                self._back_off(error)
                return
            self._accept_failing = False
            self._admit(sock, address)

    def _back_off(self, error: OSError) -> None:
        """Out of descriptors (or any accept failure): stop watching the listener a while."""
        if not self._accept_failing:
            log.warning("accept() failed (%s); backing off", error.strerror)
            self._accept_failing = True
        self._stop_accepting()
        self._accept_retry = self.loop.call_later(ACCEPT_BACKOFF_SECONDS, self._start_accepting)

    def _admit(self, sock: socket.socket, address: object) -> None:
        context = self.context
        if not context.admit(sock, address):
            return
        stats = context.stats
        if 0 < context.limits.max_connections <= stats.connections_active:
            self._refuse(sock, address)
            return
        sock.setblocking(False)
        if isinstance(address, tuple):  # TCP; sock.family would build an enum every time
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stats.connections_opened += 1
        stats.connections_active += 1
        if self._turns is not None:
            self._turns.held_changed()
        self.start_connection(sock, describe_address(address))

    def _refuse(self, sock: socket.socket, address: object) -> None:
        """Past --max-connections: say so; linger on the client if it may still send."""
        stats = self.context.stats
        if not refuse_busy(sock, address, stats):
            return
        if self._refused_lingering >= refused_held_at_most(self.context.limits.max_connections):
            sock.close()
            return
        self._refused_lingering += 1
        self.connections.add(RefusedClient(self, sock))

    def refusal_ended(self, client: LoopConnection) -> None:
        """A lingering refused client calls this once, when it is over."""
        self.connections.discard(client)
        self._refused_lingering -= 1

    # Timeouts: one sweep per loop.

    def _sweep(self) -> None:
        now = self.loop.time()
        limits = self.context.limits
        for connection in list(self.connections):
            reason = connection.expired(now, limits, connection.output_size(),
                                        connection.working())
            if reason:
                connection.time_out(reason)

    # Shutting down.

    async def _finish_conversations(self) -> None:
        """Let conversations reach a request boundary, then close whatever is left."""
        loop = self.loop
        deadline = loop.time() + self.context.limits.graceful_timeout
        while self._graceful and self.connections and loop.time() < deadline:
            await self._close_finished_conversations()
            if self.connections:
                await asyncio.sleep(STOP_POLL_SECONDS)
        for connection in list(self.connections):
            connection.abort()
        settled = loop.time() + ABORT_SETTLE_SECONDS
        while self.connections and loop.time() < settled:
            await asyncio.sleep(0.01)

    async def _close_finished_conversations(self) -> None:
        connections = list(self.connections)
        for connection in connections:
            connection.hold_input()
        # One turn of the loop: a conversation woken by input that arrived before
        # the hold runs first, so what it was sent is answered, not cut off.
        await asyncio.sleep(0)
        for connection in connections:
            connection.close_if_at_boundary()
