"""Listing 7-5 (srv_legacy1.py): the standard library's ``socketserver``, a thread per connection.

The book's legacy server is ``ThreadingMixIn`` plus ``TCPServer`` with a
request handler that runs the conversation; so is this one, with the
conversation from ``blocking.converse`` (timeouts, graceful stop) and the
thread count bounded: past ``--max-connections`` a client is told
``Error: server busy.`` in ``verify_request``. With ``--max-connections 0``
the bound is ``DEFAULT_MAX_CONNECTIONS`` instead of none, because a thread per
connection without a bound lets a flood of idle clients exhaust memory and
the process table long before the CPU.

``TCPServer.serve_forever`` polls twice a second and can only be stopped from
another thread, so the stdlib's ``handle_request()`` is driven from a loop
that waits on the listener and the stop signal together.
"""

from __future__ import annotations

import logging
import socket
import socketserver
from typing import Any

from zenserve.servers import base
from zenserve.servers.accepting import (
    ConnectionSlots,
    SignalWakeup,
    back_off_if_out_of_resources,
    wait_for_connection,
)
from zenserve.servers.blocking import ConversationStop, converse
from zenserve.signals import threads_leave_signals_to_main

log = logging.getLogger("zenserve.server")

# Threads are cheap but not free (a stack each, an entry in the process
# table); a thousand idle clients is well past what one Python process
# serves usefully, and far below what exhausts this machine.
DEFAULT_MAX_CONNECTIONS = 1000


class ZenRequestHandler(socketserver.BaseRequestHandler):
    """One connection, in its own thread: the shared blocking conversation."""

    server: ZenTCPServer

    def handle(self) -> None:
        zen = self.server
        try:
            converse(self.request, self.client_address, zen.context, zen.stop)
        finally:
            zen.slots.give_back()


class ZenTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """The stdlib's threading TCP server around an already listening socket."""

    daemon_threads = True  # SIGINT must not wait for conversations
    block_on_close = False  # the graceful stop waits, with a deadline, instead

    def __init__(self, listener: socket.socket, context: base.ServeContext,
                 stop: ConversationStop, slots: ConnectionSlots) -> None:
        super().__init__(listener.getsockname(), ZenRequestHandler, bind_and_activate=False)
        self.socket.close()  # TCPServer made a socket of its own; serve ours
        self.socket = listener
        self.context, self.stop, self.slots = context, stop, slots

    def get_request(self) -> tuple[socket.socket, Any]:
        try:
            return self.socket.accept()
        except OSError as error:
            # BaseServer drops the error and would poll and fail again at once.
            back_off_if_out_of_resources(error, self.stop)
            raise

    def verify_request(self, request: socket.socket | tuple[bytes, socket.socket],
                       client_address: object) -> bool:
        assert isinstance(request, socket.socket)
        if not self.slots.admit(request, client_address, self.context):
            return False
        # Registered before its thread starts, so a graceful stop waits for it.
        self.stop.enter(request)
        return True

    def process_request(self, request: socket.socket | tuple[bytes, socket.socket],
                        client_address: object) -> None:
        assert isinstance(request, socket.socket)
        try:
            with threads_leave_signals_to_main():  # the connection's thread is born blocking them
                super().process_request(request, client_address)
        except BaseException:  # no thread started: nobody else will give these back
            self.stop.leave(request)
            self.slots.give_back()
            raise

    def handle_error(self, request: object, client_address: object) -> None:
        log.exception("Unexpected error serving %s", client_address)


class Server(base.Server):
    """A ``ThreadingMixIn`` TCP server, stopped by a signal like every architecture."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._stop = ConversationStop(context.limits.graceful_timeout)
        self._slots = ConnectionSlots(context.limits.max_connections or DEFAULT_MAX_CONNECTIONS)

    def serve_forever(self) -> None:
        self._stop.start()
        self.listener.setblocking(False)  # handle_request() then never blocks
        server = ZenTCPServer(self.listener, self.context, self._stop, self._slots)
        log.info("Serving a thread per connection, at most %d", self._slots.limit)
        try:
            with SignalWakeup() as wakeup:
                while wait_for_connection(self.listener, self._stop, wakeup):
                    server.handle_request()
            self._stop.wait_until_closed()
        finally:
            self._stop.close()
            self._slots.close()

    def shutdown(self, graceful: bool = True) -> None:
        self._stop.wake(graceful)
