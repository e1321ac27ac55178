"""Readings of sections 1 and 2: throughput against connections, and response time."""

from __future__ import annotations

import math
from collections.abc import Sequence

from zenserve.lab import analysis
from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, architectures_of, select
from zenserve.lab.readings.notes import notes
from zenserve.lab.wording import count, millis, names, rate

# A slowest answer this many times the p99 means a few clients waited, not all.
WAITED = 20


def throughput(points: Sequence[Point]) -> list[str]:
    """Section 1: where each curve peaks, whether it grows, who leads at the most connections."""
    sentences = [_shape(shape) + "." for shape in analysis.throughput_shapes(points)]
    sentences += _leader(points)
    return sentences + notes(select(points, section="throughput", metric="throughput_rps"))


def _shape(shape: analysis.ThroughputShape) -> str:
    name, first, peak, last = shape.architecture, shape.first, shape.peak, shape.last
    first_x, peak_x, last_x = first.x or 0.0, peak.x or 0.0, last.x or 0.0
    if shape.grows:
        text = (f"{name} grows from {rate(first.median)} with {count(first_x, 'connection')} "
                f"until about {count(shape.grows_until, 'connection')}, peaking at "
                f"{rate(peak.median)} with {peak_x:,.0f}")
        if last.median < analysis.NEAR_PEAK * peak.median and analysis.above(peak, last):
            text += f"; with {last_x:,.0f} it falls back to {rate(last.median)}"
        return text
    if not shape.flat:
        return (f"{name}'s median rises from {rate(first.median)} with "
                f"{count(first_x, 'connection')} to {rate(peak.median)} with {peak_x:,.0f}, "
                f"but its runs overlap: these runs cannot tell whether it grows")
    text = (f"{name} peaks at {rate(peak.median)} ({count(peak_x, 'connection')}) and does "
            f"not grow with more connections: with {count(last_x, 'connection')} it answers "
            f"{rate(last.median)}")
    if shape.slowest_at_last >= WAITED * max(shape.p99_at_last, 0.001):
        text += (f"; there p99 is {millis(shape.p99_at_last)} but the slowest answer took "
                 f"{millis(shape.slowest_at_last)}: some connections waited that long for an "
                 f"answer")
    return text


def _leader(points: Sequence[Point]) -> list[str]:
    shapes = analysis.throughput_shapes(points)
    most = max((shape.last.x or 0.0 for shape in shapes), default=0.0)
    at_most = [shape.last for shape in shapes if shape.last.x == most and shape.last.median > 0]
    if len(at_most) < 2:
        return []
    best = max(at_most, key=lambda point: point.median)
    worst = min(at_most, key=lambda point: point.median)
    if not analysis.above(best, worst):
        return [f"With {count(most, 'connection')} the medians run from "
                f"{rate(worst.median)} ({worst.architecture}) to {rate(best.median)} "
                f"({best.architecture}), but the runs overlap: none is clearly fastest there."]
    return [f"With {count(most, 'connection')} the fastest is {best.architecture} at "
            f"{rate(best.median)}, {best.median / worst.median:.1f}× {worst.architecture} "
            f"({rate(worst.median)})."]


def latency(points: Sequence[Point], plan: Plan) -> list[str]:
    """Section 2: percentiles at the fixed rate, and each architecture's knee."""
    sentences = []
    fixed = analysis.fixed_rate(points)
    if fixed is not None:
        sentences += _at_fixed_rate(points, fixed, plan.timing.duration)
    for knee in analysis.knees(points, plan.timing.duration):
        sentences.append(_knee(knee))
    return sentences + notes(select(points, section="latency", metric="achieved_rps"))


def _at_fixed_rate(points: Sequence[Point], fixed: float, seconds: float) -> list[str]:
    at = {architecture: {point.metric: point.median for point in select(
        points, section="latency", architecture=architecture, x=fixed)}
        for architecture in architectures_of(select(points, section="latency", x=fixed))}
    p99 = {name: values["latency_p99_ms"] for name, values in at.items()
           if not math.isnan(values.get("latency_p99_ms", math.nan))}
    sentences = []
    if p99:
        low, high = min(p99, key=p99.__getitem__), max(p99, key=p99.__getitem__)
        p50 = {name: at[name]["latency_p50_ms"] for name in p99}
        sentences.append(
            f"At {rate(fixed)} (the rate every architecture was to sustain), the median "
            f"response time runs from {millis(min(p50.values()))} to "
            f"{millis(max(p50.values()))}, and p99 from {millis(p99[low])} ({low}) to "
            f"{millis(p99[high])} ({high}).")
    failing = [name for name, values in at.items()
               if values.get("achieved_rps", 0.0) < analysis.SUSTAINED_SHARE * fixed
               or values.get("failed_requests", 0.0) > analysis.FAILED_SHARE * fixed * seconds]
    if failing:
        sentences.append(f"{names(failing)} did not sustain even that rate.")
    return sentences


def _knee(knee: analysis.Knee) -> str:
    name = knee.architecture
    broken = knee.first_broken
    last = knee.last_sustained
    if broken is None and last is not None:
        return (f"{name} kept p99 at {millis(last.p99)} up to the highest rate tried, "
                f"{rate(last.rate)}: its knee is beyond the ladder.")
    assert broken is not None
    why = (f"it answered only {rate(broken.achieved)}"
           if broken.achieved < analysis.SUSTAINED_SHARE * broken.rate
           else f"p99 rises to {millis(broken.p99)}")
    if not math.isnan(broken.p99) and broken.service_p99 > 0 \
            and broken.p99 >= 3 * broken.service_p99:
        why += (f", most of it waiting to be sent (the raw service time's p99 is "
                f"{millis(broken.service_p99)})")
    if last is None:
        return f"{name} did not sustain even the lowest rate, {rate(broken.rate)}: {why}."
    return (f"{name}'s knee is between {rate(last.rate)} (p99 {millis(last.p99)}) and "
            f"{rate(broken.rate)}, where {why}.")
