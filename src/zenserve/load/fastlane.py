"""The closed loop's fast lane: answers read and questions written straight on the sockets.

Through the event loop, every answer costs a protocol callback (the loop
takes the GIL back, makes a bytes object, calls ``data_received``) and every
question a trip through the transport's write queue: most of the generator's
user CPU per request. A closed-loop connection in steady state joins instead
one ``select.epoll`` per worker, whose descriptor the event loop watches like
any other: one loop callback then serves every lane connection that is ready,
each with one ``os.read`` and one ``os.write``. While answers keep coming,
the lane waits for them in its own epoll for a short slice, so a busy run
costs one ``epoll_wait`` per batch, as a C loop does (measured in
benchmarks/RESULTS.md, section bench-vs-reference).

The lane keeps to the hot path only: the whole correct answer in one read.
Anything else (a partial, wrong or extra answer, the end of the stream, an
error, a closing request, the end of the run) sends the connection back to
its transport, whose reading is resumed, and to the careful path of
``LoadConnection``. The transport's reading is paused while a connection is
in the lane, so exactly one reader owns the socket at any time; the lane
writes only when the transport has nothing queued, so the stream stays in
order.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from typing import TYPE_CHECKING

from zenserve.load.recorder import FINE_LIMIT_US, LatencyBins

if TYPE_CHECKING:
    from zenserve.load.loops import ClosedLoopConnection

clock_ns = time.monotonic_ns

# An answer is read in one call of up to this many bytes: with its 33 bytes of
# header the bytes object still fits the 512-byte blocks of CPython's
# small-object allocator (a larger one goes through malloc and realloc). A
# longer answer is not lost: its start leaves the lane, the transport reads on.
READ_SIZE = 479
# The lane holds the event loop at most this long (nanoseconds; epoll waits
# round up to whole milliseconds, so up to about 2 ms): within the event
# loop's own timer resolution, so its timers and the worker's pipe are not
# noticeably late.
SLICE_NS = 1_000_000


def lane_available() -> bool:
    """True where the lane can run (``select.epoll``: Linux)."""
    return hasattr(select, "epoll")


class FastLane:
    """One worker's set of closed-loop connections served straight from the socket."""

    __slots__ = ("by_fd", "changed", "epoll", "latency", "loop", "size")

    def __init__(self, loop: asyncio.AbstractEventLoop, latency: LatencyBins) -> None:
        self.loop = loop
        self.latency = latency
        self.epoll = select.epoll()
        # Indexed by descriptor (small integers): a list is the cheapest lookup.
        self.by_fd: list[ClosedLoopConnection | None] = []
        self.size = 0  # connections in the lane
        self.changed = False  # a connection left while the lane held the loop
        loop.add_reader(self.epoll.fileno(), self._drain)

    def join(self, fd: int, connection: ClosedLoopConnection) -> None:
        """Serve ``connection`` (socket ``fd``, its transport's reading paused) from now on."""
        self.epoll.register(fd, select.EPOLLIN)
        if fd >= len(self.by_fd):
            self.by_fd += [None] * (fd + 1 - len(self.by_fd))
        self.by_fd[fd] = connection
        self.size += 1

    def leave(self, fd: int) -> None:
        """Stop serving socket ``fd`` (before its transport reads or closes it)."""
        self.by_fd[fd] = None
        self.size -= 1
        self.changed = True
        self.epoll.unregister(fd)

    def close(self) -> None:
        """Stop watching; connections still in the lane must have left (or be closed)."""
        self.loop.remove_reader(self.epoll.fileno())
        self.epoll.close()
        self.by_fd.clear()
        self.size = 0

    def _drain(self) -> None:
        # While answers keep coming, wait for the next ones here, as a C loop
        # would: one epoll_wait per batch instead of the event loop's wait, its
        # callback and a second wait. The event loop runs again after a slice,
        # when nothing came, or at once when a connection left the lane.
        poll = self.epoll.poll
        self.changed = False
        deadline = clock_ns() + SLICE_NS
        events = poll(0)
        while events:
            self._serve(events)
            remaining = deadline - clock_ns()
            if remaining <= 0 or self.changed or not self.size:
                return
            events = poll(remaining * 1e-9)

    def _serve(self, events: list[tuple[int, int]]) -> None:
        # The hot path, written out in one frame: a call per request costs more
        # than everything else here (see the module docstring).
        by_fd, latency = self.by_fd, self.latency
        bins, read, write = latency.bins, os.read, os.write
        for fd, _ in events:
            connection = by_fd[fd]
            if connection is None:
                continue  # left the lane earlier in this batch
            now = clock_ns()
            try:
                data = read(fd, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                connection.failed_in_lane(now)
                continue
            request = connection.request
            if data == request.expected and not connection.careful:
                microseconds = (now - connection.sent_ns) // 1000
                if microseconds < FINE_LIMIT_US:
                    bins[microseconds] += 1
                else:
                    latency.record_slow(microseconds)
                following = request.next
                connection.request = following
                if request.closes:
                    connection.close_after_answer()
                    continue
                connection.sent_ns = now
                question = following.question
                try:
                    written = write(fd, question)
                except BlockingIOError:
                    written = 0
                except OSError:
                    connection.failed_in_lane(now)
                    continue
                if written != following.size:
                    connection.write_off_lane(question[written:])
            else:
                connection.answered_off_lane(data, now)
