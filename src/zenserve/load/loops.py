"""Closed and open loop: when a connection sends, and how its latency is measured.

Each class's hot path is the first branch of ``data_received``: the whole
answer arrived in one read and it is the correct one. Nothing is allocated
there beyond the clock reading and the arithmetic; every other case (a partial
answer, a wrong one, the end of the run) takes the careful path of
``LoadConnection``, which frames through the protocol core. Skipping the
framer is exact: with nothing pending, the framer turns bytes equal to a valid
answer into that one answer and nothing else. In a closed loop, a connection
on that path moves on to the fast lane (``zenserve.load.fastlane``), whose
hot path is the same, read and written straight on the socket.
"""

from __future__ import annotations

from zenserve.load.connection import (
    ASKING,
    LATE_LIMIT,
    READY,
    TIMER_SLACK,
    LoadConnection,
    Shared,
    clock,
)
from zenserve.load.fastlane import clock_us, seconds_of
from zenserve.load.mix import Request
from zenserve.load.outcomes import RESET
from zenserve.load.recorder import FINE_LIMIT_US


class ClosedLoopConnection(LoadConnection):
    """Asks its next question as soon as the answer to the last one arrives.

    After a correct answer through the event loop, a connection joins the
    worker's fast lane (``zenserve.load.fastlane``), if there is one, and
    stays there until anything out of the ordinary sends it back.
    """

    __slots__ = ("lane", "lane_fd", "sent_us")

    def __init__(self, shared: Shared, first: Request) -> None:
        super().__init__(shared, first)
        self.lane = shared.lane
        self.lane_fd = -1  # the socket's descriptor while in the lane
        self.sent_us = 0  # when the current request was sent, in the lane (clock_us())

    def _due(self, now: float) -> float | None:
        return now

    def _record(self, now: float) -> None:
        self.shared.latency.record(int((now - self.sent) * 1e6))

    def data_received(self, data: bytes) -> None:
        now = clock()
        request = self.request
        if data == request.expected and not self.careful:
            microseconds = int((now - self.sent) * 1e6)
            if microseconds < FINE_LIMIT_US:
                self.bins[microseconds] += 1
            else:
                self.shared.latency.record_slow(microseconds)
            following = request.next
            self.request = following
            if request.closes:
                self._close()
                return
            self.sent = now
            if self.lane is not None:
                self._join_lane()
            self.write(following.question)
        else:
            self._receive_carefully(data, now)

    # -- the fast lane -----------------------------------------------------------------
    def _join_lane(self) -> None:
        transport = self.transport
        if transport is None or transport.get_write_buffer_size() or self.lane is None:
            return  # the lane writes straight to the socket: nothing may be queued
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        transport.pause_reading()
        self.lane_fd = sock.fileno()
        self.lane.join(self.lane_fd, self)
        self.sent_us = clock_us()

    def _leave_lane(self) -> None:
        if self.lane_fd < 0 or self.lane is None:
            return
        self.lane.leave(self.lane_fd)
        self.lane_fd = -1
        self.sent = seconds_of(self.sent_us)  # the careful path and timeouts use seconds
        if self.transport is not None:
            self.transport.resume_reading()

    def answered_off_lane(self, data: bytes, now_us: int) -> None:
        """The lane read ``data``: not the plain answer, or one that ends it: the careful path."""
        self._leave_lane()
        self._receive_carefully(data, seconds_of(now_us))

    def write_off_lane(self, rest: bytes) -> None:
        """The socket took only part of a question: the transport sends ``rest`` when it can."""
        self._leave_lane()
        self.write(rest)

    def failed_in_lane(self, now_us: int) -> None:
        """Reading or writing the socket failed: the request in flight was reset."""
        self._leave_lane()
        if self.state == ASKING:
            self._complete(seconds_of(now_us), RESET)
        self._abort()

    # -- every way out of the connection leaves the lane first -----------------------
    def _close(self) -> None:
        self._leave_lane()
        super()._close()

    def _abort(self) -> None:
        self._leave_lane()
        super()._abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._leave_lane()
        super().connection_lost(exc)

    def stop(self) -> None:
        """As for any connection; the answer in flight, if any, is the careful path's."""
        self._leave_lane()  # the lane does not look at ``careful``
        super().stop()

    def check_timeout(self, now: float) -> None:
        """As for any connection; in the lane, the send time is kept in microseconds."""
        if self.lane_fd >= 0:
            self.sent = seconds_of(self.sent_us)
        super().check_timeout(now)


class OpenLoopConnection(LoadConnection):
    """Sends on a schedule: one request every ``interval`` seconds from its first due time.

    Latency is what it would have been with a generator that is never late:
    each request is charged from its intended send time, or from when the
    server freed the connection in that ideal timeline, whichever is later. A
    server that stalls is charged for every request due during the stall
    (coordinated omission corrected, as wrk2 does); the generator's own timer
    lateness is charged to nobody. ``service`` is the raw send-to-answer time.

    The generator's own lag is the actual send time minus the ideal one (its
    intended time, or when the server freed the connection in the ideal
    timeline): a slow server delays both timelines alike, so only a late
    timer or a busy event loop makes it grow. Sends lagging more than
    ``LATE_LIMIT`` are counted: the evidence that the generator, not the
    server, fell behind.
    """

    __slots__ = ("ideal_free", "intended", "interval", "service_bins", "stop_at")

    def __init__(self, shared: Shared, first: Request) -> None:
        super().__init__(shared, first)
        self.service_bins = shared.service.bins
        self.intended = self.ideal_free = self.interval = 0.0
        self.stop_at = float("inf")

    def schedule(self, first_due: float, interval: float, stop_at: float) -> None:
        """First request at ``first_due``, then one every ``interval`` until ``stop_at``."""
        self.intended = first_due
        self.ideal_free = first_due
        self.interval = interval
        # Due times are sums of intervals: stop a hair early, so rounding never
        # sneaks in a request due exactly at the end.
        self.stop_at = stop_at - 1e-6

    def _due(self, now: float) -> float | None:
        return self.intended if self.intended < self.stop_at else None

    def _ideal_answer(self, now: float) -> float:
        intended, ideal_free = self.intended, self.ideal_free
        answered = (intended if intended > ideal_free else ideal_free) + (now - self.sent)
        self.ideal_free = answered
        return answered

    def _record(self, now: float) -> None:
        self.shared.latency.record(int((self._ideal_answer(now) - self.intended) * 1e6))
        self.shared.service.record(int((now - self.sent) * 1e6))

    def _account_failure(self, now: float) -> None:
        self._ideal_answer(now)

    def _next_slot(self) -> None:
        self.intended += self.interval

    def _send(self, now: float) -> None:
        super()._send(now)
        # Ideally sent at its intended time, when the connection is free, and
        # not before a retry is allowed (waiting out a refusal is no lag).
        ideal = max(self.intended, self.ideal_free, self.not_before)
        # A connection opened after that moment lags from its connect on: how
        # long the server takes to accept it is no lag of the generator.
        started = self.connect_started if self.connect_started > ideal else self.sent
        if started - ideal > LATE_LIMIT:
            self.shared.note_lag(started - ideal)

    def data_received(self, data: bytes) -> None:
        now = clock()
        request = self.request
        if data == request.expected and not self.careful:
            service = now - self.sent
            intended, ideal_free = self.intended, self.ideal_free
            answered = (intended if intended > ideal_free else ideal_free) + service
            self.ideal_free = answered
            microseconds = int((answered - intended) * 1e6)
            if microseconds < FINE_LIMIT_US:
                self.bins[microseconds] += 1
            else:
                self.shared.latency.record_slow(microseconds)
            microseconds = int(service * 1e6)
            if microseconds < FINE_LIMIT_US:
                self.service_bins[microseconds] += 1
            else:
                self.shared.service.record_slow(microseconds)
            following = request.next
            self.request = following
            intended += self.interval
            self.intended = intended
            if request.closes:
                self._close()
            elif intended - now <= TIMER_SLACK and intended < self.stop_at:
                self.sent = now
                self.write(following.question)
                lag = now - (intended if intended > answered else answered)
                if lag > LATE_LIMIT:
                    self.shared.note_lag(lag)
            else:
                self.state = READY
                self.advance()
        else:
            self._receive_carefully(data, now)
