"""gevent: the hub answers ready requests; a greenlet takes any request that must wait.

What many users pick instead of asyncio: code that waits reads like the
threaded server's (sleep for an ``io`` cost, send until a slow reader has taken
it all), run in a greenlet on gevent's hub (libev).

But a greenlet suspended in ``recv`` costs about 8 KiB (its saved slice of the
C stack and its own Python data-stack chunk), and a switch into a greenlet and
back costs more than answering a question. So between requests a connection is
only its socket, its conversation and a read watcher of the hub; when input
arrives, the watcher's callback reads it, answers and sends, in the hub (a
request with nothing to wait for never leaves it). A request that must wait is
handed to a worker greenlet from a small pool of idle ones: an ``io`` cost
(``gevent.sleep``), a user's ``--service`` callable (which may wait on gevent
sockets or sleeps), or a client that does not read its answers (the worker
waits for the socket to drain and reads nothing more from that client
meanwhile: backpressure without a buffer). Then the worker goes back to the
pool and the connection back to its watcher.

Nothing is monkey-patched: this module is imported only when gevent is the
chosen architecture, and even then the standard library stays as it is. So the
cost knob keeps its honest effect: ``block`` is ``time.sleep`` and ``cpu`` is
busy work, both stalling the hub and every client with it; ``io`` is
``gevent.sleep``, which only that client waits for.

Timeouts come from one sweeping greenlet, not a gevent.Timeout per read; a
timeout or a shutdown ends a connection by shutting its socket down, which
wakes whatever waits on it. The sweep and the lingering after a closing reply
live in ``gevent_ending``.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import gevent
from gevent.event import Event
from gevent.hub import GreenletExit
from gevent.socket import wait_write

from zenserve.net import describe_address
from zenserve.servers import base
from zenserve.servers.eventloop_connection import refuse_busy
from zenserve.servers.gevent_accept import Acceptor
from zenserve.servers.gevent_connection import GreenConnection, WorkerPool
from zenserve.servers.gevent_ending import READ, Lingerer, sweep_forever
from zenserve.servers.sweep import STOP_POLL_SECONDS

log = logging.getLogger("zenserve.server")

RECV_BYTES = 65536  # once a read of the connection's first size came back full
# After shutting down what a stop left open, how long its waiting requests may take to notice.
ABORT_SETTLE_SECONDS = 1.0


class Server(base.Server):
    """gevent's hub answering in watcher callbacks, greenlets for requests that must wait."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self.connections: set[GreenConnection] = set()
        self._io_delay = context.service.io_delay
        # A user's callable may switch (gevent.sleep, gevent sockets): only a greenlet may.
        self._user_code = context.service.calls_user_code
        # Neither: every request is answered in the hub (one bool read per request).
        self._answers_at_once = not (self._io_delay or self._user_code)
        self._stopping = False
        self._graceful = True
        self._stop_asked = False
        self._hub: Any = None
        self._stop_event: Any = None
        self._acceptor: Acceptor | None = None
        self._lingerer: Lingerer  # made with the hub, in serve_forever
        self._workers = WorkerPool(self._job_failed)
        if context.accept_share is not None:
            context.accept_share.watch(0)  # as aio.LoopServer does: peers count on it now

    def serve_forever(self) -> None:
        self._stop_event = Event()
        self._hub = gevent.get_hub()  # from here on shutdown() wakes the hub; before, the flag
        if self._stop_asked:
            self._stop_event.set()
        # Non-blocking, or a worker that loses the accept race to another would block the hub.
        self.listener.setblocking(False)
        self._lingerer = Lingerer(self._hub.loop, self.context, self.connections, self._close)
        acceptor = self._acceptor = Acceptor(self.listener, self._handle,
                                              self.context.accept_share, self.context.stats)
        acceptor.set_spawn(None)  # _handle never waits: it runs in the hub, no greenlet each
        acceptor.begin()
        sweeper = gevent.spawn(sweep_forever, self.connections, self.context.limits)
        try:
            self._stop_event.wait()
            self._stopping = True
            acceptor.end()
            self._finish_conversations()
        finally:
            acceptor.end()
            sweeper.kill(block=False)
            self._workers.clear()

    def shutdown(self, graceful: bool = True) -> None:
        # From a signal handler (running in whichever greenlet was current):
        # only flags and the hub's thread-safe callback.
        self._graceful = self._graceful and graceful
        self._stop_asked = True
        hub = self._hub
        if hub is not None:
            hub.loop.run_callback_threadsafe(self._stop_event.set)

    def _handle(self, sock: socket.socket, address: object) -> None:
        """In the hub, for each accepted client: park it on a read watcher."""
        if self._acceptor is not None:
            self._acceptor.handling()
        sock.setblocking(False)
        context = self.context
        if not context.admit(sock, address):
            return
        stats = context.stats
        if 0 < context.limits.max_connections <= stats.connections_active:
            if refuse_busy(sock, address, stats):  # the client may still be sending
                self._lingerer.linger_refused(sock, address)
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
        """The hub's callback for a connection with input: answered here unless it must wait."""
        sock, conversation = connection.sock, connection.conversation
        read_size = connection.read_size
        try:
            try:
                data = sock.recv(read_size)
            except BlockingIOError:
                return  # woken without input after all
            if not data:
                if not connection.closed_by_server:
                    conversation.end_of_stream()
                self._close(connection)
                return
            if len(data) == read_size:  # the client sends in bulk: read in big chunks
                connection.read_size = RECV_BYTES
            connection.heard = True  # the sweep's sign of life, for this read and its reply
            if self._answers_at_once:
                if (conversation.mid_request or conversation.closing
                        or (reply := connection.known(data)) is None):
                    reply = conversation.receive(data)
                else:  # one whole known question: counted as receive would, without its call
                    stats = connection.stats
                    stats.answered += 1
                    stats.bytes_in += len(data)
                    stats.bytes_out += len(reply)
            elif self._io_delay:
                questions = conversation.frame(data)
                if questions:  # a worker awaits the cost: only this client waits
                    self._workers.hand_over(self._answer_after_delay, connection, questions)
                    return
                reply = conversation.answer_all(questions)  # nothing, or an error
            else:  # a user's callable
                self._workers.hand_over(self._answer_in_worker, connection, data)
                return
            if reply:
                # send(), not gevent's sendall(): that asks the kernel for SO_SNDBUF
                # on every call (a syscall per answer); a short send is rare.
                try:
                    sent = sock.send(reply)
                except BlockingIOError:
                    sent = 0
                if sent < len(reply):  # the client is not reading: a worker waits for it
                    self._workers.hand_over(self._send_rest, connection, memoryview(reply)[sent:])
                    return
                if conversation.closing:
                    self._lingerer.linger(connection)
                    return
            if conversation.mid_request or connection.request_started or self._stopping:
                self._after_reply(connection, bool(reply))
        except OSError as error:
            self._lost(connection, error)
        except Exception:  # a bug: lose this client, not the hub's loop
            log.exception("Client %s: unexpected error; closing", conversation.peer)
            self._close(connection)

    def _after_reply(self, connection: GreenConnection, replied: bool) -> None:
        """The clock the sweep reads; during a graceful stop, close at a request boundary."""
        if connection.conversation.mid_request:
            if replied or not connection.request_started:
                connection.request_started = time.monotonic()
        else:
            connection.request_started = 0.0
        if self._stopping and connection.at_boundary():
            self._close(connection)  # a graceful stop, at a request boundary

    def _lost(self, connection: GreenConnection, error: OSError) -> None:
        if not connection.closed_by_server:
            log.info("Client %s error: %s", connection.conversation.peer, error)
        self._close(connection)

    # A request that must wait: a worker greenlet takes it (blocking-style code).

    def _job_failed(self, connection: GreenConnection, error: BaseException) -> None:
        """A worker's job for ``connection`` raised ``error``: the connection ends."""
        if isinstance(error, OSError):
            self._lost(connection, error)
            return
        if not isinstance(error, GreenletExit):  # GreenletExit: the stop gave up waiting
            log.error("Client %s: unexpected error; closing", connection.conversation.peer,
                      exc_info=error)
        self._close(connection)

    def _answer_after_delay(self, connection: GreenConnection, questions: list[bytes],
                            me: Any) -> None:
        """In a worker: await the io cost (reading nothing more from this client), answer."""
        connection.watcher.stop()
        connection.paying_cost = True
        connection.waiting_worker = me
        try:
            gevent.sleep(self._io_delay * len(questions))
        finally:
            connection.paying_cost = False
            connection.waiting_worker = None
        reply = connection.conversation.answer_all(questions)
        self._send_rest(connection, memoryview(reply), me)

    def _answer_in_worker(self, connection: GreenConnection, data: bytes, me: Any) -> None:
        """In a worker: answer with the user's code, which may wait cooperatively; send."""
        connection.watcher.stop()
        connection.waiting_worker = me
        try:
            reply = connection.conversation.receive(data)
        finally:
            connection.waiting_worker = None
        if reply:
            self._send_rest(connection, memoryview(reply), me)
        else:  # part of a question: its clock keeps running
            connection.watcher.start(self._readable, connection)
            self._after_reply(connection, False)

    def _send_rest(self, connection: GreenConnection, rest: memoryview, me: Any) -> None:
        """In a worker: send it all, waiting while the client does not read; then read again.

        No more questions are taken from a client that does not read its
        answers: backpressure without a buffer.
        """
        sock = connection.sock
        connection.watcher.stop()
        while rest:
            try:
                rest = rest[sock.send(rest):]
            except BlockingIOError:
                connection.waiting_worker = me
                try:
                    wait_write(sock.fileno())
                finally:
                    connection.waiting_worker = None
                continue
            connection.progress += 1
        if connection.conversation.closing:
            self._lingerer.linger(connection)
            return
        connection.watcher.start(self._readable, connection)
        self._after_reply(connection, True)

    def _close(self, connection: GreenConnection) -> None:
        """Forget a connection (once): its watcher, its count, its socket."""
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        connection.watcher.close()
        if connection.linger_timer is not None:
            connection.linger_timer.close()
        connection.sock.close()
        if connection.refused:
            self._lingerer.refusal_ended()
            return
        self.context.stats.connections_active -= 1
        self._held_changed()

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
