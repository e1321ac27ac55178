"""The callback server (listing 7-7's protocol) on uvloop, libuv's event loop for asyncio.

The protocol, the accepting, the sweep and the shutdown are asyncio-callbacks'
own, only the loop differs (it comes from ``zenserve.loops``, the one module
that imports uvloop). Importing this module without uvloop installed fails,
and the registry turns that into a one-line error.

Accepting stays asyncio-callbacks' own (``aio``) rather than uvloop's
``create_server``: out of descriptors, libuv accepts every queued connection
and closes it at once (its reserve-descriptor trick), so those clients are
dropped; backing off leaves them queued until descriptors are free again.
"""

from __future__ import annotations

import asyncio
import socket

from zenserve.loops import new_uvloop, require_uvloop
from zenserve.servers import asyncio_callbacks, base
from zenserve.servers.aio_sweep import LoopTimedSweeps, Sweeps

# Fail at import, not at serve time: the registry reports the missing package in one line.
require_uvloop()


class UvloopZenProtocol(asyncio_callbacks.ZenProtocol):
    """asyncio-callbacks' protocol less its read-size step, which uvloop's transports lack.

    ``data_received`` is ZenProtocol's without the length check that makes
    asyncio's transports read bigger (``read_in_bigger_chunks``): a no-op here,
    yet about 250 instructions per request (callgrind), 4% of all this loop does.
    """

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        self.heard = True
        conversation = self._conversation
        reply = conversation.receive(data)
        if reply:
            self._transport.write(reply)
            if conversation.closing:
                self._linger()
                return
        if conversation.mid_request:
            # A question's first bytes, or a new one begun after those answered.
            if reply or not self.request_started:
                self.request_started = self._clock()
        else:
            self.request_started = 0.0


class Server(asyncio_callbacks.Server):
    """asyncio-callbacks' server on a uvloop event loop."""

    sweeps_class: type[Sweeps] = LoopTimedSweeps  # libuv's timers cost nothing per turn

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        if self._protocol_class is asyncio_callbacks.ZenProtocol:  # no io cost
            self._protocol_class = UvloopZenProtocol

    @staticmethod
    def new_event_loop() -> asyncio.AbstractEventLoop:
        return new_uvloop()

    async def prepare(self) -> None:
        """Build one stream now, so that libuv opens its reserve descriptor before any client.

        libuv keeps one descriptor (``/dev/null``) in reserve for running out
        of them, opened when the loop builds its first stream. Opening it at
        start keeps the server's descriptor count steady from the first client
        on (for ``ulimit`` planning, and so that it never looks like a leak).
        """
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        with theirs:
            transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
            transport.close()
