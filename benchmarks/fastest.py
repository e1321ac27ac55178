"""Issue 7 target 1: zenserve's fastest setups against the C reference server, like with like.

    .venv/bin/python benchmarks/fastest.py             # 5 rounds × 2 s per point
    .venv/bin/python benchmarks/fastest.py --quick     # 2 rounds × 1 s, marked provisional
    .venv/bin/python benchmarks/fastest.py --arch uvloop --connections 10

The C reference load generator drives, at 10 and 100 connections, interleaved:
the C reference server in one process and with 2 workers, and each candidate
zenserve architecture in one process and with ``--workers 2`` (default limits,
metrics on). Besides the rate, each run charges the CPU time of the server's
processes and of the load generator to its requests: on a 2-core machine those
two numbers bound the rate (see ``ceiling``), and they move far less than the
rate when other work shares the machine. The table goes to stdout and to its
own section of benchmarks/RESULTS.md.
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

from contenders import Contender, RunningServer, c_reference_contender, zenserve_contender
from other_work import OtherWork
from profile_tools import CpuProfile, measure_cpu
from race import interleaved, median_present
from reference import build_reference, run_reference_load
from results_file import run_and_record, runs_without_a_rate, section_start
from script_options import RunLength, parse_race_arguments

SECTION = "fastest"
CANDIDATES = ("uvloop", "epoll", "poll", "asyncio-callbacks")
CONNECTION_COUNTS = (10, 100)
TARGET = 0.9
METRICS_ON = ("--metrics-port", "0")
C_ONE, C_TWO = "C reference", "C reference, 2 workers"


@dataclass(slots=True)
class Samples:
    """One setup at one connection count: its run in each round (None where it failed)."""

    runs: list[CpuProfile | None] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def clean(self) -> list[CpuProfile]:
        return [run for run in self.runs if run is not None]

    @property
    def rate(self) -> float | None:
        return median_present(run.rate for run in self.clean())

    @property
    def server_us(self) -> float | None:
        return median_present(run.user_us + run.system_us for run in self.clean())

    @property
    def load_us(self) -> float | None:
        return median_present(run.load_us for run in self.clean())

    @property
    def busiest_share(self) -> float | None:
        return median_present(run.busiest_share for run in self.clean())

    def ratio_to(self, other: Samples) -> float | None:
        """The median over rounds of this rate over ``other``'s in the same round."""
        return median_present(mine.rate / theirs.rate
                              for mine, theirs in zip(self.runs, other.runs, strict=True)
                              if mine is not None and theirs is not None
                              and mine.rate and theirs.rate)


def ceiling(server_us: float, load_us: float, processes: int, cores: int) -> float:
    """The highest rate the CPU allows: per-process caps and the machine's total.

    The one-threaded load generator can use at most one core, each server
    process at most one, and together they can use at most every core.
    """
    return 1e6 * min(1 / load_us, processes / server_us, cores / (server_us + load_us))


def setups(architectures: Sequence[str], server_binary: Path) -> list[Contender]:
    contenders = [c_reference_contender(server_binary, 1), c_reference_contender(server_binary, 2)]
    for name in architectures:
        contenders += [zenserve_contender(name, 0, METRICS_ON),
                       zenserve_contender(name, 2, METRICS_ON)]
    return contenders


def label_of(contender: Contender) -> str:
    """C rows keep their label; zenserve rows get the architecture in front."""
    if contender.role == "c":
        return contender.label
    architecture = contender.command[contender.command.index("--arch") + 1]
    return f"{architecture}: {contender.label}"


def processes_of(label: str) -> int:
    return 2 if "2 workers" in label or "--workers 2" in label else 1


def race(contenders: Sequence[Contender], load: Path, counts: Sequence[int], rounds: int,
         seconds: float) -> dict[tuple[str, int], Samples]:
    """Every setup at every count, ``rounds`` times, in a rotating order."""
    samples = {(label_of(c), count): Samples() for c in contenders for count in counts}
    with ExitStack() as stack:
        running = [(label_of(c), stack.enter_context(RunningServer(c))) for c in contenders]
        for _, server in running:  # warm every server up once before timing anything
            run_reference_load(load, server.port, 10, min(seconds, 1.0))
        for round_number, count, (label, server) in interleaved(running, counts, rounds):
            drive = partial(run_reference_load, load, server.port, count, seconds)
            profile = measure_cpu(server.process.pid, drive, seconds)
            point = samples[label, count]
            point.runs.append(profile if profile.rate else None)
            if not profile.rate:
                point.failures.append(profile.failure)
            shown = f"{profile.rate:,.0f} req/s" if profile.rate else profile.failure
            print(f"  round {round_number + 1}, {count:>3} conns, {label}: {shown}",
                  file=sys.stderr, flush=True)
    return samples


def _number(value: float | None, form: str) -> str:
    return "—" if value is None else format(value, form)


def table(samples: dict[tuple[str, int], Samples], labels: Sequence[str], count: int,
          cores: int) -> list[str]:
    c_one, c_two = samples[C_ONE, count], samples[C_TWO, count]
    rows = [f"| setup ({count} connections) | req/s | × C | × C like with like | "
            "server CPU µs/req | generator CPU µs/req | busiest process | CPU ceiling req/s |",
            "|---|---|---|---|---|---|---|---|"]
    for label in labels:
        point = samples[label, count]
        same_shape = c_two if processes_of(label) == 2 else c_one
        server_us, load_us = point.server_us, point.load_us
        limit = (ceiling(server_us, load_us, processes_of(label), cores)
                 if server_us and load_us else None)
        rows.append(f"| {label} | {_number(point.rate, ',.0f')} | "
                    f"{_number(point.ratio_to(c_one), '.2f')} | "
                    f"{_number(point.ratio_to(same_shape), '.2f')} | "
                    f"{_number(server_us, '.2f')} | {_number(load_us, '.2f')} | "
                    f"{_number(point.busiest_share, '.0%')} | {_number(limit, ',.0f')} |")
    return rows


def ceiling_ratio(samples: dict[tuple[str, int], Samples], label: str, count: int,
                  cores: int) -> float:
    """The CPU ceiling of ``label`` over the one-process C server's (0 when unmeasured)."""
    limits = []
    for which in (label, C_ONE):
        point = samples[which, count]
        if not point.server_us or not point.load_us:
            return 0.0
        limits.append(ceiling(point.server_us, point.load_us, processes_of(which), cores))
    return limits[0] / limits[1]


def verdicts(samples: dict[tuple[str, int], Samples], labels: Sequence[str],
             counts: Sequence[int], cores: int) -> list[str]:
    lines = []
    zenserve = [label for label in labels if ": zenserve" in label]
    for count in counts:
        c_one, c_two = samples[C_ONE, count], samples[C_TWO, count]
        ranked = sorted(((samples[label, count].ratio_to(c_one) or 0.0, label)
                         for label in zenserve), reverse=True)
        if not ranked:
            continue
        best, label = ranked[0]
        verdict = "met" if best >= TARGET else "MISSED"
        lines.append(f"- {count} connections: fastest is {label} at {best:.2f}× the one-process "
                     f"C reference (target ≥ {TARGET}×: {verdict}; the best of {len(ranked)} "
                     "setups, which noise favours: read it with the CPU line below)")
        by_cpu = sorted(((ceiling_ratio(samples, label, count, cores), label)
                         for label in zenserve), reverse=True)
        ratio, which = by_cpu[0]
        lines.append(f"  - by CPU per request (the ceilings, what a quiet machine allows): "
                     f"{which} at {ratio:.2f}× the one-process C reference's ceiling")
        for shape, yardstick, name in ((1, c_one, "one process"), (2, c_two, "2 workers")):
            same = [(samples[label, count].ratio_to(yardstick) or 0.0, label)
                    for label in zenserve if processes_of(label) == shape]
            if same:
                ratio, which = max(same)
                lines.append(f"  - like with like ({name} each): {which} at {ratio:.2f}× "
                             f"{yardstick_label(shape)}")
    return lines


def yardstick_label(processes: int) -> str:
    return C_TWO if processes == 2 else C_ONE


def report(samples: dict[tuple[str, int], Samples], labels: Sequence[str],
           args: argparse.Namespace, cores: int, other: OtherWork) -> str:
    lines = section_start(
        "## Issue 7 target 1: the fastest setups vs the C reference (fastest.py)",
        (args.provisional, other.note()), "Rates swing with other work; the CPU columns move "
        "far less. Rerun on a quiet machine.")
    lines += [f"- each point: the median of {args.rounds} runs of {args.seconds:g} s by the C "
              "reference load generator, every setup once per round in a rotating order",
              "- zenserve: default limits, metrics on (`--metrics-port 0`)",
              "- × C: the median over rounds of the rate over the one-process C server's in the "
              "same round; like with like: one process against one process, `--workers 2` "
              "against the C server with 2 workers",
              "- CPU µs/req: user + system time of the server's processes (workers included) "
              "and of the load generator, over the requests answered",
              f"- CPU ceiling: 10⁶ × min(1/generator, processes/server, {cores}/(server + "
              "generator)): the one-threaded generator gets at most a core, each server "
              f"process at most one, and all of them at most the {cores} cores", ""]
    for count in args.connections:
        lines += [*table(samples, labels, count, cores), ""]
    lines += verdicts(samples, labels, args.connections, cores)
    failed = [f"- {label} at {count}: {', '.join(sorted(set(point.failures)))}"
              for (label, count), point in samples.items() if point.failures]
    return "\n".join([*lines, *runs_without_a_rate(failed)]) + "\n"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    return parse_race_arguments(
        argv, __doc__.splitlines()[0] if __doc__ else None, quick=RunLength(2, 1.0),
        full=RunLength(5, 2.0), arch_default=" ".join(CANDIDATES),
        connections=CONNECTION_COUNTS)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    cores = len(os.sched_getaffinity(0))

    def produce() -> str:
        with tempfile.TemporaryDirectory(prefix="zenserve-fastest-") as scratch:
            tools = build_reference(Path(scratch))
            contenders = setups(args.arch or CANDIDATES, tools.server)
            with OtherWork() as other:
                samples = race(contenders, tools.load, args.connections, args.rounds,
                               args.seconds)
        return report(samples, [label_of(c) for c in contenders], args, cores, other)

    return run_and_record("fastest", SECTION, not args.no_record, produce)


if __name__ == "__main__":
    sys.exit(main())
