"""Listing 7-6: a raw ``select.poll()`` loop with explicit per-connection state.

Everything but the readiness API lives in ``eventloop`` (shared with `epoll`);
this file only registers sockets with a poll object and turns its
``(fd, mask)`` pairs into calls to the loop's handlers.
"""

from __future__ import annotations

import socket
from select import POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, poll

from zenserve.servers import base
from zenserve.servers.eventloop import EventLoopServer
from zenserve.servers.eventloop_connection import Connection
from zenserve.servers.eventloop_io import HasFileno

# The loop's interest (READ=1 | WRITE=2) as a poll mask.
_POLL_MASKS = (0, POLLIN, POLLOUT, POLLIN | POLLOUT)
# Reported whatever was asked for: treated as every event the connection
# waits for, so a hang-up is read until EOF rather than torn down at once.
_TROUBLE = POLLHUP | POLLERR | POLLNVAL


class Server(EventLoopServer[tuple[int, int]]):
    """The event loop on ``select.poll()``, dispatching by file descriptor."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._poller = poll()

    def _register(self, fileobj: HasFileno, interest: int, connection: Connection | None) -> None:
        self._poller.register(fileobj, _POLL_MASKS[interest])

    def _modify(self, fileobj: HasFileno, interest: int, connection: Connection) -> None:
        self._poller.modify(fileobj, _POLL_MASKS[interest])

    def _unregister(self, fileobj: HasFileno) -> None:
        self._poller.unregister(fileobj)

    def _wait(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._poller.poll(None if timeout is None else timeout * 1000.0)

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        connections = self._connections
        on_readable, on_writable = self._on_readable, self._on_writable
        for fd, mask in events:
            connection = connections.get(fd)
            if connection is None:
                self._on_own_socket(fd)  # the listener or the waker
                continue
            try:
                if mask == POLLIN:  # the common case, first
                    on_readable(connection)
                    continue
                if mask & _TROUBLE:
                    mask |= _POLL_MASKS[connection.interest]
                if mask & POLLIN:
                    on_readable(connection)
                if mask & POLLOUT and connection.outgoing:
                    on_writable(connection)
            except Exception as error:  # a bug costs one connection, not the server
                self._on_failure(connection, error)
