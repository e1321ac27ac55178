"""The connections an asyncio loop (``aio``) serves, as its sweep and shutdown see them.

``LoopConnection`` is what asyncio-callbacks' protocols and asyncio-coroutines'
streams each implement; ``RefusedClient`` is a client turned away past
``--max-connections``; ``DropInput`` is asyncio-callbacks' protocol for a
transport after its closing reply. ``read_in_small_chunks`` and ``read_in_bigger_chunks``
keep a transport's reads off glibc's mmap path, and small ones off its malloc
(see there).
"""

from __future__ import annotations

import abc
import asyncio
import socket
from typing import TYPE_CHECKING

from zenserve.servers.first_read import FIRST_READ_BYTES
from zenserve.servers.linger import LINGER_BYTES, LINGER_SECONDS, drop_input
from zenserve.servers.sweep import ConnectionClock

if TYPE_CHECKING:
    from zenserve.servers.aio import LoopServer

# asyncio's socket transports recv() up to 256 KiB into a fresh bytes object,
# then shrink it to what arrived. glibc serves an allocation of 128 KiB or more
# (its default M_MMAP_THRESHOLD) with mmap, so every read was an mmap, a page
# fault, an mremap and an munmap (measured: 10-15 µs of CPU per request) until a
# read found nothing (a client's end of stream) and freed a whole buffer, which
# raises glibc's threshold: a process's first clients paid it on every request.
# Reads of 64 KiB stay on the heap from the first request on.
TRANSPORT_READ_BYTES = 64 * 1024


def read_in_small_chunks(transport: asyncio.BaseTransport) -> None:
    """Make asyncio's own socket transport recv() ``FIRST_READ_BYTES`` at a time.

    Call ``read_in_bigger_chunks`` once a read comes back with that many bytes.
    uvloop's transports read into one buffer of their own and have no such
    knob; they are left as they are.
    """
    if hasattr(transport, "max_size"):  # selector_events._SelectorTransport's class attribute
        transport.max_size = FIRST_READ_BYTES


def read_in_bigger_chunks(transport: asyncio.BaseTransport) -> None:
    """From now on recv() up to ``TRANSPORT_READ_BYTES`` (the client sends in bulk)."""
    if hasattr(transport, "max_size"):
        transport.max_size = TRANSPORT_READ_BYTES


class LoopConnection(ConnectionClock, abc.ABC):
    """One conversation as the loop's sweep and shutdown see it."""

    __slots__ = ()

    @abc.abstractmethod
    def output_size(self) -> int:
        """Bytes of answers written but not yet taken by the client's socket."""

    @abc.abstractmethod
    def working(self) -> bool:
        """True while the server owes answers it has not written yet (io cost)."""

    @abc.abstractmethod
    def time_out(self, reason: str) -> None:
        """Close because of a timeout (logged once, book-style)."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Close at once, dropping unsent answers (SIGINT, or the graceful timeout passed)."""

    def hold_input(self) -> None:  # most conversations have no input buffer of their own
        """Stop taking input for one turn of the loop, before ``close_if_at_boundary``."""

    @abc.abstractmethod
    def close_if_at_boundary(self) -> None:
        """During a graceful stop: close when nothing is half-asked, owed or unread."""


class RefusedClient(LoopConnection):
    """A client told the server is busy, dropping what it still sends until it ends (``linger``)."""

    __slots__ = ("_budget", "_server", "_sock", "_timer")

    def __init__(self, server: LoopServer, sock: socket.socket) -> None:
        super().__init__(server.loop.time())
        self._server, self._sock, self._budget = server, sock, LINGER_BYTES
        server.loop.add_reader(sock.fileno(), self._on_readable)
        self._timer = server.loop.call_later(LINGER_SECONDS, self.abort)

    def _on_readable(self) -> None:
        self._budget = drop_input(self._sock, self._budget)
        if not self._budget:  # its end of stream, or past the bound
            self.abort()

    def output_size(self) -> int:
        return 0

    def working(self) -> bool:
        return False

    def time_out(self, reason: str) -> None:
        self.abort()

    def close_if_at_boundary(self) -> None:
        self.abort()  # the busy reply is all it was owed

    def abort(self) -> None:
        if self._sock.fileno() < 0:
            return  # ended already
        self._timer.cancel()
        self._server.loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._server.refusal_ended(self)


class DropInput(asyncio.Protocol):
    """A transport's protocol once its closing reply is written (see ``linger``).

    Drops what the client still sends until its end of stream,
    ``LINGER_BYTES`` or ``LINGER_SECONDS``, then closes; the conversation's
    protocol hears of the end as usual.
    """

    def __init__(self, transport: asyncio.Transport, owner: asyncio.BaseProtocol,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._owner = owner
        self._budget = LINGER_BYTES
        self._timer = loop.call_later(LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        self._budget -= len(data)
        if self._budget <= 0:
            self._transport.close()

    def eof_received(self) -> bool | None:
        return None  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._owner.connection_lost(None)  # a reset now is no news: the reply was sent
