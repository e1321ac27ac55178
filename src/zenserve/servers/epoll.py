"""The `poll` architecture's loop on ``selectors`` (epoll on Linux, kqueue on BSD).

Everything but the readiness API lives in ``eventloop`` (shared with `poll`);
this file only registers sockets with a selector, each carrying its
connection as the key's data, and hands ready keys to the loop's handlers.
"""

from __future__ import annotations

import selectors
import socket

from zenserve.servers import base
from zenserve.servers.eventloop import EventLoopServer
from zenserve.servers.eventloop_connection import Connection
from zenserve.servers.eventloop_io import HasFileno

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

Ready = tuple[selectors.SelectorKey, int]


class Server(EventLoopServer[Ready]):
    """The event loop on ``selectors.DefaultSelector``, dispatching by key data."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._selector = selectors.DefaultSelector()

    def _register(self, fileobj: HasFileno, interest: int, connection: Connection | None) -> None:
        self._selector.register(fileobj, interest, connection)

    def _modify(self, fileobj: HasFileno, interest: int, connection: Connection) -> None:
        self._selector.modify(fileobj, interest, connection)

    def _unregister(self, fileobj: HasFileno) -> None:
        self._selector.unregister(fileobj)

    def _wait(self, timeout: float | None) -> list[Ready]:
        return self._selector.select(timeout)

    def _dispatch(self, events: list[Ready]) -> None:
        on_readable, on_writable = self._on_readable, self._on_writable
        # The selector reports a hang-up or error as both events (within the
        # interest), so a hang-up is read until EOF rather than torn down at once.
        for key, mask in events:
            connection = key.data
            if connection is None:
                self._on_own_socket(key.fd)  # the listener or the waker
                continue
            try:
                if mask & _READ:
                    on_readable(connection)
                if mask & _WRITE and connection.outgoing:
                    on_writable(connection)
            except Exception as error:  # a bug costs one connection, not the server
                self._on_failure(connection, error)

    def _close_poller(self) -> None:
        self._selector.close()
