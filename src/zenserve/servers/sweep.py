"""One sweep per loop instead of a timer per connection, for the framework event loops.

asyncio, uvloop and gevent serve every connection from one thread. Rather than
a timer per request (or per connection, re-armed on every read), each loop runs
one periodic sweep that judges every connection by a few plain attributes its
data path sets (``ConnectionClock``). Graceful shutdown asks the kernel whether
a client has sent bytes nobody has read yet (``input_waiting``).
"""

from __future__ import annotations

import select

from zenserve.config import Limits

# The sweep runs this many times per shortest timeout (so a timeout fires at most
# a quarter late), but never more than once a second nor more than 100 times.
SWEEPS_PER_TIMEOUT = 4
SLOWEST_SWEEP_SECONDS = 1.0
FASTEST_SWEEP_SECONDS = 0.01
# During a graceful shutdown, how often to look for connections at a request boundary.
STOP_POLL_SECONDS = 0.02


def sweep_interval(limits: Limits) -> float:
    """How often one loop checks every connection's idle and request timeouts."""
    shortest = min(limits.idle_timeout, limits.request_timeout)
    return max(FASTEST_SWEEP_SECONDS, min(SLOWEST_SWEEP_SECONDS, shortest / SWEEPS_PER_TIMEOUT))


class ConnectionClock:
    """The timestamps a sweep needs to judge one connection; set cheaply in the hot path.

    The data path sets ``heard = True`` on every read (a store, not a clock
    call) and ``request_started`` (loop time) when a read leaves a question
    unfinished; the sweep turns ``heard`` into ``quiet_since`` at its own pace.
    """

    __slots__ = ("heard", "output_seen", "quiet_since", "request_started")

    def __init__(self, now: float) -> None:
        self.heard = False
        self.quiet_since = now
        self.request_started = 0.0
        self.output_seen = 0

    def expired(self, now: float, limits: Limits, output_mark: int, working: bool) -> str:
        """Why this connection should be closed now, or "" to keep it.

        Progress is a read, the server still working on an answer, or answers
        draining to the client (``output_mark``, any number that changes as
        they drain: unsent bytes, or replies sent); a client that neither
        sends nor reads is idle.
        """
        if self.request_started and now - self.request_started > limits.request_timeout:
            return "did not finish its question in time"
        if self.heard or working or output_mark != self.output_seen:
            self.heard = False
            self.quiet_since = now
            self.output_seen = output_mark
            return ""
        if now - self.quiet_since > limits.idle_timeout:
            return "was idle too long"
        return ""


def input_waiting(fileno: int) -> bool:
    """True when the kernel holds bytes (or an end of stream) the server has not read.

    Graceful shutdown closes a connection only at a request boundary: with
    nothing half-asked, nothing unanswered, and nothing unread.
    """
    poller = select.poll()
    poller.register(fileno, select.POLLIN)
    return bool(poller.poll(0))

