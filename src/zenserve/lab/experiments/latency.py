"""Section 2, response time: latency at a rate every architecture sustains, and a rate ladder.

Open loop (latency counted from each request's intended send time), and a new
connection for every request, as the book's clients do: with persistent
connections a one-client-at-a-time server would serve one connection and
none of the others at any rate. Each architecture's closed-loop peak is
measured first; the ladder's rungs are fractions of the highest peak, and the
fixed rate is half the lowest, so every architecture can sustain it.
"""

from __future__ import annotations

import math

from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, summarize
from zenserve.lab.runner import Lab, bench_options, generator_limited
from zenserve.load import BenchResult

SECTION = "latency"
FIXED_RATE = "fixed rate"
CALIBRATION = "calibration_peak_rps"
# The fixed rate is this share of the slowest architecture's peak.
FIXED_SHARE = 0.5
PERCENTILES = ("p50", "p90", "p99", "p999", "max")


def steps(plan: Plan) -> int:
    """Load runs of one architecture's ladder (at most: the fixed rate may fall on a rung)."""
    return (len(plan.rate_fractions) + 1) * plan.timing.repetitions


def round_rate(rate: float) -> float:
    """Two significant digits, at least 10 req/s: rungs read as round numbers."""
    if rate < 10:
        return 10.0
    scale = 10 ** (math.floor(math.log10(rate)) - 1)
    return float(round(rate / scale) * scale)


def choose_rates(peaks: dict[str, float],
                 fractions: tuple[float, ...]) -> tuple[list[float], float]:
    """The ladder's rungs (fractions of the highest peak) and the fixed rate (half the lowest)."""
    measured = [peak for peak in peaks.values() if peak > 0]
    if not measured:
        return [], 0.0
    fixed = round_rate(FIXED_SHARE * min(measured))
    rungs = {round_rate(fraction * max(measured)) for fraction in fractions}
    return sorted(rungs | {fixed}), fixed


def calibrate(lab: Lab, plan: Plan, architecture: str, port: int) -> Point:
    """The closed-loop peak of the server at ``port`` with a new connection per request."""
    timing = plan.timing
    lab.reporter.step(f"{architecture}: peak rate with a connection per request")
    options = bench_options(port, plan.latency_slots, timing.warmup, timing.duration,
                            connection_per_request=True)
    result = lab.bench(options, f"{architecture} peak rate")
    lab.reporter.advance()
    peak = result.throughput_rps if result is not None else math.nan
    return summarize(SECTION, architecture, CALIBRATION, [peak],
                     result is not None and generator_limited(result))


def peaks_of(points: list[Point]) -> dict[str, float]:
    """The calibrated peak of each architecture (0 where it could not be measured)."""
    return {point.architecture: point.median if point.measured else 0.0
            for point in points if point.section == SECTION and point.metric == CALIBRATION}


def ladder(lab: Lab, plan: Plan, architecture: str, port: int, rungs: list[float],
           fixed: float) -> list[Point]:
    """The server at ``port`` at every rate of the ladder, ``repetitions`` times each."""
    timing = plan.timing
    runs: dict[float, list[BenchResult]] = {rate: [] for rate in rungs}
    for repetition in range(1, timing.repetitions + 1):
        for rate in rungs:
            what = f"{architecture} at {rate:,.0f} req/s"
            lab.reporter.step(f"{what} (run {repetition}/{timing.repetitions})")
            options = bench_options(port, plan.latency_slots, timing.warmup, timing.duration,
                                    rate=rate, connection_per_request=True)
            lab.settle(port)
            result = lab.bench(options, what)
            if result is not None:
                runs[rate].append(result)
            lab.reporter.advance()
    # The plan counted a rung for the fixed rate; it may have fallen on another.
    lab.reporter.advance(steps(plan) - len(rungs) * timing.repetitions)
    points: list[Point] = []
    for rate, results in runs.items():
        points += _summaries(architecture, rate, results, FIXED_RATE if rate == fixed else "")
    return points


def _summaries(architecture: str, rate: float, results: list[BenchResult],
               condition: str) -> list[Point]:
    saturated = any(generator_limited(result) for result in results)
    where = {"x_name": "target_rps", "x": rate, "condition": condition}
    points = [
        summarize(SECTION, architecture, "achieved_rps",
                  [result.throughput_rps for result in results], saturated, **where),
        summarize(SECTION, architecture, "failed_requests",
                  [result.errors_total + result.unfinished for result in results],
                  saturated, **where),
    ]
    for percentile in PERCENTILES:
        values = [getattr(result.latency, percentile) if result.requests else math.nan
                  for result in results]
        points.append(summarize(SECTION, architecture, f"latency_{percentile}_ms", values,
                                saturated, **where))
    service = [result.service_time.p99 if result.service_time and result.requests else math.nan
               for result in results]
    points.append(summarize(SECTION, architecture, "service_p99_ms", service, saturated,
                            **where))
    return points
