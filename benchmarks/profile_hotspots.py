"""Where the time goes: CPU per request, syscalls per request and py-spy hot spots, per server.

    .venv/bin/python benchmarks/profile_hotspots.py                  # event-loop architectures
    .venv/bin/python benchmarks/profile_hotspots.py --arch poll --workers 2 --connections 100

For the C reference, each chosen zenserve architecture and the book listings
they are raced against, under the C load generator at one connection count:
a clean run (rate; the server's user and system CPU µs per request, workers
included), a run under ``strace -c -f`` (syscalls per request, by call) and,
for Python servers, a run under py-spy (functions by share of samples).
Tracers slow the server down; the counts are per request, so they still
compare. The tables go to stdout and to their own section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from architectures import (
    BOOK_COUNTERPARTS,
    INHERITING_ARCHITECTURES,
    ServeFeatures,
    prepare_listings,
)
from contenders import (
    Contender,
    RunningServer,
    book_contender,
    c_reference_contender,
    zenserve_contender,
)
from other_work import OtherWork
from profile_tools import (
    CpuProfile,
    StackProfile,
    measure_cpu,
    parse_pyspy_raw,
    pyspy_record,
    strace_counting,
)
from reference import LoadResult, build_reference, run_reference_load
from results_file import run_and_record, section_start

from zenserve.errors import ZenserveError
from zenserve.servers import ARCHITECTURES

SECTION = "profile"
TOP_FUNCTIONS = 12
TOP_SYSCALLS = 6


@dataclass(slots=True)
class Profile:
    """Everything measured for one server."""

    label: str
    cpu: CpuProfile | None = None
    syscalls_per_request: dict[str, float] = field(default_factory=dict)
    stacks: StackProfile | None = None
    failure: str = ""


def profile_one(label: str, contender: Contender, load: Path, connections: int,
                seconds: float) -> Profile:
    """A clean run, an strace run and (for Python) a py-spy run of one server."""
    profile = Profile(label)
    with RunningServer(contender) as server:
        def drive() -> LoadResult:
            return run_reference_load(load, server.port, connections, seconds)

        run_reference_load(load, server.port, connections, min(seconds, 1.0))  # warm-up
        profile.cpu = measure_cpu(server.process.pid, drive, seconds)
        with strace_counting(server.process.pid) as calls:
            traced = drive()
        if traced.rate:
            requests = traced.rate * seconds
            profile.syscalls_per_request = {name: count / requests for name, count in calls.items()}
        else:
            profile.failure = f"under strace: {traced.failure}"
        if contender.role != "c":
            profile.stacks = sample_stacks(server.process.pid, drive, seconds)
    return profile


def sample_stacks(pid: int, drive: Callable[[], LoadResult],
                  seconds: float) -> StackProfile | None:
    """py-spy's view of the server while ``drive`` loads it."""
    with tempfile.TemporaryDirectory(prefix="zenserve-pyspy-") as scratch:
        output = Path(scratch) / "stacks.txt"
        sampler = pyspy_record(pid, seconds, output)
        try:
            drive()
        finally:
            try:
                sampler.wait(seconds + 30)
            except subprocess.TimeoutExpired:
                sampler.kill()
                sampler.wait()
        return parse_pyspy_raw(output.read_text()) if output.exists() else None


def cpu_ceiling(cpu: CpuProfile | None, cores: int) -> float | None:
    """The most req/s this machine's cores allow at the measured CPU cost per request.

    The busiest server process gets at most one core (a process's threads are
    counted as one, the GIL's), the load generator one, and together they
    share all of them.
    """
    if cpu is None or not cpu.rate:
        return None
    server_us, load_us = cpu.user_us + cpu.system_us, cpu.load_us
    return 1e6 * min(1 / (server_us * cpu.busiest_share), 1 / load_us,
                     cores / (server_us + load_us))


def summary_table(profiles: Sequence[Profile]) -> list[str]:
    cores = os.cpu_count() or 1
    lines = ["| server | req/s (clean run) | server CPU µs/req (user + sys) | load generator "
             "CPU µs/req | busiest server process's share | CPU-bound ceiling on "
             f"{cores} cores, req/s | syscalls/req | top syscalls per request |",
             "|---|---|---|---|---|---|---|---|"]
    for profile in profiles:
        cpu = profile.cpu
        rate = f"{cpu.rate:,.0f}" if cpu and cpu.rate else f"n/a {cpu.failure if cpu else ''}"
        cpu_text = (f"{cpu.user_us + cpu.system_us:.1f} ({cpu.user_us:.1f} + {cpu.system_us:.1f})"
                    if cpu and cpu.rate else "n/a")
        calls = profile.syscalls_per_request
        total = f"{sum(calls.values()):.2f}" if calls else f"n/a {profile.failure}"
        top = ", ".join(f"{name} {count:.2f}" for name, count in
                        sorted(calls.items(), key=lambda item: -item[1])[:TOP_SYSCALLS])
        load_text = f"{cpu.load_us:.1f}" if cpu and cpu.rate else "n/a"
        ceiling = cpu_ceiling(cpu, cores)
        ceiling_text = f"{ceiling:,.0f}" if ceiling else "n/a"
        busy = f"{cpu.busiest_share:.0%}" if cpu and cpu.rate else "n/a"
        lines.append(f"| {profile.label} | {rate} | {cpu_text} | {load_text} | {busy} "
                     f"| {ceiling_text} | {total} | {top} |")
    return lines


def stack_tables(profiles: Sequence[Profile]) -> list[str]:
    lines = []
    for profile in profiles:
        stacks = profile.stacks
        if stacks is None or not stacks.samples:
            continue
        lines += ["", f"**{profile.label}**: {stacks.samples} busy samples; "
                  "share of samples with the function innermost (self) / anywhere (total)", "",
                  "| function | self | total |", "|---|---|---|"]
        for function, count in stacks.self_counts.most_common(TOP_FUNCTIONS):
            share = count / stacks.samples
            total = stacks.inclusive_counts[function] / stacks.samples
            lines.append(f"| `{function}` | {share:.0%} | {total:.0%} |")
    return lines


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--arch", action="append", default=[], metavar="NAME",
                        help="zenserve architecture to profile (repeatable; default: every "
                             "registered event-loop architecture)")
    parser.add_argument("--workers", type=int, default=0, help="zenserve --workers N")
    parser.add_argument("--connections", type=int, default=10, help="default 10")
    parser.add_argument("--seconds", type=float, default=3.0, help="per run (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 s runs")
    parser.add_argument("--no-record", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds = 1.0
    unknown = [name for name in args.arch if name not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown architecture(s) {', '.join(unknown)}")
    args.arch = args.arch or [name for name, arch in ARCHITECTURES.items() if arch.event_loop]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    return run_and_record("profile", SECTION, not args.no_record, lambda: profile_all(args))


def profile_all(args: argparse.Namespace) -> str:
    """Profile every chosen server; the section's text."""
    profiles = []
    # As raced in architectures.py: metrics on, when this checkout has them.
    extra = (*ServeFeatures.probe().serve_arguments,
             *(("--workers", str(args.workers)) if args.workers else ()))
    with tempfile.TemporaryDirectory(prefix="zenserve-profile-") as scratch:
        tools = build_reference(Path(scratch))
        listings = prepare_listings(Path(scratch) / "book")
        workers = f" --workers {args.workers}" if args.workers else ""
        contenders = [c_reference_contender(tools.server, max(1, args.workers))]
        books = dict.fromkeys(BOOK_COUNTERPARTS[name].listing for name in args.arch
                              if name in BOOK_COUNTERPARTS)  # in order, each once
        contenders += [book_contender(listings[name]) for name in books if name in listings]
        labels = [contender.label for contender in contenders]
        for name in args.arch:
            contenders.append(zenserve_contender(name, extra=extra,
                                                 inherit=name in INHERITING_ARCHITECTURES))
            labels.append(f"zenserve {name}{workers}")
        with OtherWork() as other:  # the profiled servers and generators do not count
            for label, contender in zip(labels, contenders, strict=True):
                print(f"profiling {label}", file=sys.stderr, flush=True)
                try:
                    profiles.append(profile_one(label, contender, tools.load,
                                                args.connections, args.seconds))
                except (ZenserveError, RuntimeError) as error:
                    profiles.append(Profile(label, failure=str(error)))
    return "\n".join([*section_start("## Where the time goes (profile_hotspots.py)",
                                     (other.note(),), advice=""),
                      f"- {args.connections} connections, {args.seconds:g} s per run, "
                      "driven by the C reference load generator; zenserve with "
                      f"`{' '.join(extra) or 'defaults'}`",
                      "- CPU µs/req: CPU time charged over the requests of a clean run "
                      "(workers included); syscalls/req from a separate run under "
                      "`strace -c -f` (per-connection calls such as accept4 are spread over "
                      "the few requests a traced run completes)", "",
                      *summary_table(profiles), *stack_tables(profiles)]) + "\n"


if __name__ == "__main__":
    sys.exit(main())
