"""Issue 7 target 4: latency at half of each event-loop architecture's peak rate, open loop.

    .venv/bin/python benchmarks/latency.py              # 3 rounds of 5 s per architecture
    .venv/bin/python benchmarks/latency.py --quick      # 1 round of 2 s, marked provisional
    .venv/bin/python benchmarks/latency.py --arch uvloop

For each event-loop architecture (one process, default limits, metrics on):
its peak rate is the median of closed-loop runs of the C reference load
generator at 10 connections; then `zenserve bench`'s library drives it in open
loop at half that rate over the same 10 connections, and the latency of every
request is charged from its intended send time (coordinated omission
corrected). Rounds visit the architectures in turn. The table goes to stdout
and to its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench_api import bench_context
from contenders import RunningServer, zenserve_contender
from other_work import OtherWork
from race import median_present
from reference import build_reference, run_reference_load
from results_file import run_and_record, section_start
from script_options import RunLength, event_loop_architectures, parse_race_arguments

from zenserve.errors import ZenserveError
from zenserve.load import BenchOptions, BenchResult, run

SECTION = "latency"
CONNECTIONS = 10
SHARE_OF_PEAK = 0.5
TARGET_P99_MS = 1.0
PEAK_RUNS, PEAK_SECONDS = 3, 2.0
WARMUP_SECONDS = 1.0


@dataclass(slots=True)
class Measured:
    """One architecture: its peak, and every open-loop run at half of it."""

    peak: float | None = None
    runs: list[BenchResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def median(self, pick: str) -> float | None:
        return median_present(getattr(run.latency, pick) for run in self.runs)


def peak_rate(load: Path, port: int) -> float | None:
    """The median closed-loop rate of the C load generator at CONNECTIONS."""
    return median_present(run_reference_load(load, port, CONNECTIONS, PEAK_SECONDS).rate
                          for _ in range(PEAK_RUNS))


def measure(names: Sequence[str], rounds: int, seconds: float) -> dict[str, Measured]:
    results = {name: Measured() for name in names}
    context = bench_context()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zenserve-lat-")))
        load = build_reference(scratch).load
        servers = {name: stack.enter_context(RunningServer(
            zenserve_contender(name, 0, ("--metrics-port", "0")))) for name in names}
        for name, server in servers.items():
            results[name].peak = peak_rate(load, server.port)
            print(f"  {name}: peak {results[name].peak or 0:,.0f} req/s", file=sys.stderr)
        for round_number in range(rounds):
            for name, server in servers.items():
                measured = results[name]
                if measured.peak is None:
                    continue
                options = BenchOptions(port=server.port, connections=CONNECTIONS,
                                       rate=SHARE_OF_PEAK * measured.peak, duration=seconds,
                                       warmup=WARMUP_SECONDS)
                try:
                    result = run(options, context=context)
                except ZenserveError as error:
                    measured.failures.append(str(error))
                    continue
                measured.runs.append(result)
                print(f"  round {round_number + 1}, {name}: p99 {result.latency.p99:.3f} ms"
                      f"{' (generator saturated)' if result.saturated else ''}",
                      file=sys.stderr, flush=True)
    return results


def row(name: str, measured: Measured) -> str:
    if measured.peak is None or not measured.runs:
        why = "; ".join(sorted(set(measured.failures))) or "no peak rate"
        return f"| {name} | — | — | — | — | — | — | — | no result: {why} |"
    runs = measured.runs
    achieved = statistics.median(r.throughput_rps for r in runs)
    p99 = measured.median("p99")
    assert p99 is not None
    worst = max(r.latency.p99 for r in runs)
    saturated = [r for r in runs if r.saturated]
    generator = ("yes: " + "; ".join(saturated[0].saturation_reasons)) if saturated else "no"
    errors = sum(r.errors_total for r in runs)
    verdict = "met" if p99 < TARGET_P99_MS else "MISSED"
    return (f"| {name} | {measured.peak:,.0f} | {SHARE_OF_PEAK * measured.peak:,.0f} | "
            f"{achieved:,.0f} | {measured.median('p50'):.3f} | {p99:.3f} (worst {worst:.3f}) | "
            f"{measured.median('p999'):.3f} | {errors} | {verdict}; generator saturated: "
            f"{generator} |")


def report(results: dict[str, Measured], args: argparse.Namespace, other: OtherWork) -> str:
    lines = section_start(
        "## Issue 7 target 4: latency at half the peak rate (latency.py)",
        (args.provisional, other.note()), "A p99 on a shared machine measures the other work's "
        "scheduling as much as the server. Rerun on a quiet machine.")
    lines += [f"- peak: median of {PEAK_RUNS} closed-loop runs of {PEAK_SECONDS:g} s by the C "
              f"reference load generator, {CONNECTIONS} connections, one server process, "
              "default limits, metrics on",
              f"- open loop: `zenserve bench` (library API, one load process) at "
              f"{SHARE_OF_PEAK:.0%} of the peak over {CONNECTIONS} connections, "
              f"{args.rounds} run(s) of {args.seconds:g} s after {WARMUP_SECONDS:g} s of warmup; "
              "latency from each request's intended send time; percentiles are medians over "
              "the runs", "",
              "| architecture | peak req/s | target req/s | achieved req/s | p50 ms | p99 ms | "
              "p99.9 ms | errors | p99 < 1 ms |",
              "|---|---|---|---|---|---|---|---|---|",
              *(row(name, measured) for name, measured in results.items())]
    return "\n".join(lines) + "\n"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    return parse_race_arguments(
        argv, __doc__.splitlines()[0] if __doc__ else None, quick=RunLength(1, 2.0),
        full=RunLength(3, 5.0), arch_default="every event loop", per="per architecture")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    names = args.arch or event_loop_architectures()

    def produce() -> str:
        with OtherWork() as other:
            results = measure(names, args.rounds, args.seconds)
        return report(results, args, other)

    return run_and_record("latency", SECTION, not args.no_record, produce)


if __name__ == "__main__":
    sys.exit(main())
