"""Listing 7-7: asyncio callbacks. The loop calls the protocol; the protocol answers.

The book's ``ZenServer(asyncio.Protocol)``, one per connection, with what it
left out: framing by the Conversation (not ``endswith(b'?')``), flow control
(past the transport's write buffer limit, ``pause_writing`` stops reading from
that client until ``resume_writing``), and timeouts and shutdown from the
loop's one sweep (``aio``). ``data_received`` stays as lean as the book's: one
``receive``, one ``write``.

The cost knob's honest effect: ``block`` and ``cpu`` run inside
``data_received`` and stall the whole loop, the book's warning; ``io`` is a
timer per batch of questions (``DeferringZenProtocol``), so other clients are
served meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import cast

from zenserve.conversation import Conversation
from zenserve.servers import base
from zenserve.servers.aio import LoopServer
from zenserve.servers.aio_connection import (
    DropInput,
    LoopConnection,
    read_in_bigger_chunks,
    read_in_small_chunks,
)
from zenserve.servers.first_read import FIRST_READ_BYTES
from zenserve.servers.sweep import input_waiting

log = logging.getLogger("zenserve.server")

# With --cost-kind io: stop reading from a client whose questions waiting for
# their cost add up to more than this (as the transport's write buffer limit
# does for answers), and read again once they are answered.
MAX_WAITING_BYTES = 64 * 1024

Clock = Callable[[], float]


class ZenProtocol(asyncio.Protocol, LoopConnection):
    """One client's conversation, driven by the loop's callbacks."""

    __slots__ = ("_clock", "_conversation", "_lingering", "_made", "_output_full", "_server",
                 "_sock", "_transport")

    _transport: asyncio.Transport

    def __init__(self, server: LoopServer, sock: socket.socket, conversation: Conversation,
                 clock: Clock) -> None:
        LoopConnection.__init__(self, clock())
        self._server = server
        self._sock = sock
        self._conversation = conversation
        self._clock = clock
        self._made = False
        self._output_full = False
        self._lingering = False

    @property
    def peer(self) -> str:
        return self._conversation.peer

    @property
    def sock(self) -> socket.socket:
        """The accepted socket (the transport's once it is made)."""
        return self._sock

    @property
    def made(self) -> bool:
        """True once the transport exists (connection_made was called)."""
        return self._made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        read_in_small_chunks(transport)
        self._made = True
        self._server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.heard = True
        if len(data) >= FIRST_READ_BYTES:
            read_in_bigger_chunks(self._transport)
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

    def eof_received(self) -> bool | None:
        self._conversation.end_of_stream()
        return None  # close once the answers already written are sent

    def _linger(self) -> None:
        """The closing reply is written: FIN after it, then drop what the client still sends."""
        transport = self._transport
        self._lingering = True
        self.request_started = 0.0
        transport.write_eof()  # once the reply is sent, if it is not yet
        transport.set_protocol(DropInput(transport, self, self._server.loop))
        if not transport.is_reading():  # paused by flow control: dropping needs no room
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connection_ended(self)
        if exc is not None:
            log.info("Client %s error: %s", self._conversation.peer, exc)

    # Flow control: the transport says when its write buffer is past its limit.

    def pause_writing(self) -> None:
        self._output_full = True
        self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._output_full = False
        self._transport.resume_reading()

    # What the loop's sweep and shutdown need.

    def output_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def working(self) -> bool:
        return False

    def time_out(self, reason: str) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        log.info("Client %s %s; closing", self._conversation.peer, reason)
        if transport.get_write_buffer_size():
            transport.abort()  # it is not reading: waiting to flush would wait forever
        else:
            transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def close_if_at_boundary(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if self._lingering or not (self._conversation.mid_request or self.working()
                                   or input_waiting(self._sock.fileno())):
            transport.close()  # after the answers already written are sent


class DeferringZenProtocol(ZenProtocol):
    """With ``--cost-kind io``: each batch of questions waits its cost on a timer, in order.

    A batch of k questions waits k times the cost (as k awaited calls in a row
    would) and is answered in one write; batches of one client never overlap,
    so answers keep their order, while other clients are served meanwhile.
    """

    __slots__ = ("_backlog_full", "_batches", "_eof", "_io_delay", "_timer", "_waiting_bytes")

    def __init__(self, server: LoopServer, sock: socket.socket, conversation: Conversation,
                 clock: Clock) -> None:
        super().__init__(server, sock, conversation, clock)
        self._io_delay = server.context.service.io_delay
        self._batches: deque[tuple[list[bytes], int]] = deque()  # questions, bytes received
        self._waiting_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._backlog_full = False
        self._eof = False

    def data_received(self, data: bytes) -> None:
        self.heard = True
        if len(data) >= FIRST_READ_BYTES:
            read_in_bigger_chunks(self._transport)
        conversation = self._conversation
        questions = conversation.frame(data)
        if questions or self._batches:  # an empty batch keeps a too-long error in order
            self._enqueue(questions, len(data))
        else:
            reply = conversation.answer_all(questions)  # nothing owed: only ever an error
            if reply:
                self._transport.write(reply)
            if conversation.closing:
                self._linger()
                return
        if conversation.mid_request:
            if questions or not self.request_started:
                self.request_started = self._clock()
        else:
            self.request_started = 0.0

    def _enqueue(self, questions: list[bytes], size: int) -> None:
        self._batches.append((questions, size))
        self._waiting_bytes += size
        if self._timer is None:
            self._schedule()
        if self._waiting_bytes > MAX_WAITING_BYTES and not self._backlog_full:
            self._backlog_full = True
            self._transport.pause_reading()

    def _schedule(self) -> None:
        delay = self._io_delay * len(self._batches[0][0])
        self._timer = self._server.loop.call_later(delay, self._answer_next)

    def _answer_next(self) -> None:
        self._timer = None
        questions, size = self._batches.popleft()
        self._waiting_bytes -= size
        conversation, transport = self._conversation, self._transport
        reply = conversation.answer_all(questions)
        if reply:
            transport.write(reply)
        if conversation.closing:
            self._linger()
            return
        if self._eof and not self._batches:
            transport.close()
            return
        if self._batches:
            self._schedule()
        if self._backlog_full and self._waiting_bytes <= MAX_WAITING_BYTES // 2:
            self._backlog_full = False
            if not self._output_full:
                transport.resume_reading()

    def eof_received(self) -> bool | None:
        self._conversation.end_of_stream()
        if self._batches:
            self._eof = True
            return True  # stay open until the owed answers are written
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._batches.clear()
        super().connection_lost(exc)

    def resume_writing(self) -> None:
        self._output_full = False
        if not self._backlog_full:
            self._transport.resume_reading()

    def working(self) -> bool:
        return bool(self._batches)


class Server(LoopServer):
    """Accept, then hand each socket to a protocol through ``connect_accepted_socket``."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._protocol_class = (DeferringZenProtocol if context.service.io_delay
                                else ZenProtocol)
        # Each handoff task until it is done, with the protocol it hands the socket to.
        self._handoffs: dict[asyncio.Task[tuple[asyncio.Transport, asyncio.BaseProtocol]],
                             ZenProtocol] = {}

    def start_connection(self, sock: socket.socket, peer: str) -> None:
        loop = self.loop
        protocol = self._protocol_class(self, sock, self.context.conversation(peer), loop.time)
        handoff = loop.create_task(loop.connect_accepted_socket(lambda: protocol, sock))
        self._handoffs[handoff] = protocol
        handoff.add_done_callback(self._handed_off)

    def _handed_off(self,
                    handoff: asyncio.Task[tuple[asyncio.Transport, asyncio.BaseProtocol]]) -> None:
        protocol = self._handoffs.pop(handoff)
        if not handoff.cancelled():
            error = handoff.exception()
            if error is None:
                return  # the transport owns the socket now
            log.info("Client %s error: %s", protocol.peer, error)
        if not protocol.made:  # no transport ever owned the socket: end it here
            protocol.sock.close()
            self.connection_ended(None)
