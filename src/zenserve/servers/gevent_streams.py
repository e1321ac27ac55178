"""gevent's StreamServer: a greenlet per client, blocking-style code on one event loop (the hub).

What many users pick instead of asyncio: the conversation reads like the
threaded server's, but ``recv`` and ``sendall`` on the gevent sockets that
StreamServer hands out switch to the hub instead of blocking the process.

Nothing is monkey-patched: this module is imported only when gevent is the
chosen architecture, and even then the standard library stays as it is. So the
cost knob keeps its honest effect: ``block`` is ``time.sleep`` and ``cpu`` is
busy work, both stalling the hub and every client with it; ``io`` is
``gevent.sleep``, which only that client waits for. A client that does not read
its answers blocks its own greenlet in ``sendall``, which stops reading from it:
backpressure without a buffer.

Timeouts come from one sweeping greenlet, not a gevent.Timeout per read; a
timeout or a shutdown ends a conversation by shutting its socket down, which
wakes its greenlet wherever it waits.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from typing import Any

import gevent
from gevent.event import Event

from zenserve.conversation import Conversation
from zenserve.net import describe_address
from zenserve.servers import base
from zenserve.servers.eventloop_connection import refuse_busy
from zenserve.servers.gevent_accept import Acceptor
from zenserve.servers.sweep import STOP_POLL_SECONDS, ConnectionClock, input_waiting, sweep_interval

log = logging.getLogger("zenserve.server")

RECV_BYTES = 65536
# After shutting down what a stop left open, how long its greenlets may take to notice.
ABORT_SETTLE_SECONDS = 1.0


class GreenConversation(ConnectionClock):
    """One client's socket, conversation and greenlet, as the sweep and the shutdown see them."""

    __slots__ = ("closed_by_server", "conversation", "greenlet", "paying_cost", "replies_sent",
                 "sock", "waiting_to_read")

    def __init__(self, sock: Any, conversation: Conversation) -> None:
        super().__init__(time.monotonic())
        self.sock = sock  # a gevent socket
        self.conversation = conversation
        self.greenlet = gevent.getcurrent()
        self.waiting_to_read = False  # suspended in recv(), nothing taken from the socket
        self.paying_cost = False  # in gevent.sleep for an io cost
        self.replies_sent = 0  # changes while answers drain: the client is reading
        self.closed_by_server = False  # the EOF or error that follows is our own doing

    def end(self) -> None:
        """Shut the socket down: the greenlet wakes (EOF or an error) wherever it waits."""
        self.closed_by_server = True
        with contextlib.suppress(OSError):  # already gone
            self.sock.shutdown(socket.SHUT_RDWR)

    def close_if_at_boundary(self) -> None:
        """During a graceful stop: end it if idle between questions with nothing unread."""
        if (self.waiting_to_read and not self.closed_by_server
                and not self.conversation.mid_request and not input_waiting(self.sock.fileno())):
            self.end()


class Server(base.Server):
    """gevent's StreamServer on the shared listener, a greenlet per client."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self.connections: set[GreenConversation] = set()
        self._io_delay = context.service.io_delay
        self._stopping = False
        self._graceful = True
        self._stop_asked = False
        self._hub: Any = None
        self._stop_event: Any = None
        self._acceptor: Acceptor | None = None
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

    def shutdown(self, graceful: bool = True) -> None:
        # From a signal handler (running in whichever greenlet was current):
        # only flags and the hub's thread-safe callback.
        self._graceful = self._graceful and graceful
        self._stop_asked = True
        hub = self._hub
        if hub is not None:
            hub.loop.run_callback_threadsafe(self._stop_event.set)

    def _handle(self, sock: Any, address: object) -> None:
        if self._acceptor is not None:
            self._acceptor.handling()
        context = self.context
        if not context.admit(sock, address):
            return
        stats = context.stats
        if 0 < context.limits.max_connections <= stats.connections_active:
            sock.settimeout(0.0)  # gevent sockets wait on EAGAIN unless told not to
            refuse_busy(sock, address, stats)
            return
        stats.connections_opened += 1
        stats.connections_active += 1
        self._held_changed()
        connection = GreenConversation(sock, context.conversation(describe_address(address)))
        self.connections.add(connection)
        try:
            self._converse(connection)
        except OSError as error:
            if not connection.closed_by_server:
                log.info("Client %s error: %s", connection.conversation.peer, error)
        finally:
            self.connections.discard(connection)
            stats.connections_active -= 1
            self._held_changed()
            sock.close()

    def _held_changed(self) -> None:
        if self._acceptor is not None:
            self._acceptor.held_changed()

    def _converse(self, connection: GreenConversation) -> None:
        """Read, answer every question completed, send; like the threaded server's loop."""
        sock, conversation = connection.sock, connection.conversation
        recv, send, io_delay = sock.recv, sock.send, self._io_delay
        while True:
            if (self._stopping and not conversation.mid_request
                    and not input_waiting(sock.fileno())):
                return  # a graceful stop, at a request boundary
            connection.waiting_to_read = True
            data = recv(RECV_BYTES)
            connection.waiting_to_read = False
            if not data:
                if not connection.closed_by_server:
                    conversation.end_of_stream()
                return
            connection.heard = True
            if io_delay:
                questions = conversation.frame(data)
                if questions:
                    connection.paying_cost = True
                    gevent.sleep(io_delay * len(questions))
                    connection.paying_cost = False
                reply = conversation.answer_all(questions)
            else:
                reply = conversation.receive(data)
            if reply:
                # send() first: gevent's sendall() asks the kernel for SO_SNDBUF
                # on every call (a syscall per answer); a short send is rare.
                sent = send(reply)
                if sent < len(reply):
                    sock.sendall(memoryview(reply)[sent:])
                connection.replies_sent += 1
                if conversation.closing:
                    return
                connection.request_started = time.monotonic() if conversation.mid_request else 0.0
            elif conversation.mid_request and not connection.request_started:
                connection.request_started = time.monotonic()

    def _sweep_forever(self) -> None:
        limits = self.context.limits
        every = sweep_interval(limits)
        while True:
            gevent.sleep(every)
            now = time.monotonic()
            for connection in list(self.connections):
                if connection.closed_by_server:
                    continue
                reason = connection.expired(now, limits, connection.replies_sent,
                                            connection.paying_cost)
                if reason:
                    log.info("Client %s %s; closing", connection.conversation.peer, reason)
                    connection.end()

    def _finish_conversations(self) -> None:
        """Let conversations reach a request boundary, then end whatever is left."""
        deadline = time.monotonic() + self.context.limits.graceful_timeout
        while self._graceful and self.connections and time.monotonic() < deadline:
            for connection in list(self.connections):
                connection.close_if_at_boundary()
            if self.connections:
                gevent.sleep(STOP_POLL_SECONDS)
        left = list(self.connections)
        for connection in left:
            connection.end()
        greenlets = [connection.greenlet for connection in left]
        gevent.joinall(greenlets, timeout=ABORT_SETTLE_SECONDS)
        gevent.killall(greenlets, block=False)
