"""The book's inetd section: serve a socket some other program opened (in_zen1, in_zen2).

inetd and systemd bind the port themselves and start the server when a client
comes. In "wait" mode (systemd ``Accept=no``) the server is handed the
listening socket and accepts on it itself, like ``in_zen2.py``; in "nowait"
mode (``Accept=yes``) inetd accepts and hands over one connected socket, and
the server converses once and exits, like ``in_zen1.py``.

``zenserve serve --inherit`` takes that socket from fd 0 or from systemd's
``LISTEN_FDS`` (``net.inherited_socket``). An inherited listener is served by
whichever ``--arch`` is chosen; a connected socket always by this module.
``--arch inetd`` itself, on a listener (inherited or bound, as in the
conformance suite), serves in wait mode one client at a time, as in_zen2 does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

from zenserve.net import describe_address, is_listening
from zenserve.servers import single
from zenserve.servers.blocking import converse

log = logging.getLogger("zenserve.server")


class Server(single.Server):
    """Wait mode on a listener (one client at a time); nowait mode on a connection."""

    def serve_forever(self) -> None:
        if is_listening(self.listener):
            super().serve_forever()
            return
        connection = self.listener
        try:
            address = connection.getpeername()
        except OSError as error:  # the client left before we started
            log.info("Inherited connection already closed: %s", error.strerror)
            connection.close()
            return
        keep_stdio_off(connection)
        log.info("Serving the one connection inherited from %s", describe_address(address))
        if self.context.admit(connection, address):
            converse(connection, address, self.context, self._stop)


def keep_stdio_off(connection: socket.socket) -> None:
    """Point stdout/stderr at /dev/null if they are the client's socket.

    inetd (and systemd with ``StandardInput=socket``) hands the connection
    over as fds 0, 1 and 2 alike: a log line there would reach the client in
    the middle of the protocol.
    """
    conversation = os.fstat(connection.fileno())
    for fd in (1, 2):
        with contextlib.suppress(OSError):  # closed: nothing to protect
            if os.path.samestat(os.fstat(fd), conversation):
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, fd)
                os.close(null)
