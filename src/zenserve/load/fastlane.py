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

from zenserve.load.recorder import LatencyBins

if TYPE_CHECKING:
    from zenserve.load.loops import ClosedLoopConnection

clock_ns = time.monotonic_ns
# The lane counts microseconds from here (the process's import of this
# module): for 2**30 µs (about 18 minutes) its times fit in one digit of
# CPython's ints, whose arithmetic then takes a shortcut. Later times are as
# exact, only slower.
EPOCH_NS = clock_ns()

# The lane holds the event loop at most this long (microseconds; epoll waits
# round up to whole milliseconds, so up to about 2 ms): within the event
# loop's own timer resolution, so its timers and the worker's pipe are not
# noticeably late.
SLICE_US = 1_000


def lane_available() -> bool:
    """True where the lane can run (``select.epoll``: Linux)."""
    return hasattr(select, "epoll")


def clock_us() -> int:
    """The lane's clock: whole microseconds of ``time.monotonic_ns()`` since ``EPOCH_NS``."""
    return (clock_ns() - EPOCH_NS) // 1000


def seconds_of(lane_us: int) -> float:
    """A time of the lane's clock as a time of ``time.monotonic()`` (seconds)."""
    return (lane_us * 1000 + EPOCH_NS) * 1e-9


class FastLane:
    """One worker's set of closed-loop connections served straight from the socket."""

    __slots__ = ("bins", "by_fd", "changed", "epoll", "latency", "loop", "size")

    def __init__(self, loop: asyncio.AbstractEventLoop, latency: LatencyBins) -> None:
        self.loop = loop
        self.latency = latency
        self.bins = latency.bins  # the same list for the whole run (LatencyBins.cut)
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
        #
        # One clock reading per batch, taken when the wait returns, as a C
        # loop reading its sockets back to back: every answer of the batch had
        # arrived by then, and each question of the batch is sent within the
        # batch. A connection's latencies add up to its time in the run either
        # way; a reading per answer would only move each one by that answer's
        # place in its batch (a few microseconds), at a clock call per request.
        poll = self.epoll.poll
        self.changed = False
        now = clock_us()
        deadline = now + SLICE_US
        events = poll(0)
        while events:
            self._serve(events, now)
            if now >= deadline or self.changed or not self.size:
                return
            events = poll((deadline - now) * 1e-6)
            now = (clock_ns() - EPOCH_NS) // 1000  # clock_us(), without a call per batch

    def _serve(self, events: list[tuple[int, int]], now: int) -> None:
        # The hot path, written out in one frame: a call per request costs more
        # than everything else here (see the module docstring). A connection
        # leaves the lane before anything makes it careful (LoadConnection.stop
        # included), and a request that ends the connection has no lane_answer:
        # a plain comparison decides.
        by_fd, bins, read, write = self.by_fd, self.bins, os.read, os.write
        for fd, _ in events:
            connection = by_fd[fd]
            if connection is None:
                continue  # left the lane earlier in this batch
            request = connection.request
            try:
                data = read(fd, request.lane_read_size)
            except BlockingIOError:
                continue
            except OSError:
                connection.failed_in_lane(now)
                continue
            if data == request.lane_answer:
                # The monotonic clock never goes back: the index is never negative.
                try:
                    bins[now - connection.sent_us] += 1
                except IndexError:
                    self.latency.record_slow(now - connection.sent_us)
                connection.request = request.next
                connection.sent_us = now
                try:
                    written = write(fd, request.next_question)
                except BlockingIOError:
                    written = 0
                except OSError:
                    connection.failed_in_lane(now)
                    continue
                if written != request.next_size:
                    connection.write_off_lane(request.next_question[written:])
            else:
                connection.answered_off_lane(data, now)
