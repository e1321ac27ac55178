"""`zenserve bench` against the C reference load generator, both driving the C reference server.

    .venv/bin/python benchmarks/bench_vs_reference.py               # 5 rounds × 3 s per point
    .venv/bin/python benchmarks/bench_vs_reference.py --quick       # 1 round × 2 s, provisional
    .venv/bin/python benchmarks/bench_vs_reference.py --processes 1,2

Both C programs are built from ../shared/reference into a temporary folder.
One C server (one epoll loop) runs for the whole race; at 10 and 100
connections (closed loop) the C load generator and `zenserve bench` take
turns, interleaved round by round with the first one alternating, so that
waves of noise on a shared machine hit both alike. The C server answers only
the book's three questions and takes no pipelining, so bench asks just those,
one at a time per connection, and checks every answer. Targets: bench at
0.8× the C generator or better (issue 4), 0.9× (issue 7). The table goes to
stdout and to its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from contenders import RunningServer, c_reference_contender
from generator_syscalls import (
    SyscallProfile,
    bench_profile,
    c_generator_profile,
    strace_available,
)
from reference import build_reference, run_reference_load
from results_file import command_line, machine_lines, update_section
from termination import exit_on_sigterm

from zenserve.load import BenchOptions, default_processes, run

SECTION = "bench-vs-reference"
CONNECTION_COUNTS = (10, 100)
BOOK_QUESTIONS = (
    (b"Beautiful is better than?", b"Ugly."),
    (b"Explicit is better than?", b"Implicit."),
    (b"Simple is better than?", b"Complex."),
)
C_LABEL = "C zen_ref_load"
# bench measures after a short warmup (its processes start first); the C
# generator counts from its first request, so it gets no warmup to hide in.
BENCH_WARMUP = 0.5
STRACE_NOTE = ("bench: coordinator and worker together, the difference between a 1 s "
               "and a 3 s run, so interpreter start-up is left out; strace slows both "
               "generators, so only the counts mean anything, and the epoll waits least: "
               "how many answers one wait gathers depends on timing, which strace changes "
               "(bench's lane waits in 1 ms slices that strace's slowdown runs out after "
               "each batch)")


@dataclass(slots=True)
class Samples:
    """Every rate measured for one generator at one connection count."""

    rates: list[float] = field(default_factory=list)
    cpu_percent: list[float] = field(default_factory=list)
    # The generator's own CPU per answered request, in microseconds: user, kernel.
    cpu_per_request: list[tuple[float, float]] = field(default_factory=list)
    errors: int = 0
    saturated: int = 0

    @property
    def median(self) -> float | None:
        return statistics.median(self.rates) if self.rates else None


def bench_label(processes: int) -> str:
    return f"zenserve bench, {processes} process" + ("es" if processes > 1 else "")


def measure_bench(port: int, connections: int, seconds: float, processes: int,
                  samples: Samples) -> None:
    result = run(BenchOptions(port=port, connections=connections, duration=seconds,
                              warmup=BENCH_WARMUP, questions=BOOK_QUESTIONS,
                              processes=processes))
    samples.rates.append(result.throughput_rps)
    samples.cpu_percent.append(result.client_cpu_percent)
    if result.requests:
        user, kernel = result.worker_cpu_seconds
        samples.cpu_per_request.append((1e6 * user / result.requests,
                                        1e6 * kernel / result.requests))
    samples.errors += result.errors_total
    samples.saturated += result.saturated


def measure_c(load: Path, port: int, connections: int, seconds: float, samples: Samples) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    outcome = run_reference_load(load, port, connections, seconds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if outcome.rate is None:
        print(f"  {C_LABEL} at {connections}: {outcome.failure}", file=sys.stderr)
        samples.errors += 1
        return
    samples.rates.append(outcome.rate)
    # Its whole life (connects included) over its requests: a slight overestimate.
    requests = outcome.rate * seconds
    samples.cpu_percent.append(100 * (after.ru_utime + after.ru_stime
                                      - before.ru_utime - before.ru_stime) / seconds)
    samples.cpu_per_request.append((1e6 * (after.ru_utime - before.ru_utime) / requests,
                                    1e6 * (after.ru_stime - before.ru_stime) / requests))


Profiles = dict[tuple[str, int], SyscallProfile | None]


def race(rounds: int, seconds: float, process_counts: list[int],
         syscalls: bool) -> tuple[dict[tuple[str, int], Samples], Profiles]:
    labels = [C_LABEL] + [bench_label(count) for count in process_counts]
    results = {(label, conns): Samples() for label in labels for conns in CONNECTION_COUNTS}
    profiles: Profiles = {}
    with tempfile.TemporaryDirectory(prefix="zenserve-bench-ref-") as scratch:
        tools = build_reference(Path(scratch))
        with RunningServer(c_reference_contender(tools.server, 1)) as server:
            if syscalls:
                questions = [question.decode() for question, _ in BOOK_QUESTIONS]
                for connections in CONNECTION_COUNTS:
                    profiles[(C_LABEL, connections)] = c_generator_profile(
                        tools.load, server.port, connections)
                    profiles[("zenserve bench", connections)] = bench_profile(
                        server.port, connections, questions)
            for round_number in range(rounds):
                for connections in CONNECTION_COUNTS:
                    # Rotate who goes first, round by round.
                    shift = round_number % len(labels)
                    for label in labels[shift:] + labels[:shift]:
                        samples = results[(label, connections)]
                        if label == C_LABEL:
                            measure_c(tools.load, server.port, connections, seconds, samples)
                        else:
                            processes = process_counts[labels.index(label) - 1]
                            measure_bench(server.port, connections, seconds, processes,
                                          samples)
                        print(f"  round {round_number + 1}/{rounds}, {connections} conns, "
                              f"{label}: {samples.rates[-1] if samples.rates else 0:,.0f} req/s",
                              file=sys.stderr)
    return results, profiles


def syscall_table(profiles: Profiles) -> list[str]:
    lines = ["| generator | conns | read / request | write / request | epoll waits / request |",
             "|---|---|---|---|---|"]
    for (label, connections), profile in profiles.items():
        if profile is None:
            lines.append(f"| {label} | {connections} | failed | | |")
        else:
            lines.append(f"| {label} | {connections} | {profile.reads:.2f} | "
                         f"{profile.writes:.2f} | {profile.waits:.3f} |")
    return lines


def table(results: dict[tuple[str, int], Samples], process_counts: list[int]) -> list[str]:
    lines = ["| generator | conns | req/s (median) | × C generator | target 0.8× / 0.9× "
             "| its CPU % | its CPU µs/request: user + kernel | errors "
             "| runs flagged saturated |",
             "|---|---|---|---|---|---|---|---|---|"]
    for connections in CONNECTION_COUNTS:
        reference = results[(C_LABEL, connections)].median
        for label in [C_LABEL] + [bench_label(count) for count in process_counts]:
            samples = results[(label, connections)]
            rate = samples.median
            if rate is None:
                lines.append(f"| {label} | {connections} | failed | | | | | {samples.errors} | |")
                continue
            cpu = statistics.median(samples.cpu_percent)
            user = statistics.median(user for user, _ in samples.cpu_per_request)
            kernel = statistics.median(kernel for _, kernel in samples.cpu_per_request)
            costs = f"{cpu:.0f} | {user:.2f} + {kernel:.2f} = {user + kernel:.2f}"
            if label == C_LABEL:
                lines.append(f"| {label} | {connections} | {rate:,.0f} | 1.00 | | {costs} | "
                             f"{samples.errors} | |")
                continue
            ratio = rate / reference if reference else 0.0
            verdict = ("meets both" if ratio >= 0.9 else "meets 0.8×" if ratio >= 0.8
                       else "below 0.8×")
            lines.append(f"| {label} | {connections} | {rate:,.0f} | {ratio:.2f} | {verdict} | "
                         f"{costs} | {samples.errors} | {samples.saturated}"
                         f"/{len(samples.rates)} |")
    return lines


def _median_costs(samples: Samples) -> tuple[float, float] | None:
    if not samples.cpu_per_request:
        return None
    return (statistics.median(user for user, _ in samples.cpu_per_request),
            statistics.median(kernel for _, kernel in samples.cpu_per_request))


def reading(results: dict[tuple[str, int], Samples], process_counts: list[int]) -> list[str]:
    """What the numbers say: where bench's extra cost is, and what it caps it at."""
    lines = []
    for connections in CONNECTION_COUNTS:
        c_costs = _median_costs(results[(C_LABEL, connections)])
        bench_costs = _median_costs(results[(bench_label(process_counts[0]), connections)])
        if c_costs is None or bench_costs is None:
            continue
        lines.append(
            f"- {connections} connections: bench spends {bench_costs[0]:.2f} µs of user CPU per "
            f"request where the C generator spends {c_costs[0]:.2f}, and about the same in the "
            f"kernel ({bench_costs[1]:.2f} vs {c_costs[1]:.2f} µs). Where the generator's "
            f"core is the limit, bench can reach about {sum(c_costs) / sum(bench_costs):.2f}× "
            "the C generator's rate; where the server's core is, both reach the server's rate.")
    lines += [
        "- The calls per request are the same (table above): one read, one write, and an epoll "
        "wait shared by the connections ready together. In steady state a closed-loop "
        "connection is served by bench's fast lane (load/fastlane.py: its own epoll, "
        "os.read/os.write, no uvloop callback or write queue), so the extra user time is the "
        "interpreter's floor per answer: about 40 bytecodes, the GIL released and retaken "
        "around each read and write, one bytes object and the epoll result tuples.",
        "- One load process is the default on 2 cores: the server needs the other. A second "
        "process shares the server's core (see the 2-process rows when raced with "
        "`--processes 1,2`).",
    ]
    if os.getloadavg()[0] > len(os.sched_getaffinity(0)):
        lines.append("- **The machine was busy with other work during this run** (load average "
                     "above the core count): the server was starved, both generators mostly "
                     "waited, and the rates compare the scheduler more than the generators; "
                     "the CPU per request is the steadier figure.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--quick", action="store_true", help="1 round × 2 s (provisional)")
    parser.add_argument("--processes", default=str(default_processes(max(CONNECTION_COUNTS))),
                        help="bench process counts to race, comma-separated "
                             "(default: bench's own default for this machine)")
    parser.add_argument("--no-syscalls", action="store_true",
                        help="skip counting syscalls per request with strace")
    parser.add_argument("--no-record", action="store_true",
                        help="print the table only, leave RESULTS.md alone")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    rounds, seconds = (1, 2.0) if args.quick else (args.rounds, args.seconds)
    process_counts = [int(count) for count in args.processes.split(",")]
    syscalls = not args.no_syscalls and strace_available()
    results, profiles = race(rounds, seconds, process_counts, syscalls)
    lines = table(results, process_counts)
    if profiles:
        lines += ["", f"Syscalls per answered request (`strace -f -c`, {STRACE_NOTE}):", "",
                  *syscall_table(profiles)]
    print("\n".join(lines))
    if not args.no_record:
        body = [
            "## `zenserve bench` vs the C reference load generator (issues 4 and 7)",
            "",
            f"- command: `{command_line()}`",
            *machine_lines(),
            f"- `nproc`: {len(os.sched_getaffinity(0))}; one C reference server (one epoll loop) "
            "for the whole race; closed loop, the book's three questions, one at a time per "
            "connection, every answer checked",
            f"- each point: median of {rounds} run(s) of {seconds:g} s, generators interleaved "
            f"(bench after a {BENCH_WARMUP:g} s warmup)"
            + (" — **provisional** (--quick)" if args.quick else ""),
            "",
            *lines,
            "",
            "Reading:",
            "",
            *reading(results, process_counts),
        ]
        update_section(SECTION, "\n".join(body) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
