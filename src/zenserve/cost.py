"""The simulated cost of answering, as listing 7-1's ``time.sleep(0.0)`` hints.

``block`` sleeps and stalls whatever thread runs it (an event loop too, the
book's warning); ``io`` is a wait that event loops await without stalling
(thread architectures simply sleep); ``cpu`` is busy work holding the GIL.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from enum import StrEnum

from zenserve.errors import ZenserveError


class CostKind(StrEnum):
    BLOCK = "block"
    IO = "io"
    CPU = "cpu"


_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|ms|us|µs)?\s*$")


def parse_duration(text: str) -> float:
    """Parse ``2ms``, ``100us``, ``0.5s`` or plain seconds into seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ZenserveError(f"bad duration {text!r}: use e.g. 2ms, 100us, 0.5s")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


@dataclass(frozen=True, slots=True)
class Cost:
    """How long answering one request takes, and what kind of waiting it is."""

    seconds: float = 0.0
    kind: CostKind = CostKind.BLOCK

    @property
    def is_free(self) -> bool:
        return self.seconds <= 0.0

    def spend(self) -> None:
        """Spend the cost in the calling thread (io waits sleep here too)."""
        if self.kind is CostKind.CPU:
            burn_cpu(self.seconds)
        else:
            time.sleep(self.seconds)


def burn_cpu(seconds: float) -> None:
    """Busy-work until this thread has used ``seconds`` of CPU time (GIL held between checks)."""
    # Thread CPU time, not wall time: a thread descheduled mid-burn (another
    # process on the core, another thread holding the GIL) would otherwise
    # finish its "100 us of CPU" having done less work, and a busy machine would
    # make the cost cheaper. thread_time() advances only while this thread runs.
    deadline = time.thread_time() + seconds
    total = 0
    while time.thread_time() < deadline:
        for value in range(200):
            total += value * value


# No simulated cost: the default everywhere (a zero cost must cost nothing).
FREE = Cost()
