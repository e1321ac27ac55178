"""Listing 7-6: a raw ``select.poll()`` loop with explicit per-connection state.

Everything but the readiness API lives in ``eventloop`` (shared with `epoll`);
this file only registers sockets with a poll object and turns its
``(fd, mask)`` pairs into calls to the loop's handlers.
"""

from __future__ import annotations

import select
import socket
from select import POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT, poll
from typing import TYPE_CHECKING, TypeAlias

from zenserve.servers import base
from zenserve.servers.eventloop import EventLoopServer
from zenserve.servers.eventloop_connection import Connection
from zenserve.servers.eventloop_io import HasFileno

if TYPE_CHECKING:  # select.poll is a factory function at run time, not a type
    Poller: TypeAlias = select.poll | select.epoll


class Server(EventLoopServer[tuple[int, int]]):
    """The event loop on ``select.poll()``, dispatching by file descriptor.

    The class attributes are the readiness API's constants, so `epoll` is this
    loop with epoll's constants and its own ``_wait``.
    """

    READABLE, WRITABLE = POLLIN, POLLOUT
    # The loop's interest (READ=1 | WRITE=2) as a mask.
    MASKS = (0, POLLIN, POLLOUT, POLLIN | POLLOUT)
    # Reported whatever was asked for: treated as every event the connection
    # waits for, so a hang-up is read until EOF rather than torn down at once.
    TROUBLE = POLLHUP | POLLERR | POLLNVAL

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

    def _wait(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._poller.poll(None if timeout is None else timeout * 1000.0)

    def _close_poller(self) -> None:
        if isinstance(self._poller, select.epoll):  # a poll object holds no descriptor
            self._poller.close()

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        connections = self._connections
        on_readable, on_writable = self._on_readable, self._on_writable
        readable, writable, trouble, masks = self.READABLE, self.WRITABLE, self.TROUBLE, self.MASKS
        for fd, mask in events:
            connection = connections.get(fd)
            if connection is None:
                self._on_own_socket(fd)  # the listener or the waker
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
                self._on_failure(connection, error)
