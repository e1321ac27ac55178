"""Reading of section 5: the cost knob, architectures and a second worker process."""

from __future__ import annotations

from collections.abc import Sequence

from zenserve.cost import parse_duration
from zenserve.lab import analysis
from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, select
from zenserve.lab.readings.notes import notes
from zenserve.lab.wording import names, rate

# A second worker "helps" past this ratio and "does not" below NO_GAIN.
HELPS = 1.3
NO_GAIN = 1.15


def scalability(points: Sequence[Point], plan: Plan) -> list[str]:
    """Section 5: for each cost kind, who overlaps the cost, and what a second worker adds."""
    cost_seconds = parse_duration(plan.cost)
    section = select(points, section="scalability", metric="throughput_rps")
    sentences = []
    for kind in dict.fromkeys(point.cost_kind for point in section):
        one = {point.architecture: point
               for point in select(section, cost_kind=kind, workers=1) if point.measured}
        two = {point.architecture: point
               for point in select(section, cost_kind=kind, workers=2) if point.measured}
        if one and cost_seconds > 0:
            ranked = sorted(one.values(), key=lambda point: point.median, reverse=True)
            overlap = names([f"{point.architecture} {rate(point.median)} (≈"
                              f"{analysis.requests_in_progress(point.median, cost_seconds):.1f})"
                              for point in ranked])
            sentences.append(f"With a {plan.cost} {kind} cost and one worker (in brackets, "
                             f"how many requests' cost was being paid at once, req/s × "
                             f"{plan.cost}): {overlap}.")
        sentences += _second_worker(kind, one, two)
    return sentences + notes(section)


def _verdict(before: Point, after: Point) -> str:
    """``helps``, ``flat`` or ``unclear``: what going from one worker to two did."""
    if after.median >= HELPS * before.median and analysis.above(after, before):
        return "helps"
    return "flat" if after.median < NO_GAIN * before.median else "unclear"


SECOND_WORKER = {
    "helps": "A second worker process helps with the {kind} cost: {which}.",
    "flat": "A second worker adds little with the {kind} cost: {which}.",
    "unclear": ("What a second worker adds with the {kind} cost is unclear (a modest gain, or "
                "runs that overlap): {which}."),
}


def _second_worker(kind: str, one: dict[str, Point], two: dict[str, Point]) -> list[str]:
    """What ``--workers 2`` did to each architecture, grouped by verdict."""
    grouped: dict[str, list[str]] = {verdict: [] for verdict in SECOND_WORKER}
    for name, before in one.items():
        after = two.get(name)
        if after is not None and before.median > 0:
            grouped[_verdict(before, after)].append(
                f"{name} ×{after.median / before.median:.2f}")
    return [SECOND_WORKER[verdict].format(kind=kind, which=names(which))
            for verdict, which in grouped.items() if which]
