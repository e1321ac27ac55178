"""What one load run does: a frozen, validated description built once by the caller."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Formatter

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
        # Each rule names its settings in braces: the library's messages name
        # the fields, `zenserve bench` words the same rules with its flags.
        _check(self.connections >= 1, "{connections} must be at least 1")
        _check(self.rate is None or self.rate > 0, "{rate} must be more than 0 requests/s")
        _check(self.duration > 0, "{duration} must be more than 0")
        _check(self.warmup >= 0, "{warmup} cannot be negative")
        _check(self.timeout > 0, "{timeout} must be more than 0")
        _check(bool(self.questions), "{questions} must hold at least one known question")
        _check(0 <= self.unknown_ratio <= 1, "{unknown_ratio} must be between 0 and 1")
        _check(0 <= self.error_ratio <= 1, "{error_ratio} must be between 0 and 1")
        _check(self.unknown_ratio + self.error_ratio <= 1,
               "{unknown_ratio} plus {error_ratio} cannot exceed 1")
        _check(self.max_request_bytes >= 2, "{max_request_bytes} must be at least 2")
        _check(self.processes is None or self.processes >= 1, "{processes} must be at least 1")
        _check(self.event_loop in EVENT_LOOPS,
               f"{{event_loop}} must be one of {', '.join(EVENT_LOOPS)}")

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


class OptionError(ZenserveError):
    """A setting of ``BenchOptions`` out of range; the message names the settings as fields.

    ``worded(names)`` says the same with other names for the settings (a
    command line's flags): ``rule`` names each setting in braces.
    """

    def __init__(self, rule: str) -> None:
        self.rule = rule
        self.settings = tuple(field for _, field, _, _ in Formatter().parse(rule) if field)
        super().__init__(self.worded({}))

    def worded(self, names: Mapping[str, str]) -> str:
        """The message with each setting called what ``names`` calls it (else its field name)."""
        return self.rule.format_map({setting: names.get(setting, setting)
                                     for setting in self.settings})


def _check(condition: bool, rule: str) -> None:
    if not condition:
        raise OptionError(rule)
