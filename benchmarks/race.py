"""Race several running servers under the C load generator, interleaved, and keep every sample.

Noise on a shared machine comes in waves, so no contender gets its runs in a
block: each round visits every connection count and, within it, every
contender, starting the rotation one place further each round.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from reference import LoadResult, run_reference_load

T = TypeVar("T")

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
        return median_present(self.rates)

    @property
    def failures(self) -> list[str]:
        return [result.failure for result in self.results if result.rate is None]


@dataclass(frozen=True, slots=True)
class RaceSettings:
    """How hard and how long each contender is driven."""

    connection_counts: tuple[int, ...]
    rounds: int
    seconds: float


def median_present(values: Iterable[float | None]) -> float | None:
    """The median of the values measured (None and 0 mean none was); None when there are none."""
    present = [value for value in values if value]
    return statistics.median(present) if present else None


def interleaved(contenders: Sequence[T], counts: Sequence[int],
                rounds: int) -> Iterator[tuple[int, int, T]]:
    """(round, connection count, contender) in the order a race drives them.

    Each round visits every count and, within it, every contender, starting
    the rotation one place further each round (see the module docstring).
    """
    for round_number in range(rounds):
        shift = round_number % max(1, len(contenders))
        order = [*contenders[shift:], *contenders[:shift]]
        for count in counts:
            for contender in order:
                yield round_number, count, contender


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
    for round_number, count, entrant in interleaved(runnable, settings.connection_counts,
                                                    settings.rounds):
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
