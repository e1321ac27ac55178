"""Section 4a, availability and reliability: normal clients beside misbehaving ones.

Normal clients ask at a fixed open-loop rate (the one section 2 found every
architecture sustains), a new connection per request; misbehaving clients
(``zenserve.lab.misbehave``) run beside them. The success ratio is the share
of the requests the normal clients meant to send in the measured time that
got their correct answer; p99 is their latency from the intended send time.
"""

from __future__ import annotations

import math

from zenserve.lab.misbehave import misbehaving
from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, summarize
from zenserve.lab.runner import Lab, bench_options, generator_limited
from zenserve.load import BenchResult

SECTION = "availability"


def steps(plan: Plan) -> int:
    """Load runs this part of the section makes for one architecture."""
    return len(plan.conditions) * plan.availability_timing.repetitions


def success_ratio(result: BenchResult) -> float:
    """Correct answers over the requests the schedule wanted in the measured time (at most 1)."""
    rate = result.options.rate
    if rate is None:
        total = result.requests + result.errors_total + result.unfinished
        return result.requests / total if total else 0.0
    return min(1.0, result.requests / (rate * result.duration_s))


def measure(lab: Lab, plan: Plan, architecture: str, port: int, rate: float) -> list[Point]:
    """The server at ``port`` under every condition, at ``rate`` normal requests per second."""
    timing = plan.availability_timing
    runs: dict[str, list[BenchResult]] = {condition: [] for condition in plan.conditions}
    for repetition in range(1, timing.repetitions + 1):
        for condition in plan.conditions:
            what = f"{architecture}, misbehaving clients: {condition}"
            lab.reporter.step(f"{what} (run {repetition}/{timing.repetitions})")
            options = bench_options(port, plan.latency_slots, timing.warmup, timing.duration,
                                    rate=rate, connection_per_request=True)
            lab.settle(port)
            with misbehaving(lab.host, port, condition):
                result = lab.bench(options, what)
            if result is not None:
                runs[condition].append(result)
            lab.reporter.advance()
    points: list[Point] = []
    for condition, results in runs.items():
        points += _summaries(architecture, condition, rate, results)
    return points


def _summaries(architecture: str, condition: str, rate: float,
               results: list[BenchResult]) -> list[Point]:
    saturated = any(generator_limited(result) for result in results)
    where = {"condition": condition, "x_name": "rate_rps", "x": rate}
    return [
        summarize(SECTION, architecture, "success_ratio",
                  [success_ratio(result) for result in results], saturated, **where),
        summarize(SECTION, architecture, "latency_p99_ms",
                  [result.latency.p99 if result.requests else math.nan for result in results],
                  saturated, **where),
        summarize(SECTION, architecture, "failed_requests",
                  [result.errors_total + result.unfinished for result in results],
                  saturated, **where),
    ]
