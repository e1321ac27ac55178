"""A short plain-language reading of each figure, generated from the measured points.

Every number and every verdict in these sentences comes from the points (via
``zenserve.lab.analysis``); nothing says what an architecture "should" do.
Run on other data, the same code says other things.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from zenserve.cost import parse_duration
from zenserve.lab import analysis
from zenserve.lab.plan import BASELINE, Plan
from zenserve.lab.points import Point, architectures_of, select
from zenserve.lab.wording import count, millis, names, percent, rate

# Spread (highest minus lowest, over the median) beyond which runs disagreed.
NOISY_SPREAD = 0.3
# A slowest answer this many times the p99 means a few clients waited, not all.
WAITED = 20
# Success ratios at or above this count as unharmed; below HARMED, as harmed.
UNHARMED = 0.99
HARMED = 0.9
# A second worker "helps" past this ratio and "does not" below NO_GAIN.
HELPS = 1.3
NO_GAIN = 1.15


def throughput(points: Sequence[Point]) -> list[str]:
    """Section 1: where each curve peaks, whether it grows, who leads at the most connections."""
    sentences = [_shape(shape) + "." for shape in analysis.throughput_shapes(points)]
    sentences += _leader(points)
    return sentences + _notes(select(points, section="throughput", metric="throughput_rps"))


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


def _notes(points: Sequence[Point]) -> list[str]:
    """Where the generator was the limit, and where repeated runs disagreed."""
    notes = []
    saturated = [point for point in points if point.saturated]
    if saturated:
        where = names([f"{point.architecture} ({point.x_name} {point.x:,.0f})"
                        if point.x is not None else point.architecture
                        for point in saturated[:4]])
        more = f" and {len(saturated) - 4} more" if len(saturated) > 4 else ""
        notes.append(f"The load generator used a full core at {where}{more}: those points "
                     f"(hollow markers) show the generator's limit as much as the server's.")
    noisy = [point for point in points if point.measured and point.median > 0
             and (point.high - point.low) / point.median > NOISY_SPREAD]
    if noisy:
        notes.append(f"Repeated runs disagreed by more than {NOISY_SPREAD:.0%} at "
                     f"{len(noisy)} of {len(points)} points (see the error bars): treat those "
                     f"differences as noise of this machine.")
    return notes


def latency(points: Sequence[Point], plan: Plan) -> list[str]:
    """Section 2: percentiles at the fixed rate, and each architecture's knee."""
    sentences = []
    fixed = analysis.fixed_rate(points)
    if fixed is not None:
        sentences += _at_fixed_rate(points, fixed, plan.timing.duration)
    for knee in analysis.knees(points, plan.timing.duration):
        sentences.append(_knee(knee))
    return sentences + _notes(select(points, section="latency", metric="achieved_rps"))


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


def concurrency(points: Sequence[Point]) -> list[str]:
    """Section 3: how many clients each architecture serves at once."""
    sentences = []
    for capacity in analysis.capacities(points):
        name, none_from = capacity.architecture, capacity.none_served_from
        if none_from is None:
            text = (f"{name} answered every probe with up to "
                    f"{count(capacity.largest, 'idle connection')} held open")
            if capacity.partly:
                text += (" except at " + names([f"{idle:,.0f} ({percent(share)})"
                                                  for idle, share in capacity.partly]))
            sentences.append(text + ".")
            continue
        until = capacity.all_served_until
        if until is None:
            sentences.append(f"{name} answered no probe at all, even with no idle connection.")
            continue
        at_once = (f"it serves {count(none_from, 'client')} at a time"
                   if none_from == until + 1 else
                   f"it serves between {until + 1:,.0f} and {none_from:,.0f} clients at a time")
        sentences.append(f"{name} answers probes while {count(until, 'idle connection')} "
                         f"are held, and none once {none_from:,.0f} are: {at_once}; the rest "
                         f"wait in the listen backlog.")
    return sentences


def availability(points: Sequence[Point]) -> list[str]:
    """Section 4: normal clients beside misbehaving ones, and a killed worker."""
    sentences = []
    section = select(points, section="availability")
    success = {(point.architecture, point.condition): point.median
               for point in select(section, metric="success_ratio")}
    p99 = {(point.architecture, point.condition): point.median
           for point in select(section, metric="latency_p99_ms")}
    baseline = [value for (_, condition), value in success.items() if condition == BASELINE]
    if baseline:
        sentences.append(f"With no misbehaving clients, normal clients got "
                         f"{percent(min(baseline))} to {percent(max(baseline))} of their "
                         f"requests answered.")
    conditions = dict.fromkeys(condition for _, condition in success if condition != BASELINE)
    for condition in conditions:
        ratios = {name: value for (name, cond), value in success.items() if cond == condition}
        harmed = [name for name, value in ratios.items() if value < HARMED]
        unharmed = [name for name, value in ratios.items() if value >= UNHARMED]
        for name in harmed:
            latency = p99.get((name, condition), math.nan)
            detail = "no answer at all" if math.isnan(latency) else f"p99 {millis(latency)}"
            sentences.append(f"With {condition} clients mixed in, {name} answered only "
                             f"{percent(ratios[name])} of normal requests ({detail}).")
        if unharmed:
            changes = names([f"{name} {millis(p99.get((name, BASELINE), math.nan))} → "
                              f"{millis(p99.get((name, condition), math.nan))}"
                              for name in unharmed])
            sentences.append(f"With {condition} clients, {names(unharmed)} still answered "
                             f"{percent(UNHARMED)} or more (p99 {changes}).")
    return sentences + worker_kill(points)


def worker_kill(points: Sequence[Point]) -> list[str]:
    """Section 4b: what a killed worker cost, and how fast it was replaced."""
    sentences = []
    section = select(points, section="worker_kill")
    for name in architectures_of(section):
        lost = select(section, architecture=name, metric="requests_lost")
        recovery = select(section, architecture=name, metric="recovery_ms")
        if not lost or not lost[0].measured:
            continue
        spread = (f" (runs: {lost[0].low:,.0f} to {lost[0].high:,.0f})"
                  if lost[0].low != lost[0].high else "")
        replaced = (f"a replacement worker was running {recovery[0].median:,.0f} ms later"
                    if recovery and recovery[0].measured
                    else "no replacement worker was seen")
        sentences.append(f"Killing one of {name}'s {lost[0].workers} workers mid-run lost "
                         f"{lost[0].median:,.0f} normal requests{spread}; {replaced}.")
    return sentences


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
    return sentences + _notes(section)


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


def all_readings(points: Sequence[Point], plan: Plan) -> dict[str, list[str]]:
    """The reading of every section, by section name."""
    return {
        "throughput": throughput(points),
        "latency": latency(points, plan),
        "concurrency": concurrency(points),
        "availability": availability(points),
        "scalability": scalability(points, plan),
    }
