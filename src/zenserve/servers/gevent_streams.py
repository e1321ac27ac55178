"""gevent: requests served by greenlets on gevent's hub; idle clients park on a watcher.

What many users pick instead of asyncio: the code that serves a request reads
like the threaded server's (recv, answer, send; sleep for an ``io`` cost; wait
while a slow reader drains), run in a greenlet on gevent's hub (libev).

A greenlet suspended in ``recv`` costs about 8 KiB (its saved slice of the C
stack and its own Python data-stack chunk), and an idle client needs none of
it. So between requests a connection is only its socket, its conversation and
a read watcher of the hub. When the watcher fires, the hub hands the connection
to a worker greenlet from a small pool of idle ones; the worker reads what
arrived, answers and sends, then goes back to the pool. A worker stays with a
connection only while its request must wait: an ``io`` cost (``gevent.sleep``)
or a client that does not read its answers (the worker waits for the socket to
drain and reads nothing more from that client meanwhile: backpressure without a
buffer). Nothing waits in ``recv``: no failed read and no watcher started and
stopped per request.

Nothing is monkey-patched: this module is imported only when gevent is the
chosen architecture, and even then the standard library stays as it is. So the
cost knob keeps its honest effect: ``block`` is ``time.sleep`` and ``cpu`` is
busy work, both stalling the hub and every client with it; ``io`` is
``gevent.sleep``, which only that client waits for.

Timeouts come from one sweeping greenlet, not a gevent.Timeout per read; a
timeout or a shutdown ends a connection by shutting its socket down, which
wakes whatever waits on it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.hub import GreenletExit, RawGreenlet
from gevent.socket import wait_write

from zenserve.conversation import Conversation
from zenserve.net import describe_address
from zenserve.servers import base
from zenserve.servers.eventloop_connection import refuse_busy
from zenserve.servers.gevent_accept import Acceptor
from zenserve.servers.linger import (
    LINGER_BYTES,
    LINGER_SECONDS,
    REFUSED_LINGER_FACTOR,
    drop_input,
    shut_write_side,
)
from zenserve.servers.sweep import STOP_POLL_SECONDS, ConnectionClock, input_waiting, sweep_interval

log = logging.getLogger("zenserve.server")

RECV_BYTES = 65536
READ = 1  # libev's EV_READ
# Idle workers kept for the next requests; more are made when more requests wait at once.
IDLE_WORKERS_KEPT = 32
# After shutting down what a stop left open, how long its waiting requests may take to notice.
ABORT_SETTLE_SECONDS = 1.0


class GreenConnection(ConnectionClock):
    """One client's socket, conversation and read watcher, as the sweep and shutdown see them."""

    __slots__ = ("closed_by_server", "conversation", "linger_budget", "linger_timer",
                 "paying_cost", "progress", "sock", "waiting_worker", "watcher")

    def __init__(self, sock: socket.socket, conversation: Conversation, watcher: Any) -> None:
        super().__init__(time.monotonic())
        self.sock = sock  # a plain non-blocking socket
        self.conversation = conversation
        self.watcher = watcher  # the hub's read watcher, started while the connection is idle
        # The worker greenlet suspended on this connection's behalf (an io cost, or
        # answers draining), or None: parked on the watcher, or being served right now.
        self.waiting_worker: Any = None
        self.paying_cost = False  # in gevent.sleep for an io cost
        self.progress = 0  # changes while answers drain: the client is reading
        self.closed_by_server = False  # the EOF or error that follows is our own doing
        # After its closing reply (see ``linger``): what it may still send, dropped by a
        # hub callback, and the hub timer that ends it (0 and None: not lingering).
        self.linger_budget = 0
        self.linger_timer: Any = None

    def end(self) -> None:
        """Shut the socket down: whatever waits on it wakes (EOF or an error)."""
        self.closed_by_server = True
        with contextlib.suppress(OSError):  # already gone
            self.sock.shutdown(socket.SHUT_RDWR)

    def at_boundary(self) -> bool:
        """Parked between questions with nothing unread, or lingering: a stop may close it now."""
        if self.linger_budget:
            return True
        return (self.waiting_worker is None and not self.closed_by_server
                and not self.conversation.mid_request and not input_waiting(self.sock.fileno()))


class Server(base.Server):
    """Greenlets serving requests on gevent's hub; the shared listener accepted by StreamServer."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self.connections: set[GreenConnection] = set()
        self._io_delay = context.service.io_delay
        self._stopping = False
        self._graceful = True
        self._stop_asked = False
        self._hub: Any = None
        self._stop_event: Any = None
        self._acceptor: Acceptor | None = None
        self._idle_workers: list[Any] = []
        if context.accept_share is not None:
            context.accept_share.watch(0)  # as aio.LoopServer does: peers count on it now

    def serve_forever(self) -> None:
        self._stop_event = Event()
        self._hub = gevent.get_hub()  # from here on shutdown() wakes the hub; before, the flag
        if self._stop_asked:
            self._stop_event.set()
        # Non-blocking, or a worker that loses the accept race to another would block the hub.
        self.listener.setblocking(False)
        acceptor = self._acceptor = Acceptor(self.listener, self._handle,
                                              self.context.accept_share, self.context.stats)
        acceptor.begin()
        sweeper = gevent.spawn(self._sweep_forever)
        try:
            self._stop_event.wait()
            self._stopping = True
            acceptor.end()
            self._finish_conversations()
        finally:
            acceptor.end()
            sweeper.kill(block=False)
            self._idle_workers.clear()  # collected suspended, they exit with GreenletExit

    def shutdown(self, graceful: bool = True) -> None:
        # From a signal handler (running in whichever greenlet was current):
        # only flags and the hub's thread-safe callback.
        self._graceful = self._graceful and graceful
        self._stop_asked = True
        hub = self._hub
        if hub is not None:
            hub.loop.run_callback_threadsafe(self._stop_event.set)

    def _handle(self, accepted: Any, address: object) -> None:
        """In the greenlet StreamServer starts per accepted client: park it on a watcher."""
        if self._acceptor is not None:
            self._acceptor.handling()
        # A plain socket: the gevent one brings two watchers this server never uses.
        sock = socket.socket(fileno=accepted.detach())
        sock.setblocking(False)
        context = self.context
        if not context.admit(sock, address):
            return
        stats = context.stats
        if 0 < context.limits.max_connections <= stats.connections_active:
            if refuse_busy(sock, address, stats):  # the client may still be sending
                self._linger_refused(sock, address)
            return
        stats.connections_opened += 1
        stats.connections_active += 1
        watcher = self._hub.loop.io(sock.fileno(), READ)
        connection = GreenConnection(sock, context.conversation(describe_address(address)),
                                     watcher)
        self.connections.add(connection)
        self._held_changed()
        watcher.start(self._readable, connection)

    def _held_changed(self) -> None:
        if self._acceptor is not None:
            self._acceptor.held_changed()

    def _readable(self, connection: GreenConnection) -> None:
        """The hub's callback for a parked connection with input: a worker serves it."""
        idle = self._idle_workers
        worker = idle.pop() if idle else RawGreenlet(self._work, self._hub)
        worker.switch(connection)

    def _work(self, connection: GreenConnection) -> None:
        """A worker greenlet: serve what the hub hands over, then wait in the pool for more."""
        idle, back_to_hub, serve = self._idle_workers, self._hub.switch, self._serve
        me = gevent.getcurrent()
        while True:
            serve(connection, me)
            if len(idle) >= IDLE_WORKERS_KEPT:
                return
            idle.append(me)
            connection = back_to_hub()  # the next connection _readable switches in

    def _serve(self, connection: GreenConnection, me: Any) -> None:
        """Read, answer every question completed, send: one turn of the threaded server's loop."""
        sock, conversation = connection.sock, connection.conversation
        try:
            try:
                data = sock.recv(RECV_BYTES)
            except BlockingIOError:
                return  # woken without input after all
            if not data:
                if not connection.closed_by_server:
                    conversation.end_of_stream()
                self._close(connection)
                return
            connection.heard = True
            if self._io_delay:
                reply = self._answer_after_delay(connection, data, me)
            else:
                reply = conversation.receive(data)
            if reply:
                # send() first: gevent's sendall() asks the kernel for SO_SNDBUF
                # on every call (a syscall per answer); a short send is rare.
                try:
                    sent = sock.send(reply)
                except BlockingIOError:
                    sent = 0
                if sent < len(reply):
                    self._send_rest(connection, memoryview(reply)[sent:], me)
                connection.progress += 1
                if conversation.closing:
                    self._linger(connection)
                    return
                if conversation.mid_request:
                    connection.request_started = time.monotonic()
                elif connection.request_started:
                    connection.request_started = 0.0
            elif conversation.mid_request and not connection.request_started:
                connection.request_started = time.monotonic()
            if self._stopping and connection.at_boundary():
                self._close(connection)  # a graceful stop, at a request boundary
        except OSError as error:
            if not connection.closed_by_server:
                log.info("Client %s error: %s", conversation.peer, error)
            self._close(connection)
        except GreenletExit:  # the stop gave up waiting for it
            self._close(connection)
            raise
        except Exception:  # a bug: lose this client, not the worker (nor the hub it would reach)
            log.exception("Client %s: unexpected error; closing", conversation.peer)
            self._close(connection)

    def _answer_after_delay(self, connection: GreenConnection, data: bytes, me: Any) -> bytes:
        """An io cost: only this client waits (in gevent.sleep), reading nothing meanwhile."""
        conversation = connection.conversation
        questions = conversation.frame(data)
        if questions:
            connection.watcher.stop()
            connection.paying_cost = True
            connection.waiting_worker = me
            try:
                gevent.sleep(self._io_delay * len(questions))
            finally:
                connection.paying_cost = False
                connection.waiting_worker = None
            connection.watcher.start(self._readable, connection)
        return conversation.answer_all(questions)

    def _send_rest(self, connection: GreenConnection, rest: memoryview, me: Any) -> None:
        """The client is not reading: wait until it does, taking no more questions from it."""
        sock = connection.sock
        connection.watcher.stop()
        connection.waiting_worker = me
        try:
            while rest:
                wait_write(sock.fileno())
                try:
                    rest = rest[sock.send(rest):]
                except BlockingIOError:
                    continue
                connection.progress += 1
        finally:
            connection.waiting_worker = None
        connection.watcher.start(self._readable, connection)

    # Lingering after a closing reply: in the hub's callbacks, no greenlet waits.

    def _linger(self, connection: GreenConnection) -> None:
        """The closing reply is sent: FIN after it, then drop what the client still sends."""
        if not shut_write_side(connection.sock):
            self._close(connection)
            return
        connection.linger_budget = LINGER_BYTES
        connection.request_started = 0.0
        connection.watcher.stop()
        connection.watcher.start(self._drop_input, connection)
        connection.linger_timer = self._hub.loop.timer(LINGER_SECONDS)
        connection.linger_timer.start(self._close, connection)

    def _drop_input(self, connection: GreenConnection) -> None:
        connection.linger_budget = drop_input(connection.sock, connection.linger_budget)
        if not connection.linger_budget:  # its end of stream, or past the bound
            self._close(connection)

    def _linger_refused(self, sock: socket.socket, address: object) -> None:
        """A refused client lingers too, held like a connection (bounded: REFUSED_LINGER_FACTOR)."""
        context = self.context
        stats = context.stats
        if stats.connections_active >= REFUSED_LINGER_FACTOR * context.limits.max_connections:
            sock.close()
            return
        stats.connections_active += 1  # until it ends, like any open connection
        watcher = self._hub.loop.io(sock.fileno(), READ)
        connection = GreenConnection(sock, context.conversation(describe_address(address)),
                                     watcher)
        self.connections.add(connection)
        self._linger(connection)

    def _close(self, connection: GreenConnection) -> None:
        """Forget a connection (once): its watcher, its count, its socket."""
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        connection.watcher.close()
        if connection.linger_timer is not None:
            connection.linger_timer.close()
        stats = self.context.stats
        stats.connections_active -= 1
        self._held_changed()
        connection.sock.close()

    def _sweep_forever(self) -> None:
        limits = self.context.limits
        every = sweep_interval(limits)
        while True:
            gevent.sleep(every)
            now = time.monotonic()
            for connection in list(self.connections):
                if connection.closed_by_server:
                    continue
                reason = connection.expired(now, limits, connection.progress,
                                            connection.paying_cost)
                if reason:
                    log.info("Client %s %s; closing", connection.conversation.peer, reason)
                    connection.end()

    def _finish_conversations(self) -> None:
        """Let conversations reach a request boundary, then end whatever is left."""
        deadline = time.monotonic() + self.context.limits.graceful_timeout
        while self._graceful and self.connections and time.monotonic() < deadline:
            for connection in list(self.connections):
                if connection.at_boundary():
                    self._close(connection)
            if self.connections:
                gevent.sleep(STOP_POLL_SECONDS)
        # Parked connections close now; a waiting request is woken by the shutdown.
        for connection in list(self.connections):
            connection.end()
            if connection.waiting_worker is None:
                self._close(connection)
        deadline = time.monotonic() + ABORT_SETTLE_SECONDS
        while self.connections and time.monotonic() < deadline:
            gevent.sleep(STOP_POLL_SECONDS)
        for connection in list(self.connections):
            if connection.waiting_worker is not None:
                gevent.kill(connection.waiting_worker)  # it closes its connection
        gevent.sleep(0)  # after the kills are delivered
        for connection in list(self.connections):
            self._close(connection)
