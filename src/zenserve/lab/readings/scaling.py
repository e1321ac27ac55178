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


def _second_worker(kind: str, one: dict[str, Point], two: dict[str, Point]) -> list[str]:
    """What ``--workers 2`` did, where its runs and the single worker's do not overlap."""
    pairs = [(name, one[name], two[name]) for name in one
             if name in two and one[name].median > 0]
    helped = [f"{name} ×{after.median / before.median:.2f}" for name, before, after in pairs
              if after.median >= HELPS * before.median and analysis.above(after, before)]
    flat = [f"{name} ×{after.median / before.median:.2f}" for name, before, after in pairs
            if after.median < NO_GAIN * before.median]
    sentences = []
    if helped:
        sentences.append(f"A second worker process helps with the {kind} cost: "
                         f"{names(helped)}.")
    if flat:
        sentences.append(f"A second worker adds little with the {kind} cost: {names(flat)}.")
    return sentences
