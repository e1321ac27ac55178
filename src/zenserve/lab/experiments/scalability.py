"""Section 5, scalability: the cost knob x architecture x worker processes.

Each request costs ``cost`` of one kind: ``block`` (a blocking wait: threads
overlap it, an event loop stalls), ``io`` (a wait event loops await without
stalling), ``cpu`` (busy work holding the GIL: threads cannot overlap it,
processes can). Closed loop, a new connection per request, so that every
architecture, one-client-at-a-time included, faces the same clients.
"""

from __future__ import annotations

from zenserve.lab.plan import Plan
from zenserve.lab.points import Point, summarize
from zenserve.lab.runner import Lab, bench_options, generator_limited, serve_arguments
from zenserve.load import BenchResult

SECTION = "scalability"


def steps(plan: Plan) -> int:
    """Load runs this section makes."""
    return (len(plan.scalability_architectures) * len(plan.scalability_cases)
            * plan.scalability_timing.repetitions)


def run(lab: Lab, plan: Plan) -> list[Point]:
    """Every architecture, cost kind and worker count, ``repetitions`` runs each."""
    points: list[Point] = []
    for architecture in plan.scalability_architectures:
        for kind, workers in plan.scalability_cases:
            results = _runs(lab, plan, architecture, kind, workers)
            points.append(summarize(
                SECTION, architecture, "throughput_rps",
                [result.throughput_rps for result in results],
                any(generator_limited(result) for result in results),
                x_name="workers", x=float(workers), workers=workers, cost_kind=kind,
                condition=plan.cost))
    return points


def _runs(lab: Lab, plan: Plan, architecture: str, kind: str,
          workers: int) -> list[BenchResult]:
    timing = plan.scalability_timing
    what = f"{architecture}, {plan.cost} {kind} cost, --workers {workers}"
    results: list[BenchResult] = []
    arguments = serve_arguments(workers=workers, cost=plan.cost, cost_kind=kind)
    with lab.server(architecture, *arguments, steps=timing.repetitions) as server:
        if server is None:
            return results
        for repetition in range(1, timing.repetitions + 1):
            lab.reporter.step(f"{what} (run {repetition}/{timing.repetitions})")
            options = bench_options(server.port, plan.scalability_connections, timing.warmup,
                                    timing.duration, connection_per_request=True)
            result = lab.bench(options, what)
            if result is not None:
                results.append(result)
            lab.reporter.advance()
    return results
