"""What one load run does: a frozen, validated description built once by the caller."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from zenserve.config import DEFAULT_HOST, DEFAULT_PORT
from zenserve.errors import ZenserveError
from zenserve.load.eventloop import EVENT_LOOPS
from zenserve.protocol import DEFAULT_MAX_REQUEST_BYTES
from zenserve.service import pep20_table

# Like wrk's default: long enough that a stalled server is charged for the
# stall (open loop), short enough that a dead connection is noticed in the run.
DEFAULT_TIMEOUT = 2.0


def default_processes(connections: int) -> int:
    """Half the cores this process may use (the other half runs the server), at least 1.

    On a 2-core machine this is one process: a second one would share the
    server's core, and the context switches cost more than the extra loop gives
    (measured in benchmarks/RESULTS.md).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(connections, (cores or 1) // 2))


def _known_pairs() -> tuple[tuple[bytes, bytes], ...]:
    return tuple(pep20_table().items())


@dataclass(frozen=True, slots=True)
class BenchOptions:
    """One load run against ``host:port``.

    ``rate`` None is a closed loop (each connection asks again as soon as its
    answer arrives); a rate is an open loop of ``rate`` requests per second in
    total, spread evenly over the connections. ``questions`` are the known
    (question, expected answer) pairs; ``unknown_ratio`` and ``error_ratio``
    replace that share of requests with unknown and malformed ones (see
    ``zenserve.load.mix``).
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    connections: int = 10
    rate: float | None = None
    duration: float = 10.0
    warmup: float = 1.0
    connection_per_request: bool = False
    questions: tuple[tuple[bytes, bytes], ...] = field(default_factory=_known_pairs)
    unknown_ratio: float = 0.0
    error_ratio: float = 0.0
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    processes: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    seed: int = 1060
    event_loop: str = "auto"
    # Closed loop: serve connections in steady state from one epoll set per
    # worker, off the event loop's protocol path (``zenserve.load.fastlane``);
    # False keeps every answer on the protocol path, for comparison.
    fast_lane: bool = True

    def __post_init__(self) -> None:
        _check(self.connections >= 1, "connections must be at least 1")
        _check(self.rate is None or self.rate > 0, "the rate must be more than 0 requests/s")
        _check(self.duration > 0, "the duration must be more than 0")
        _check(self.warmup >= 0, "the warmup cannot be negative")
        _check(self.timeout > 0, "the timeout must be more than 0")
        _check(bool(self.questions), "at least one known question is needed")
        _check(0 <= self.unknown_ratio <= 1 and 0 <= self.error_ratio <= 1,
               "ratios are between 0 and 1")
        _check(self.unknown_ratio + self.error_ratio <= 1,
               "--unknown-ratio plus --error-ratio cannot exceed 1")
        _check(self.max_request_bytes >= 2, "max_request_bytes must be at least 2")
        _check(self.processes is None or self.processes >= 1, "processes must be at least 1")
        _check(self.event_loop in EVENT_LOOPS, f"the event loop is one of {', '.join(EVENT_LOOPS)}")

    @property
    def open_loop(self) -> bool:
        """True when requests follow a schedule (``rate``) rather than answers."""
        return self.rate is not None

    @property
    def process_count(self) -> int:
        """The processes actually used: never more than there are connections."""
        wanted = self.processes or default_processes(self.connections)
        return min(wanted, self.connections)


def questions_from_table(table: dict[bytes, bytes],
                         only: list[bytes] | None = None) -> tuple[tuple[bytes, bytes], ...]:
    """The (question, answer) pairs to ask: the whole table, or just ``only`` from it."""
    if not only:
        return tuple(table.items())
    missing = [question for question in only if question not in table]
    if missing:
        raise ZenserveError(f"question {missing[0].decode(errors='replace')!r} is not in the table")
    return tuple((question, table[question]) for question in dict.fromkeys(only))


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ZenserveError(message)
