"""One load connection: an asyncio protocol that asks, checks every answer and times it.

A connection asks one question at a time (the C reference server, like many
real ones, does not take pipelined questions). This module holds the life
cycle both loops share: connecting, sending, the careful path for answers,
failures, timeouts and the end of the run. ``zenserve.load.loops`` adds when
to send and how to time: closed loop and open loop, each with its hot path.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, cast

from zenserve.load.mix import Request
from zenserve.load.outcomes import REFUSED, RESET, SHORT_READ, TIMEOUT, WRONG_ANSWER
from zenserve.load.recorder import LatencyBins
from zenserve.protocol import answer_framer

if TYPE_CHECKING:
    from zenserve.load.fastlane import FastLane

clock = time.monotonic

IDLE, CONNECTING, READY, ASKING, CLOSING = range(5)

# After a failed connect, wait this long before the next attempt: a refusing
# server must not turn the generator into a busy loop of connect calls.
RETRY_DELAY = 0.05
# A timer that fires this close to its due time counts as on time (event loop
# timers have millisecond resolution).
TIMER_SLACK = 0.0005
# Open loop: a request sent later than this behind the ideal schedule was held
# up by the generator itself (a busy event loop, or a process the machine did
# not run), beyond the millisecond resolution of event loop timers.
LATE_LIMIT = 0.002


class Shared:
    """What all connections of one worker process share."""

    __slots__ = ("connect_error", "errors", "host", "lane", "late_sends", "latency", "loop",
                 "max_lag", "per_request", "port", "service", "started", "started_at", "stopping",
                 "timeout")

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int, timeout: float,
                 per_request: bool) -> None:
        self.loop = loop
        self.host = host
        self.port = port
        self.timeout = timeout
        self.per_request = per_request
        self.errors = [0, 0, 0, 0, 0]
        self.latency = LatencyBins()
        self.service = LatencyBins()
        self.started = False
        self.started_at = 0.0  # when the run began (clock())
        self.stopping = False
        self.connect_error = ""
        self.lane: FastLane | None = None  # the closed loop's, where there is one
        # Open loop: requests sent more than LATE_LIMIT behind the ideal
        # schedule, and the largest such lag (seconds); see OpenLoopConnection.
        self.late_sends = 0
        self.max_lag = 0.0

    def note_lag(self, lag: float) -> None:
        """A request was sent ``lag`` seconds (more than ``LATE_LIMIT``) behind its schedule."""
        self.late_sends += 1
        if lag > self.max_lag:
            self.max_lag = lag


def _not_connected(data: bytes) -> None:
    raise RuntimeError("write on a load connection that is not connected")


class LoadConnection(asyncio.Protocol):
    """The connection life cycle shared by both loops: connect, send, check, fail, stop."""

    __slots__ = ("bins", "careful", "connect_started", "framer", "not_before",
                 "request", "sent", "shared", "state", "task", "timer", "transport", "write")

    def __init__(self, shared: Shared, first: Request) -> None:
        self.shared = shared
        self.request = first  # the request being asked, or the next one to ask
        self.bins = shared.latency.bins
        self.transport: asyncio.Transport | None = None
        self.write: Any = _not_connected
        self.framer = answer_framer()
        self.careful = True
        self.sent = 0.0
        self.connect_started = 0.0
        self.not_before = 0.0
        self.state = IDLE
        self.task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None

    # -- hooks the two loops define ------------------------------------------------------
    def _due(self, now: float) -> float | None:
        """When the current request should be sent (None: never, the schedule is over)."""
        raise NotImplementedError

    def _record(self, now: float) -> None:
        """Record the latency of the request answered correctly at ``now``."""
        raise NotImplementedError

    def _account_failure(self, now: float) -> None:
        """The current request failed at ``now``."""

    def _next_slot(self) -> None:
        """Move the schedule on by one request."""

    # -- what comes next ---------------------------------------------------------------
    def advance(self) -> None:
        """Do whatever comes next for this connection: connect, send, or wait."""
        shared = self.shared
        if self.state not in (IDLE, READY) or shared.stopping or not shared.started:
            return
        now = clock()
        due = self._due(now)
        if due is None:
            return
        if self.state == IDLE and not shared.per_request:
            due = now  # keep a connection open, ready for when the request is due
        when = max(due, self.not_before)
        if when - now > TIMER_SLACK:
            self._arm(when - now)
        elif self.state == IDLE:
            self.connect()
        else:
            self._send(now)

    def _arm(self, delay: float) -> None:
        self.careful = True
        if self.timer is None:
            self.timer = self.shared.loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        self.advance()

    def _send(self, now: float) -> None:
        self.state = ASKING
        self.careful = self.shared.stopping
        # In connection-per-request mode the connect is part of the request, but
        # not for a connection opened before the run (every one is, to check that
        # the server is reachable): its first request starts when it is sent.
        shared = self.shared
        opened_for_it = shared.per_request and self.connect_started >= shared.started_at
        self.sent = self.connect_started if opened_for_it else now
        self.write(self.request.question)

    # -- connecting --------------------------------------------------------------------
    def connect(self) -> None:
        """Open a connection (the request, if due, is sent once it is made)."""
        self.state = CONNECTING
        self.careful = True
        self.connect_started = self.sent = clock()
        self.task = self.shared.loop.create_task(self._open())

    def _myself(self) -> LoadConnection:
        return self

    async def _open(self) -> None:
        shared = self.shared
        try:
            await shared.loop.create_connection(self._myself, shared.host, shared.port)
        except OSError as error:
            self.task = None
            shared.connect_error = shared.connect_error or (error.strerror or str(error))
            self._connect_failed(REFUSED)

    def _connect_failed(self, kind: int) -> None:
        self.state = IDLE
        now = clock()
        self.not_before = now + RETRY_DELAY
        if self.shared.started and not self.shared.stopping:
            self._complete(now, kind)
            self.advance()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.task = None
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)
        self.write = self.transport.write
        if self.framer.pending or self.framer.overflowed:
            self.framer = answer_framer()
        self.state = READY
        self.advance()

    def connection_lost(self, exc: Exception | None) -> None:
        was = self.state
        self.transport = None
        self.write = _not_connected
        self.state = IDLE
        self.careful = True
        if was == ASKING:
            self._complete(clock(), SHORT_READ if exc is None else RESET)
        if not self.shared.stopping:
            self.advance()

    def _close(self) -> None:
        self.state = CLOSING
        self.careful = True
        if self.transport is not None:
            self.transport.close()

    # -- answers -----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._receive_carefully(data, clock())

    def _receive_carefully(self, data: bytes, now: float) -> None:
        if self.state == CLOSING:
            return  # late bytes of a connection already given up
        framer = self.framer
        answers = framer.feed(data)
        if self.state != ASKING:
            self.shared.errors[WRONG_ANSWER] += 1  # an answer nobody asked for
            self._abort()
            return
        if framer.overflowed or len(answers) > 1 or (answers and framer.pending):
            self._complete(now, WRONG_ANSWER)  # too long, or more than one answer
            self._abort()
            return
        self.careful = bool(framer.pending) or self.shared.stopping
        if answers:
            correct = answers[0] == self.request.expected
            finished = self._complete(now, None if correct else WRONG_ANSWER)
            self._after(finished)

    def _complete(self, now: float, error: int | None) -> Request:
        """Account for the current request (``error`` None: answered correctly); move on."""
        if error is None:
            self._record(now)  # the latency histogram counts the correct answers too
        else:
            self.shared.errors[error] += 1
            self._account_failure(now)
        finished = self.request
        self.request = finished.next
        self._next_slot()
        return finished

    def _after(self, finished: Request) -> None:
        """The connection is up and ``finished`` is done: close, or go on."""
        if finished.closes or self.shared.stopping:
            self._close()
        else:
            self.state = READY
            self.advance()

    def _abort(self) -> None:
        self.state = CLOSING
        self.careful = True
        if self.transport is not None:
            self.transport.abort()

    # -- driven by the worker ----------------------------------------------------------
    def check_timeout(self, now: float) -> None:
        """Fail a request or a connect that has waited longer than the timeout."""
        if now - self.sent <= self.shared.timeout:
            return
        if self.state == ASKING:
            self._complete(now, TIMEOUT)
            self._abort()
        elif self.state == CONNECTING and self.task is not None:
            self.task.cancel()
            self.task = None
            self._connect_failed(TIMEOUT)

    def cancel_connect(self) -> None:
        """Give up a connect still in progress (before the run starts)."""
        if self.state == CONNECTING and self.task is not None:
            self.task.cancel()
            self.task = None
            self.state = IDLE

    def stop(self) -> None:
        """The run is over: ask nothing more; a request in flight may still finish."""
        self.careful = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.cancel_connect()
        if self.state == READY:
            self._close()

    def abandon(self) -> bool:
        """Drop the connection at once; True if a request was still waiting for its answer."""
        waiting = self.state == ASKING
        self.stop()
        if self.state in (ASKING, CLOSING):
            self._abort()
        return waiting
