"""Listing 7-3: one client at a time; everyone else waits in the listen backlog."""

from __future__ import annotations

import socket

from zenserve.servers import base
from zenserve.servers.accepting import SignalWakeup, accept_or_wait
from zenserve.servers.blocking import ConversationStop, converse


class Server(base.Server):
    """Accept a connection, converse until it ends, then accept the next."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._stop = ConversationStop(context.limits.graceful_timeout)

    def serve_forever(self) -> None:
        self._stop.start()
        self.listener.setblocking(False)
        try:
            with SignalWakeup() as wakeup:
                while (accepted := accept_or_wait(self.listener, self._stop, wakeup)) is not None:
                    sock, address = accepted
                    if self.context.admit(sock, address):
                        converse(sock, address, self.context, self._stop)
        finally:
            self._stop.close()

    def shutdown(self, graceful: bool = True) -> None:
        self._stop.wake(graceful)
