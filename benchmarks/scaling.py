"""Issue 7 target 6: what a second worker adds under a cpu cost, for every event-loop architecture.

    .venv/bin/python benchmarks/scaling.py              # 3 rounds of 3 s per point
    .venv/bin/python benchmarks/scaling.py --quick      # 1 round of 2 s, marked provisional
    .venv/bin/python benchmarks/scaling.py --arch uvloop

Each architecture serves with ``--cost 100us --cost-kind cpu`` (busy work
holding the GIL: one process can answer at most ~10,000 requests/s) and
metrics on, once with ``--workers 1`` and once with ``--workers 2``. Two
closed-loop generators drive each over 10 connections, interleaved: `zenserve
bench` (library API; its ``saturated`` says whether it was the bottleneck) and
the C reference load generator (a fraction of bench's CPU per request, which on
a 2-core machine leaves more of the machine to the server). The C-driven runs
also charge the server's CPU time to its requests: the cpu cost burns 100 µs
of the serving thread's CPU time (not wall time, so contention cannot make it
cheaper), and what the figure shows beyond 100 µs is the cost of serving.
Results go to stdout and to their own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bench_api import bench_context
from contenders import RunningServer, zenserve_contender
from other_work import OtherWork
from profile_tools import measure_cpu
from race import median_present
from reference import build_reference, run_reference_load
from results_file import run_and_record, runs_without_a_rate, section_start
from script_options import RunLength, event_loop_architectures, parse_race_arguments

from zenserve.errors import ZenserveError
from zenserve.load import BenchOptions, BenchResult, run

SECTION = "scaling"
CONNECTIONS = 10
COST = ("--cost", "100us", "--cost-kind", "cpu", "--metrics-port", "0")
COST_US = 100.0
TARGET = 1.6
WARMUP_SECONDS = 1.0
WORKER_COUNTS = (1, 2)


@dataclass(slots=True)
class Point:
    """One architecture with one worker count: each round's rates and the server's CPU."""

    bench: list[BenchResult | None] = field(default_factory=list)
    reference: list[float | None] = field(default_factory=list)
    server_us: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def ratio(twos: Sequence[float | None], ones: Sequence[float | None]) -> float | None:
    """The median over rounds of the two-worker rate over the one-worker rate of that round."""
    return median_present(two / one for two, one in zip(twos, ones, strict=True) if two and one)


def drive_once(point: Point, port: int, pid: int, load: Path, seconds: float,
               context: object) -> None:
    options = BenchOptions(port=port, connections=CONNECTIONS, duration=seconds,
                           warmup=WARMUP_SECONDS)
    try:
        point.bench.append(run(options, context=context))  # type: ignore[arg-type]
    except ZenserveError as error:
        point.bench.append(None)
        point.failures.append(str(error))
    profile = measure_cpu(pid, partial(run_reference_load, load, port, CONNECTIONS, seconds),
                          seconds)
    point.reference.append(profile.rate)
    if profile.rate:
        point.server_us.append(profile.user_us + profile.system_us)
    else:
        point.failures.append(profile.failure)


def measure(names: Sequence[str], rounds: int, seconds: float) -> dict[tuple[str, int], Point]:
    points = {(name, workers): Point() for name in names for workers in WORKER_COUNTS}
    context = bench_context()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zenserve-scale-")))
        load = build_reference(scratch).load
        servers = {key: stack.enter_context(RunningServer(zenserve_contender(key[0], key[1], COST)))
                   for key in points}
        for round_number in range(rounds):
            for key, server in servers.items():
                drive_once(points[key], server.port, server.process.pid, load, seconds, context)
                bench = points[key].bench[-1]
                shown = f"{bench.throughput_rps:,.0f}" if bench is not None else "failed"
                print(f"  round {round_number + 1}, {key[0]} --workers {key[1]}: bench {shown}, "
                      f"C {points[key].reference[-1] or 0:,.0f} req/s", file=sys.stderr, flush=True)
    return points


def row(name: str, points: dict[tuple[str, int], Point]) -> str:
    one, two = points[name, 1], points[name, 2]
    bench_one = [r.throughput_rps if r else None for r in one.bench]
    bench_two = [r.throughput_rps if r else None for r in two.bench]
    by_bench, by_c = ratio(bench_two, bench_one), ratio(two.reference, one.reference)
    saturated = [r for r in (*one.bench, *two.bench) if r is not None and r.saturated]
    cpu = [f"{median_present(p.server_us) or 0:.0f}" for p in (one, two)]
    verdict = "—" if by_bench is None else ("met" if by_bench >= TARGET else "MISSED")
    cells = [name, *(f"{median_present(values) or 0:,.0f}" for values in
                     (bench_one, bench_two, one.reference, two.reference)),
             "—" if by_bench is None else f"{by_bench:.2f}",
             "—" if by_c is None else f"{by_c:.2f}", " / ".join(cpu),
             "yes: " + "; ".join(saturated[0].saturation_reasons) if saturated else "no",
             verdict]
    return "| " + " | ".join(cells) + " |"


def report(points: dict[tuple[str, int], Point], names: Sequence[str],
           args: argparse.Namespace, other: OtherWork) -> str:
    lines = section_start(
        "## Issue 7 target 6: scaling with a second worker under a cpu cost (scaling.py)",
        (args.provisional, other.note()), "Two workers need both cores; other work on the "
        "machine takes them away. Rerun on a quiet machine.")
    lines += [f"- servers: `zenserve serve --arch A {' '.join(COST)} --workers 1|2`; "
              f"{os.cpu_count()} cores in all, shared with the generator",
              f"- each round drives every setup over {CONNECTIONS} connections, closed loop: "
              f"`zenserve bench` (library API, one load process, {args.seconds:g} s after "
              f"{WARMUP_SECONDS:g} s warmup), then the C reference load generator "
              f"({args.seconds:g} s); {args.rounds} round(s); rates are medians, ratios the "
              "median of each round's 2-worker over 1-worker rate",
              f"- server CPU µs/req: from the C-driven runs; the cost burns {COST_US:.0f} µs of "
              "the serving thread's CPU time, the rest is the cost of serving", "",
              "| architecture | bench, 1 worker | bench, 2 workers | C load, 1 worker | "
              "C load, 2 workers | × by bench | × by C load | server CPU µs/req (1 / 2) | "
              "bench saturated | ≥ 1.6× by bench |",
              "|---|---|---|---|---|---|---|---|---|---|",
              *(row(name, points) for name in names)]
    failed = [f"- {name} --workers {workers}: {', '.join(sorted(set(point.failures)))}"
              for (name, workers), point in points.items() if point.failures]
    return "\n".join([*lines, *runs_without_a_rate(failed)]) + "\n"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    return parse_race_arguments(
        argv, __doc__.splitlines()[0] if __doc__ else None, quick=RunLength(1, 2.0),
        full=RunLength(3, 3.0), arch_default="every event loop")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    names = args.arch or event_loop_architectures()

    def produce() -> str:
        with OtherWork() as other:
            points = measure(names, args.rounds, args.seconds)
        return report(points, names, args, other)

    return run_and_record("scaling", SECTION, not args.no_record, produce)


if __name__ == "__main__":
    sys.exit(main())
