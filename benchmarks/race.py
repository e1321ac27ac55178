"""Race several running servers under the C load generator, interleaved, and keep every sample.

Noise on a shared machine comes in waves, so no contender gets its runs in a
block: each round visits every connection count and, within it, every
contender, starting the rotation one place further each round.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reference import LoadResult, run_reference_load

# A point that timed out once would only time out again (its connects queue):
# it is not repeated, so that a bounded run stays short.
TIMED_OUT = "timed out"


@dataclass(slots=True)
class Entrant:
    """A contender in one race: its port, or why it could not start."""

    label: str
    port: int | None
    start_failure: str = ""


@dataclass(slots=True)
class Point:
    """Every sample of one contender at one connection count."""

    results: list[LoadResult] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [result.rate for result in self.results if result.rate is not None]

    @property
    def median(self) -> float | None:
        """The median rate of the successful runs (None if none succeeded)."""
        rates = self.rates
        return statistics.median(rates) if rates else None

    @property
    def failures(self) -> list[str]:
        return [result.failure for result in self.results if result.rate is None]


@dataclass(frozen=True, slots=True)
class RaceSettings:
    """How hard and how long each contender is driven."""

    connection_counts: tuple[int, ...]
    rounds: int
    seconds: float


def run_race(group: str, entrants: Sequence[Entrant], settings: RaceSettings,
             load: Path) -> dict[tuple[str, int], Point]:
    """Drive every entrant at every connection count, ``settings.rounds`` times, interleaved."""
    points = {(entrant.label, count): Point()
              for entrant in entrants for count in settings.connection_counts}
    for entrant in entrants:
        if entrant.port is None:
            for count in settings.connection_counts:
                points[entrant.label, count].results.append(
                    LoadResult(None, f"did not start: {entrant.start_failure}"))
    runnable = [entrant for entrant in entrants if entrant.port is not None]
    for round_number in range(settings.rounds):
        shift = round_number % max(1, len(runnable))
        order = runnable[shift:] + runnable[:shift]
        for count in settings.connection_counts:
            for entrant in order:
                point = points[entrant.label, count]
                if any(TIMED_OUT in failure for failure in point.failures):
                    continue
                assert entrant.port is not None
                result = run_reference_load(load, entrant.port, count, settings.seconds)
                point.results.append(result)
                shown = f"{result.rate:,.0f} req/s" if result.rate is not None else result.failure
                print(f"  [{group}] round {round_number + 1}, {count:>3} conns, "
                      f"{entrant.label}: {shown}", file=sys.stderr, flush=True)
    return points
