"""Listing 7-8: asyncio streams, one coroutine per client, reading and writing in turn.

The book's ``handle_conversation(reader, writer)`` as a coroutine of today's
asyncio (the listing's ``yield from`` no longer runs on 3.11): ``await
reader.read()``, answer, write (straight to the transport, as ``writer.write()``
would) and, unlike the listing, ``await writer.drain()``. drain() is the
backpressure: a client that does not read its answers suspends its own
coroutine, which stops reading, which lets the StreamReader's buffer fill and
pause the transport, so nothing grows without bound. ``--cost-kind io`` is an
``await asyncio.sleep`` per batch of questions, so only that client waits;
``block`` and ``cpu`` stall the loop.

The streams are the ones ``asyncio.start_server`` builds, made with
``asyncio.open_connection(sock=...)`` on sockets accepted by ``aio`` (see why
there); the loop, the sweep and the shutdown are shared with asyncio-callbacks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import cast

from zenserve.conversation import Conversation
from zenserve.servers import base
from zenserve.servers.aio import LoopServer
from zenserve.servers.aio_connection import (
    LoopConnection,
    read_in_bigger_chunks,
    read_in_small_chunks,
)
from zenserve.servers.first_read import FIRST_READ_BYTES
from zenserve.servers.linger import LINGER_BYTES, LINGER_SECONDS
from zenserve.servers.sweep import input_waiting

log = logging.getLogger("zenserve.server")

# Listing 7-8 reads 4096 bytes at a time; a bigger read answers a pipelining
# client's questions in fewer, larger writes.
RECV_BYTES = 65536
# The StreamReader's limit: it pauses its transport past twice this, buffered.
STREAM_LIMIT = 65536


class StreamConversation(LoopConnection):
    """One client's streams, and what its coroutine is doing, for the sweep and shutdown."""

    __slots__ = ("closed_by_server", "conversation", "held", "lingering", "paying_cost", "reader",
                 "sock", "transport", "waiting_to_read", "writer")

    def __init__(self, now: float, sock: socket.socket, conversation: Conversation,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        super().__init__(now)
        self.sock = sock
        self.conversation = conversation
        self.reader = reader
        self.writer = writer
        self.transport = cast(asyncio.Transport, writer.transport)  # a socket transport
        read_in_small_chunks(self.transport)
        self.waiting_to_read = False  # suspended in reader.read() with nothing buffered
        self.held = False  # hold_input() paused the transport
        self.paying_cost = False  # awaiting the io cost of a batch of questions
        self.closed_by_server = False  # a timeout or the shutdown closed it: the EOF is ours
        self.lingering = False  # after its closing reply: what it sends is dropped

    def output_size(self) -> int:
        return self.transport.get_write_buffer_size()

    def working(self) -> bool:
        return self.paying_cost

    def time_out(self, reason: str) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        log.info("Client %s %s; closing", self.conversation.peer, reason)
        self.closed_by_server = True
        if transport.get_write_buffer_size():
            transport.abort()  # it is not reading: waiting to flush would wait forever
        else:
            transport.close()

    def abort(self) -> None:
        self.closed_by_server = True
        self.transport.abort()

    def hold_input(self) -> None:
        # Received bytes go into the StreamReader's buffer, which only the
        # coroutine sees; pausing for one turn of the loop lets the coroutine
        # take them before close_if_at_boundary decides.
        transport = self.transport
        if transport.is_reading():
            transport.pause_reading()
            self.held = True

    def close_if_at_boundary(self) -> None:
        held, self.held = self.held, False
        transport = self.transport
        if transport.is_closing():
            return
        if self.lingering or (self.waiting_to_read and not self.conversation.mid_request
                              and not transport.is_reading()
                              and not input_waiting(self.sock.fileno())):
            self.closed_by_server = True
            transport.close()  # the coroutine's read() now ends with EOF
        elif held and not transport.is_reading():
            transport.resume_reading()


async def linger(connection: StreamConversation) -> None:
    """The closing reply is written: FIN after it, then read and drop until EOF or a bound.

    See ``linger``: closing with unread input would reset the reply away.
    """
    connection.lingering = True
    connection.request_started = 0.0
    connection.writer.write_eof()  # once the reply is sent, if it is not yet
    budget, read = LINGER_BYTES, connection.reader.read
    with contextlib.suppress(OSError, TimeoutError):  # a reset or the bound ends it too
        async with asyncio.timeout(LINGER_SECONDS):
            while budget > 0 and (data := await read(RECV_BYTES)):
                budget -= len(data)


class Server(LoopServer):
    """One task per client running ``converse``."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._tasks: set[asyncio.Task[None]] = set()
        self._io_delay = self.context.service.io_delay

    def start_connection(self, sock: socket.socket, peer: str) -> None:
        task = self.loop.create_task(self.converse(sock, peer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def converse(self, sock: socket.socket, peer: str) -> None:
        """Listing 7-8's loop (read, answer every question completed, write, drain), with its ends.

        One coroutine from the streams' making to the socket's closing: each
        answer resumes the task, and a coroutine awaited inside another would
        be one more frame to resume every time.
        """
        connection: StreamConversation | None = None
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=STREAM_LIMIT)
            conversation = self.context.conversation(peer)
            connection = StreamConversation(self.loop.time(), sock, conversation, reader, writer)
            self.connections.add(connection)
            transport, read = connection.transport, reader.read
            io_delay, clock = self._io_delay, self.loop.time
            while True:
                connection.waiting_to_read = True
                data = await read(RECV_BYTES)
                connection.waiting_to_read = False
                if not data:
                    if not connection.closed_by_server:
                        conversation.end_of_stream()
                    return
                connection.heard = True
                if len(data) >= FIRST_READ_BYTES:
                    read_in_bigger_chunks(transport)
                if io_delay:
                    questions = conversation.frame(data)
                    if questions:
                        connection.paying_cost = True
                        await asyncio.sleep(io_delay * len(questions))
                        connection.paying_cost = False
                    reply = conversation.answer_all(questions)
                else:
                    reply = conversation.receive(data)
                if reply:
                    transport.write(reply)  # what writer.write() does, one call fewer
                    if transport.get_write_buffer_size():
                        # Only a client behind on its answers leaves bytes buffered, and
                        # only then can drain() have to wait: skip its two coroutines.
                        await writer.drain()
                    if conversation.closing:
                        await linger(connection)
                        return
                    connection.request_started = clock() if conversation.mid_request else 0.0
                elif conversation.mid_request and not connection.request_started:
                    connection.request_started = clock()
        except OSError as error:  # includes ConnectionResetError from read() and drain()
            if connection is None or not connection.closed_by_server:
                log.info("Client %s error: %s", peer, error)
        finally:
            if connection is not None:
                connection.writer.close()
            else:
                sock.close()
            self.connection_ended(connection)
