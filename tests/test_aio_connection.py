"""aio_connection.read_in_small_chunks and read_in_bigger_chunks on real transports."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from tests.helpers import SOCKET_TIMEOUT
from zenserve.loops import new_uvloop
from zenserve.servers.aio_connection import (
    TRANSPORT_READ_BYTES,
    read_in_bigger_chunks,
    read_in_small_chunks,
)
from zenserve.servers.first_read import FIRST_READ_BYTES

# What one send() offers at a time while the socket pair's buffer fills up.
SEND_BYTES = 16 * 1024


class ChunkRecorder(asyncio.Protocol):
    """Records the size of every chunk the transport delivers; done at end of stream.

    With ``grow``, it does what zenserve's protocols do: bigger reads once one
    comes back full.
    """

    def __init__(self, done: asyncio.Future[None], grow: bool = False) -> None:
        self.sizes: list[int] = []
        self.done = done
        self.grow = grow
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.sizes.append(len(data))
        if self.grow and len(data) >= FIRST_READ_BYTES and self.transport is not None:
            read_in_bigger_chunks(self.transport)

    def eof_received(self) -> bool | None:
        self.done.set_result(None)
        return None


def fill(sock: socket.socket) -> int:
    """Send until the kernel takes no more (the reader is paused); how many bytes went."""
    sock.setblocking(False)
    sent = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            sent += sock.send(b"x" * SEND_BYTES)
    return sent


async def chunk_sizes(limit_reads: bool, grow: bool = False) -> tuple[list[int], object]:
    """Queue a burst for a transport (reads limited or not); its chunk sizes and its max_size."""
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    done: asyncio.Future[None] = loop.create_future()
    recorder = ChunkRecorder(done, grow)
    transport, _ = await loop.connect_accepted_socket(lambda: recorder, ours)
    try:
        if limit_reads:
            read_in_small_chunks(transport)
        transport.pause_reading()  # the whole burst waits in the kernel, read in one go
        with theirs:
            queued = fill(theirs)
            assert queued > 2 * TRANSPORT_READ_BYTES  # enough to show the read size
            theirs.shutdown(socket.SHUT_WR)
            transport.resume_reading()
            await asyncio.wait_for(done, SOCKET_TIMEOUT)
    finally:
        transport.close()
    assert sum(recorder.sizes) == queued
    return recorder.sizes, getattr(transport, "max_size", None)


def test_asyncio_transport_reads_the_first_size_until_told() -> None:
    sizes, max_size = asyncio.run(chunk_sizes(limit_reads=True))
    assert max_size == FIRST_READ_BYTES
    assert max(sizes) == FIRST_READ_BYTES  # the queued burst fills every read


def test_a_full_first_read_makes_the_rest_bigger_but_never_past_the_small_chunk() -> None:
    sizes, max_size = asyncio.run(chunk_sizes(limit_reads=True, grow=True))
    assert max_size == TRANSPORT_READ_BYTES
    assert sizes[0] == FIRST_READ_BYTES  # one read of the first size, then the bigger ones
    assert max(sizes) == TRANSPORT_READ_BYTES  # the queued burst fills every later read


def test_without_it_asyncio_reads_past_the_mmap_threshold() -> None:
    # The reason for the knob: asyncio's default read is bigger than glibc's
    # 128 KiB mmap threshold. If asyncio ever reads less, the knob is moot.
    sizes, max_size = asyncio.run(chunk_sizes(limit_reads=False))
    assert isinstance(max_size, int) and max_size >= 128 * 1024
    assert max(sizes) > TRANSPORT_READ_BYTES


def test_uvloop_transports_are_left_alone() -> None:
    pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=new_uvloop) as runner:
        sizes, max_size = runner.run(chunk_sizes(limit_reads=True))
    assert max_size is None
    assert max(sizes) > TRANSPORT_READ_BYTES  # its own buffer, as before
