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
from zenserve.lab.runner import Lab, bench_options, generator_limited, serve_arguments
from zenserve.load import BenchResult

SECTION = "latency"
TITLE = "2. Response time"
FIXED_RATE = "fixed rate"
# The fixed rate is this share of the slowest architecture's peak.
FIXED_SHARE = 0.5
PERCENTILES = ("p50", "p90", "p99", "p999", "max")


def steps(plan: Plan) -> int:
    """Load runs this section makes (one calibration per architecture, then the ladder)."""
    architectures = len(plan.latency_architectures)
    return architectures + architectures * (len(plan.rate_fractions) + 1) * plan.timing.repetitions


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


def run(lab: Lab, plan: Plan) -> list[Point]:
    """Calibrate each architecture, then climb the same ladder with each."""
    lab.reporter.section(TITLE, steps(plan))
    peaks = {architecture: _calibrate(lab, plan, architecture)
             for architecture in plan.latency_architectures}
    rungs, fixed = choose_rates(peaks, plan.rate_fractions)
    if not rungs:
        lab.warn("response time: no architecture answered during calibration; no ladder")
    points = [summarize(SECTION, architecture, "calibration_peak_rps", [peak])
              for architecture, peak in peaks.items()]
    # The plan counted one more rung than it has fractions, for the fixed rate;
    # when the fixed rate falls on a rung there is one fewer.
    unused = (len(plan.rate_fractions) + 1 - len(rungs)) * plan.timing.repetitions
    for architecture in plan.latency_architectures:
        points += _ladder(lab, plan, architecture, rungs, fixed)
        lab.reporter.advance(unused)
    return points


def _calibrate(lab: Lab, plan: Plan, architecture: str) -> float:
    timing = plan.timing
    lab.reporter.step(f"{architecture}: peak rate with a connection per request")
    with lab.server(architecture, *serve_arguments()) as server:
        options = bench_options(server.port, plan.latency_slots, timing.warmup, timing.duration,
                                connection_per_request=True)
        result = lab.bench(options, f"{architecture} calibration")
    lab.reporter.advance()
    return result.throughput_rps if result is not None else 0.0


def _ladder(lab: Lab, plan: Plan, architecture: str, rungs: list[float],
            fixed: float) -> list[Point]:
    timing = plan.timing
    runs: dict[float, list[BenchResult]] = {rate: [] for rate in rungs}
    with lab.server(architecture, *serve_arguments()) as server:
        for repetition in range(1, timing.repetitions + 1):
            for rate in rungs:
                what = f"{architecture} at {rate:,.0f} req/s"
                lab.reporter.step(f"{what} (run {repetition}/{timing.repetitions})")
                options = bench_options(server.port, plan.latency_slots, timing.warmup,
                                        timing.duration, rate=rate, connection_per_request=True)
                result = lab.bench(options, what)
                if result is not None:
                    runs[rate].append(result)
                lab.reporter.advance()
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
