"""Findings derived from measured points: peaks, knees, capacities. Used by readings and figures.

Nothing here knows what an architecture should do; every finding is computed
from the points, with the thresholds below.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from zenserve.lab.points import Point, architectures_of, select

# A curve has stopped growing once it is within this share of its peak, and
# grows at all only if its peak is at least GROWS times its first point.
NEAR_PEAK = 0.9
GROWS = 1.25
# A rung of the rate ladder is sustained when at least this share of the
# target rate was answered, no more than this share failed, and p99 stayed
# within this factor of the lowest rung's p99 (plus a small absolute margin:
# a 0.2 ms p99 tripling to 0.6 ms is not a knee).
SUSTAINED_SHARE = 0.9
FAILED_SHARE = 0.01
KNEE_FACTOR = 5.0
KNEE_MARGIN_MS = 2.0
# Served fractions at or above this count as "every probe", at or below as none.
ALL_SERVED = 0.99
NONE_SERVED = 0.0


def curve(points: Sequence[Point], **where: object) -> list[Point]:
    """The points matching ``where`` that lie on a curve, sorted by x."""
    on_curve = [point for point in select(points, **where) if point.x is not None]
    return sorted(on_curve, key=lambda point: point.x or 0.0)


def value_at(points: Sequence[Point], x: float, **where: object) -> float:
    """The median of the one point at ``x`` matching ``where`` (NaN if there is none)."""
    for point in select(points, **where):
        if point.x == x:
            return point.median
    return math.nan


@dataclass(frozen=True, slots=True)
class ThroughputShape:
    """How one architecture's throughput curve rises, peaks and ends (points: median and spread)."""

    architecture: str
    first: Point
    peak: Point
    last: Point
    grows_until: float  # the fewest connections within NEAR_PEAK of the peak
    p99_at_last: float  # latency at the last point, ms
    slowest_at_last: float

    @property
    def growth(self) -> float:
        """Peak over the first point's throughput (medians)."""
        return self.peak.median / self.first.median if self.first.median > 0 else math.inf

    @property
    def grows(self) -> bool:
        """The peak is well above the first point, and every run says so (no overlap)."""
        return self.growth >= GROWS and above(self.peak, self.first)

    @property
    def flat(self) -> bool:
        """The peak is hardly above the first point."""
        return self.growth < GROWS


def above(higher: Point, lower: Point) -> bool:
    """Every run of ``higher`` measured more than every run of ``lower``."""
    return higher.low > lower.high


def throughput_shapes(points: Sequence[Point]) -> list[ThroughputShape]:
    """One shape per architecture with a measured throughput curve."""
    shapes = []
    section = select(points, section="throughput")
    for architecture in architectures_of(section):
        line = [point for point in curve(section, architecture=architecture,
                                         metric="throughput_rps") if point.measured]
        if not line:
            continue
        peak = max(line, key=lambda point: point.median)
        near = next(point for point in line if point.median >= NEAR_PEAK * peak.median)
        last = line[-1]
        at_last = {"architecture": architecture, "x": last.x}
        shapes.append(ThroughputShape(
            architecture, line[0], peak, last, near.x or 0.0,
            _median(section, metric="latency_p99_ms", **at_last),
            _median(section, metric="latency_max_ms", **at_last)))
    return shapes


def _median(points: Sequence[Point], **where: object) -> float:
    chosen = select(points, **where)
    return chosen[0].median if chosen else math.nan


def fixed_rate(points: Sequence[Point]) -> float | None:
    """The rate of section 2 every architecture was meant to sustain (None if not measured)."""
    fixed = [point.x for point in select(points, section="latency", condition="fixed rate")]
    return fixed[0] if fixed else None


@dataclass(frozen=True, slots=True)
class Rung:
    """One architecture at one rate of the ladder."""

    rate: float
    achieved: float
    failed: float
    p99: float
    service_p99: float

    def sustained(self, baseline_p99: float, measured_seconds: float) -> bool:
        """Answered enough of the rate, with few failures and p99 near the baseline."""
        limit = max(KNEE_FACTOR * baseline_p99, baseline_p99 + KNEE_MARGIN_MS)
        return (self.achieved >= SUSTAINED_SHARE * self.rate
                and self.failed <= FAILED_SHARE * self.rate * measured_seconds
                and not math.isnan(self.p99) and self.p99 <= limit)


def rungs(points: Sequence[Point], architecture: str) -> list[Rung]:
    """The ladder of one architecture, lowest rate first."""
    where = {"section": "latency", "architecture": architecture}
    return [Rung(rate=point.x or 0.0, achieved=point.median,
                 failed=value_at(points, point.x or 0.0, metric="failed_requests", **where),
                 p99=value_at(points, point.x or 0.0, metric="latency_p99_ms", **where),
                 service_p99=value_at(points, point.x or 0.0, metric="service_p99_ms", **where))
            for point in curve(points, metric="achieved_rps", **where)]


@dataclass(frozen=True, slots=True)
class Knee:
    """Where an architecture's latency turns up: the last sustained rung and the one above it."""

    architecture: str
    baseline: Rung  # the rung with the best p99
    last_sustained: Rung | None
    first_broken: Rung | None


def knees(points: Sequence[Point], measured_seconds: float) -> list[Knee]:
    """The knee of every architecture on the ladder (``measured_seconds`` per run).

    The bar is the architecture's best p99 on the whole ladder (a noisy low
    rung must not raise it); the knee is the highest rung that meets it, and
    the rung above it the first one that does not.
    """
    found = []
    for architecture in architectures_of(select(points, section="latency")):
        ladder = rungs(points, architecture)
        measured = [rung for rung in ladder if not math.isnan(rung.p99)]
        if not measured:
            continue
        baseline = min(measured, key=lambda rung: rung.p99)
        met = [rung.sustained(baseline.p99, measured_seconds) for rung in ladder]
        highest = max((index for index, ok in enumerate(met) if ok), default=None)
        last = ladder[highest] if highest is not None else None
        following = 0 if highest is None else highest + 1
        broken = ladder[following] if following < len(ladder) else None
        found.append(Knee(architecture, baseline, last, broken))
    return found


@dataclass(frozen=True, slots=True)
class Capacity:
    """How many idle connections an architecture tolerates before probes go unanswered."""

    architecture: str
    all_served_until: float | None  # the most idle connections with every probe answered
    none_served_from: float | None  # the fewest idle connections with no probe answered
    largest: float  # the most idle connections tried
    partly: tuple[tuple[float, float], ...]  # (idle connections, served fraction) in between


def capacities(points: Sequence[Point]) -> list[Capacity]:
    """One capacity per architecture of the concurrency section."""
    found = []
    section = select(points, section="concurrency", metric="served_fraction")
    for architecture in architectures_of(section):
        line = [point for point in curve(section, architecture=architecture) if point.measured]
        if not line:
            continue
        all_until: float | None = None
        for point in line:
            if point.median < ALL_SERVED:
                break
            all_until = point.x
        none_from = next((point.x for point in line if point.median <= NONE_SERVED), None)
        partly = tuple((point.x or 0.0, point.median) for point in line
                       if NONE_SERVED < point.median < ALL_SERVED)
        found.append(Capacity(architecture, all_until, none_from, line[-1].x or 0.0, partly))
    return found


def requests_in_progress(throughput_rps: float, cost_seconds: float) -> float:
    """How many requests' worth of cost were being spent at once (Little's law on the cost)."""
    return throughput_rps * cost_seconds
