"""Readings of sections 3 and 4: clients served at once, misbehaving clients, a killed worker."""

from __future__ import annotations

import math
from collections.abc import Sequence

from zenserve.lab import analysis
from zenserve.lab.plan import BASELINE, MIXED
from zenserve.lab.points import Point, select
from zenserve.lab.wording import count, millis, names, percent

# Success ratios at or above this count as unharmed; below HARMED, as harmed.
UNHARMED = 0.99
HARMED = 0.9
# Up to this many architectures, each one's p99 change is spelt out.
DETAILED = 3
# The misbehaving clients of each condition, in words (see zenserve.lab.misbehave).
MISBEHAVING = {
    MIXED: "misbehaving clients of all three kinds",
    "half-question-leave": "clients that send half a question and leave",
    "stalled-half-question": "clients stalled in mid-question",
    "reset": "clients that reset their connections",
}


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
        low, high = percent(min(baseline)), percent(max(baseline))
        share = low if low == high else f"{low} to {high}"
        sentences.append(f"With no misbehaving clients, normal clients got {share} of their "
                         f"requests answered.")
    conditions = dict.fromkeys(condition for _, condition in success if condition != BASELINE)
    for condition in conditions:
        who = MISBEHAVING.get(condition, f"{condition} clients")
        ratios = {name: value for (name, cond), value in success.items() if cond == condition}
        harmed = [name for name, value in ratios.items() if value < HARMED]
        unharmed = [name for name, value in ratios.items() if value >= UNHARMED]
        for name in harmed:
            latency = p99.get((name, condition), math.nan)
            detail = "no answer at all" if math.isnan(latency) else f"p99 {millis(latency)}"
            sentences.append(f"With {who} mixed in, {name} answered only "
                             f"{percent(ratios[name])} of normal requests ({detail}).")
        if unharmed:
            before = {name: p99.get((name, BASELINE), math.nan) for name in unharmed}
            after = {name: p99.get((name, condition), math.nan) for name in unharmed}
            sentences.append(f"With {who}, {names(unharmed)} still answered "
                             f"{percent(UNHARMED)} or more ({_p99_change(before, after)}).")
    return sentences + worker_kill(points)


def _p99_change(before: dict[str, float], after: dict[str, float]) -> str:
    """Each p99 before and after, or for many architectures only the largest change."""
    if len(before) <= DETAILED:
        return "p99 " + names([f"{name} {millis(before[name])} → {millis(after[name])}"
                               for name in before])
    factors = {name: after[name] / before[name] for name in before
               if before[name] > 0 and not math.isnan(after[name] / before[name])}
    if not factors:
        return "p99 not measured"
    worst = max(factors, key=lambda name: max(factors[name], 1 / factors[name]))
    return (f"the largest change of p99 was {worst}'s, {millis(before[worst])} → "
            f"{millis(after[worst])}")


def worker_kill(points: Sequence[Point]) -> list[str]:
    """Section 4b: what a killed worker cost, and how fast it was replaced."""
    section = select(points, section="worker_kill")
    lost = {point.architecture: point for point in select(section, metric="requests_lost")
            if point.measured}
    recovery = {point.architecture: point for point in select(section, metric="recovery_ms")
                if point.measured}
    if len(lost) > DETAILED:
        return [_worker_kill_summary(lost, recovery)]
    sentences = []
    for name, point in lost.items():
        spread = (f" (runs: {point.low:,.0f} to {point.high:,.0f})"
                  if point.low != point.high else "")
        replaced = (f"a replacement worker was running {recovery[name].median:,.0f} ms later"
                    if name in recovery else "no replacement worker was seen")
        sentences.append(f"Killing one of {name}'s {point.workers} workers mid-run lost "
                         f"{point.median:,.0f} normal requests{spread}; {replaced}.")
    return sentences


def _worker_kill_summary(lost: dict[str, Point], recovery: dict[str, Point]) -> str:
    most = max(lost.values(), key=lambda point: point.median)
    text = (f"Killing one of {most.workers} workers mid-run lost at most "
            f"{most.median:,.0f} normal requests (median of runs; {most.architecture})")
    if recovery:
        fastest = min(recovery.values(), key=lambda point: point.median)
        slowest = max(recovery.values(), key=lambda point: point.median)
        text += (f"; a replacement worker was running {fastest.median:,.0f} ms "
                 f"({fastest.architecture}) to {slowest.median:,.0f} ms "
                 f"({slowest.architecture}) later")
    missing = [name for name in lost if name not in recovery]
    if missing:
        text += f"; no replacement was seen for {names(missing)}"
    return text + "."
