"""Section 1, throughput: req/s against connection count, closed loop, a curve per architecture.

Each connection asks again as soon as its answer arrives and keeps its
connection open, so a server that serves one client at a time serves one
connection and leaves the others waiting; that is the point of the figure.
"""

from __future__ import annotations

from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, summarize
from zenserve.lab.runner import Lab, bench_options, generator_limited
from zenserve.load import BenchResult

SECTION = "throughput"


def steps(plan: Plan) -> int:
    """Load runs this section makes for one architecture."""
    return len(plan.connections) * plan.timing.repetitions


def measure(lab: Lab, plan: Plan, architecture: str, port: int) -> list[Point]:
    """The curve of the server at ``port``: every connection count, ``repetitions`` times."""
    runs = _runs(lab, plan, architecture, port)
    points: list[Point] = []
    for connections in plan.connections:
        points += _summaries(architecture, connections, runs[connections])
    return points


def _runs(lab: Lab, plan: Plan, architecture: str,
          port: int) -> dict[int, list[BenchResult | None]]:
    timing = plan.timing
    runs: dict[int, list[BenchResult | None]] = {count: [] for count in plan.connections}
    # Repetitions go round the whole curve, so a slow spell of the machine
    # spreads over every point instead of bending one of them.
    for repetition in range(1, timing.repetitions + 1):
        for connections in plan.connections:
            what = f"{architecture}, {connections} connections"
            lab.reporter.step(f"{what} (run {repetition}/{timing.repetitions})")
            options = bench_options(port, connections, timing.warmup, timing.duration)
            runs[connections].append(lab.bench(options, what))
            lab.reporter.advance()
    return runs


def _summaries(architecture: str, connections: int,
               runs: list[BenchResult | None]) -> list[Point]:
    done = [result for result in runs if result is not None]
    saturated = any(generator_limited(result) for result in done)
    where = {"x_name": "connections", "x": float(connections)}
    return [
        summarize(SECTION, architecture, "throughput_rps",
                  [result.throughput_rps for result in done], saturated, **where),
        summarize(SECTION, architecture, "latency_p99_ms",
                  [result.latency.p99 if result.requests else float("nan") for result in done],
                  saturated, **where),
        summarize(SECTION, architecture, "latency_max_ms",
                  [result.latency.max if result.requests else float("nan") for result in done],
                  saturated, **where),
        summarize(SECTION, architecture, "failed_requests",
                  [result.errors_total + result.unfinished for result in done],
                  saturated, **where),
    ]
