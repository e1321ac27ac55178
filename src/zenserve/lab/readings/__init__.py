"""A short plain-language reading of each figure, generated from the measured points.

Every number and every verdict in these sentences comes from the points (via
``zenserve.lab.analysis``); nothing says what an architecture "should" do.
Run on other data, the same code says other things. A growth, a lead or a
gain is claimed only where the runs behind the medians do not overlap.
"""

from __future__ import annotations

from collections.abc import Sequence

from zenserve.lab.plan import Plan
from zenserve.lab.points import Point
from zenserve.lab.readings.clients import availability, concurrency, worker_kill
from zenserve.lab.readings.scaling import scalability
from zenserve.lab.readings.speed import latency, throughput

__all__ = ["all_readings", "availability", "concurrency", "latency", "scalability",
           "throughput", "worker_kill"]


def all_readings(points: Sequence[Point], plan: Plan) -> dict[str, list[str]]:
    """The reading of every section, by section name."""
    return {
        "throughput": throughput(points),
        "latency": latency(points, plan),
        "concurrency": concurrency(points),
        "availability": availability(points),
        "scalability": scalability(points, plan),
    }
