"""A small fixed-bucket latency histogram: cheap to record, trivial to add and subtract.

Workers record every answer's latency into ~80 geometric buckets and send the
cumulative counts to the supervisor, which subtracts two snapshots to get the
counts of a canary step. Percentiles are read as the upper bound of the
bucket holding the rank: at most 25% high, never low.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# From 10 µs up, each bucket 25% wider than the last, to about 100 s; one more
# bucket (past the last bound) holds everything slower.
_FIRST_BOUND = 10e-6
_GROWTH = 1.25
_BUCKETS = 72
BOUNDS: tuple[float, ...] = tuple(_FIRST_BOUND * _GROWTH**index for index in range(_BUCKETS))
SIZE = _BUCKETS + 1


class LatencyHistogram:
    """Counts of latencies per bucket; ``record`` is one bisect and one increment."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts = [0] * SIZE

    def record(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BOUNDS, seconds)] += 1


def percentile(counts: Sequence[int], fraction: float) -> float | None:
    """The latency below which ``fraction`` of the recorded ones fall (None when empty)."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, round(fraction * total))
    seen = 0
    for index, count in enumerate(counts):
        seen += count
        if seen >= rank:
            return BOUNDS[index] if index < len(BOUNDS) else float("inf")
    return float("inf")


def subtract(later: Sequence[int], earlier: Sequence[int]) -> tuple[int, ...]:
    """Counts recorded between two cumulative snapshots."""
    if not earlier:
        return tuple(later)
    return tuple(now - before for now, before in zip(later, earlier, strict=True))


def add(first: Sequence[int], second: Sequence[int]) -> tuple[int, ...]:
    if not first:
        return tuple(second)
    if not second:
        return tuple(first)
    return tuple(one + other for one, other in zip(first, second, strict=True))
