"""Listing 7-6: a raw ``select.poll()`` loop with explicit per-connection state.

Everything but the readiness API lives in ``eventloop`` (shared with `epoll`);
this file only registers sockets with a poll object, waits on it, and turns
its ``(fd, mask)`` pairs into calls to the loop's handlers.

At one connection every request is one turn of the loop, so the turn is one
function: waiting, dispatching and the deadline check inline, one clock read
per turn (callgrind: each call or clock read saved is a few hundred
instructions per request).
"""

from __future__ import annotations

import math
import select
import socket
import time
from select import POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, poll
from typing import TYPE_CHECKING, TypeAlias

from zenserve.servers import base
from zenserve.servers.eventloop import EventLoopServer
from zenserve.servers.eventloop_connection import Connection
from zenserve.servers.eventloop_io import HasFileno

if TYPE_CHECKING:  # select.poll is a factory function at run time, not a type
    Poller: TypeAlias = select.poll | select.epoll


class Server(EventLoopServer):
    """The event loop on ``select.poll()``, dispatching by file descriptor.

    The class attributes are the readiness API's constants, so `epoll` is this
    loop with epoll's constants and timeout unit.
    """

    READABLE, WRITABLE = POLLIN, POLLOUT
    # The loop's interest (READ=1 | WRITE=2) as a mask.
    MASKS = (0, POLLIN, POLLOUT, POLLIN | POLLOUT)
    # Reported whatever was asked for: treated as every event the connection
    # waits for, so a hang-up is read until EOF rather than torn down at once.
    TROUBLE = POLLHUP | POLLERR | POLLNVAL
    # The poller's timeout unit per second: poll() takes milliseconds.
    TIMEOUT_UNITS_PER_SECOND = 1000.0

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._poller = self._new_poller()

    def _new_poller(self) -> Poller:
        return poll()

    def _register(self, fileobj: HasFileno, interest: int, connection: Connection | None) -> None:
        self._poller.register(fileobj, self.MASKS[interest])

    def _modify(self, fileobj: HasFileno, interest: int, connection: Connection) -> None:
        self._poller.modify(fileobj, self.MASKS[interest])

    def _unregister(self, fileobj: HasFileno) -> None:
        self._poller.unregister(fileobj)

    def _close_poller(self) -> None:
        if isinstance(self._poller, select.epoll):  # a poll object holds no descriptor
            self._poller.close()

    def _loop(self) -> None:
        wait, monotonic, units = self._poller.poll, time.monotonic, self.TIMEOUT_UNITS_PER_SECOND
        heap, connections = self._deadlines.heap, self._connections
        on_readable, on_writable = self._on_readable, self._on_writable
        readable, writable, trouble, masks = self.READABLE, self.WRITABLE, self.TROUBLE, self.MASKS
        run_timers, on_own_socket = self._run_timers, self._on_own_socket
        on_failure = self._on_failure
        io_delay, infinity = self._io_delay, math.inf
        while True:
            nearest = heap[0][0] if heap else infinity
            if io_delay or self._listener_due or self._stopping:
                nearest = self._nearest_chore(nearest)
                waiting_from = monotonic()  # io answers are due to the millisecond
            else:
                # Idle and request deadlines (seconds) may wake late by this turn's
                # handling: the clock read after the last wait saves one per turn.
                waiting_from = self.now
            if nearest == infinity:
                events = wait(-1)  # no limit
            else:
                timeout = (nearest - waiting_from) * units
                events = wait(timeout if timeout > 0.0 else 0)
            self.now = now = monotonic()
            for fd, mask in events:
                try:
                    connection = connections[fd]  # cheaper than .get(): no method call
                except KeyError:
                    connection = None
                if connection is None:  # handled outside the except: no KeyError context
                    on_own_socket(fd)  # the listener, the waker or the accept share
                    continue
                try:
                    if mask == readable:  # the common case, first
                        on_readable(connection)
                        continue
                    if mask & trouble:
                        mask |= masks[connection.interest]
                    if mask & readable:
                        on_readable(connection)
                    if mask & writable and connection.outgoing:
                        on_writable(connection)
                except Exception as error:  # a bug costs one connection, not the server
                    on_failure(connection, error)
            # A deadline moved earlier during this turn is seen on the next one.
            if (now >= nearest or self._stopping) and run_timers(now):
                return
