"""How gevent's connections end other than by their client: lingering and the timeout sweep.

``gevent_streams`` answers in the hub's callbacks; what it hands over here
never runs per request. A closing reply (or a refusal) is followed by a FIN and
then the client's input is dropped until its end of stream or a bound
(``linger.py`` says why), in hub callbacks, so no greenlet waits for it. A
sweeping greenlet ends the connections past their idle or request timeout by
shutting their sockets down, which wakes whatever waits on them.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent

from zenserve.config import Limits
from zenserve.net import describe_address
from zenserve.servers import base, linger
from zenserve.servers.gevent_connection import GreenConnection
from zenserve.servers.sweep import sweep_interval

log = logging.getLogger("zenserve.server")

READ = 1  # libev's EV_READ


class Lingerer:
    """Lingers connections after their closing reply, in the hub's callbacks; no greenlet waits.

    ``connections`` is the server's set of open connections (a refused client
    lingering joins it, to be closed like any other); ``close`` forgets a
    connection once, whichever of its end of stream, the bound or a stop
    comes first.
    """

    __slots__ = ("_close", "_connections", "_context", "_loop", "refused_lingering")

    def __init__(self, loop: Any, context: base.ServeContext, connections: set[GreenConnection],
                 close: Callable[[GreenConnection], None]) -> None:
        self._loop = loop  # the hub's libev loop
        self._context = context
        self._connections = connections
        self._close = close
        self.refused_lingering = 0  # refused clients held, not counted as active

    def linger(self, connection: GreenConnection) -> None:
        """The closing reply is sent: FIN after it, then drop what the client still sends."""
        if not linger.shut_write_side(connection.sock):
            self._close(connection)
            return
        connection.linger_budget = linger.LINGER_BYTES
        connection.request_started = 0.0
        connection.watcher.stop()
        connection.watcher.start(self._drop_input, connection)
        connection.linger_timer = self._loop.timer(linger.LINGER_SECONDS)
        connection.linger_timer.start(self._close, connection)

    def linger_refused(self, sock: socket.socket, address: object) -> None:
        """A refused client lingers too, held like a connection but never counted as served.

        Bounded by ``linger.refused_held_at_most``; the server's close of a
        ``refused`` connection calls ``refusal_ended``.
        """
        context = self._context
        if self.refused_lingering >= linger.refused_held_at_most(context.limits.max_connections):
            sock.close()
            return
        self.refused_lingering += 1
        watcher = self._loop.io(sock.fileno(), READ)
        connection = GreenConnection(sock, context.conversation(describe_address(address)),
                                     watcher)
        connection.refused = True
        self._connections.add(connection)
        self.linger(connection)

    def refusal_ended(self) -> None:
        """The server closed a ``refused`` connection: one fewer lingering."""
        self.refused_lingering -= 1

    def _drop_input(self, connection: GreenConnection) -> None:
        connection.linger_budget = linger.drop_input(connection.sock, connection.linger_budget)
        if not connection.linger_budget:  # its end of stream, or past the bound
            self._close(connection)


def sweep_forever(connections: set[GreenConnection], limits: Limits) -> None:
    """In its own greenlet: end the connections past their idle or request timeout."""
    every = sweep_interval(limits)
    while True:
        gevent.sleep(every)
        now = time.monotonic()
        for connection in list(connections):
            if connection.closed_by_server:
                continue
            reason = connection.expired(now, limits, connection.progress,
                                        connection.paying_cost)
            if reason:
                log.info("Client %s %s; closing", connection.conversation.peer, reason)
                connection.end()
