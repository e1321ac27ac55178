"""The work each server does per request, counted, not timed: book listing vs zenserve.

    .venv/bin/python benchmarks/instructions.py                  # every architecture, 1/10/100
    .venv/bin/python benchmarks/instructions.py --arch single --connections 1 10

For each architecture, its book listing (as architectures.py pairs them) and
zenserve (metrics on, as raced) are driven by the C load generator at 1, 10 and
100 connections and measured two ways:

- user-space instructions per request, counted by callgrind (callgrind.py):
  each point is counted over a short and a long run and the difference is
  divided by the difference in requests, so that connecting and closing the
  clients cancel out and what is left is the steady cost of one request;
- syscalls per request, counted by ``strace -c -f`` over one run of the
  server at full speed (outside valgrind), connecting and closing included,
  with futex calls apart: they are threads handing over the GIL, as many as
  the moment's scheduling makes (the same server's count moves severalfold
  between runs, and more under strace), where the others follow the code.

Both are properties of the code, not of the moment: rerun on a busy machine,
the instructions agree to a fraction of a percent, where a wall-clock race of
the same two servers moves by ±20% (the A/A rows of the architectures table).
The kernel's work follows the syscalls, so a server with fewer instructions and
no more syscalls per request than the book's does less work per request on any
machine. Under valgrind the threads of a server take turns, so GIL contention
shows in the futex calls, not in the instructions; profile_hotspots.py measures
it at full speed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from architectures import (
    BOOK_COUNTERPARTS,
    INHERITING_ARCHITECTURES,
    ServeFeatures,
    prepare_listings,
)
from callgrind import CountedServer
from contenders import Contender, RunningServer, book_contender, zenserve_contender
from profile_tools import strace_counting
from reference import build_reference, run_reference_load
from results_file import run_and_record, section_start

from zenserve.servers import ARCHITECTURES

SECTION = "instructions"
CONNECTION_COUNTS = (1, 10, 100)
SHORT_SECONDS, LONG_SECONDS = 1.0, 3.0
STRACE_SECONDS = 1.0
# zenserve at or under the book's syscalls per request, within what batching moves
# from run to run in an event loop (one epoll_wait more or less per few requests).
SYSCALL_TOLERANCE = 1.05


@dataclass(slots=True)
class Work:
    """One server's measured work per request at each connection count (None: not measured)."""

    label: str
    instructions: dict[int, float | None] = field(default_factory=dict)
    syscalls: dict[int, float | None] = field(default_factory=dict)  # futex apart
    futexes: dict[int, float | None] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def count_instructions(contender: Contender, load: Path, counts: Sequence[int],
                       scratch: Path, work: Work) -> None:
    """Instructions per request at each count: (long run − short run) / (their request gap)."""
    with CountedServer(contender, scratch) as server:
        server.instrument()
        for count in counts:
            counted = []
            for seconds in (SHORT_SECONDS, LONG_SECONDS):
                with server.interval() as interval:
                    result = run_reference_load(load, server.port, count, seconds)
                if result.rate is None:
                    work.failures.append(f"{work.label} at {count} under callgrind: "
                                         f"{result.failure}")
                    break
                counted.append((interval.instructions, result.rate * seconds))
            if len(counted) == 2:
                (short_ir, short_n), (long_ir, long_n) = counted
                work.instructions[count] = ((long_ir - short_ir) / (long_n - short_n)
                                            if long_n > short_n else None)


def count_syscalls(contender: Contender, load: Path, counts: Sequence[int], work: Work) -> None:
    """Syscalls per request at each count, under strace -c -f at the server's own speed."""
    with RunningServer(contender) as server:
        for count in counts:
            with strace_counting(server.process.pid) as calls:
                result = run_reference_load(load, server.port, count, STRACE_SECONDS)
            if result.rate:
                requests = result.rate * STRACE_SECONDS
                futexes = calls.pop("futex", 0)
                work.syscalls[count] = sum(calls.values()) / requests
                work.futexes[count] = futexes / requests
            else:
                work.failures.append(f"{work.label} at {count} under strace: {result.failure}")


def measure_group(name: str, listings: dict[str, Path], features: ServeFeatures, load: Path,
                  counts: Sequence[int], scratch: Path) -> list[Work]:
    """The book's listing for ``name`` and zenserve's ``name``, both ways, at every count."""
    contenders = [book_contender(listings[BOOK_COUNTERPARTS[name].listing])]
    contenders.append(zenserve_contender(name, 0, features.serve_arguments,
                                         name in INHERITING_ARCHITECTURES))
    measured = []
    for contender in contenders:
        work = Work(contender.label)
        print(f"  [{name}] {contender.label}", file=sys.stderr, flush=True)
        count_instructions(contender, load, counts, scratch / name, work)
        count_syscalls(contender, load, counts, work)
        measured.append(work)
    return measured


def per_count(values: dict[int, float | None], counts: Sequence[int], digits: int) -> str:
    return " / ".join("—" if values.get(count) is None else f"{values[count]:,.{digits}f}"
                      for count in counts)


def book_over_zenserve(book: Work, zen: Work, counts: Sequence[int]) -> dict[int, float | None]:
    """The book's instructions per request over zenserve's: above 1.0, zenserve does less."""
    ratios: dict[int, float | None] = {}
    for count in counts:
        mine, theirs = zen.instructions.get(count), book.instructions.get(count)
        ratios[count] = theirs / mine if mine and theirs is not None else None
    return ratios


def verdicts(name: str, book: Work, zen: Work, counts: Sequence[int]) -> list[str]:
    """Per count: does zenserve do less work per request than the book (both measures)?"""
    lines = []
    for count, ratio in book_over_zenserve(book, zen, counts).items():
        mine, theirs = zen.syscalls.get(count), book.syscalls.get(count)
        if ratio is None or mine is None or theirs is None:
            continue
        fewer_syscalls = mine <= theirs * SYSCALL_TOLERANCE
        less = ratio >= 1.0 and fewer_syscalls
        lines.append(f"{count}: {'less work' if less else 'MORE WORK'} "
                     f"(book ÷ zenserve {ratio:.2f}× in instructions; syscalls but futex "
                     f"{mine:.2f} vs the book's {theirs:.2f})")
    return [f"- {name}: " + "; ".join(lines)] if lines else [f"- {name}: not compared"]


def report(results: dict[str, list[Work]], counts: Sequence[int], busy: str | None) -> str:
    lines = section_start("## Work per request, counted: instructions and syscalls vs the book",
                          (busy,), "Instruction counts hold on a busy machine; syscalls less so.")
    shown = "/".join(map(str, counts))
    lines += [f"- instructions: user space, callgrind, ({LONG_SECONDS:g} s run − {SHORT_SECONDS:g}"
              f" s run) / (their request gap) under the C load generator; syscalls: `strace -c "
              f"-f` over {STRACE_SECONDS:g} s, connecting included",
              "- zenserve as raced: default limits, metrics on (`--metrics-port 0`)", "",
              f"| architecture | server | instructions per request ({shown}) | syscalls per "
              f"request but futex ({shown}) | futex per request ({shown}) | book ÷ zenserve, "
              f"instructions ({shown}) |", "|---|---|---|---|---|---|"]
    summary = ["", "Verdicts (less work: at most the book's instructions, so book ÷ zenserve "
               f"≥ 1.0×, and syscalls but futex within {SYSCALL_TOLERANCE - 1:.0%} of its):", ""]
    for name, (book, zen) in results.items():
        ratios = per_count(book_over_zenserve(book, zen, counts), counts, 2)
        for work, shown_ratio in ((book, ""), (zen, ratios)):
            lines.append(f"| {name} | {work.label} | {per_count(work.instructions, counts, 0)} | "
                         f"{per_count(work.syscalls, counts, 2)} | "
                         f"{per_count(work.futexes, counts, 2)} | {shown_ratio} |")
        summary += verdicts(name, book, zen, counts)
    failures = [f"- {name}: {failure}" for name, works in results.items() for work in works
                for failure in work.failures]
    if failures:
        summary += ["", "Not measured:", "", *failures]
    return "\n".join(lines + summary) + "\n"


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--arch", action="append", default=[], metavar="NAME",
                        choices=sorted(BOOK_COUNTERPARTS),
                        help="architecture (repeatable; default: all); implies --no-record")
    parser.add_argument("--connections", type=int, nargs="+", default=list(CONNECTION_COUNTS),
                        metavar="N", help="connection counts (default 1 10 100); others than "
                                          "the default imply --no-record")
    parser.add_argument("--no-record", action="store_true",
                        help="print the table only; leave RESULTS.md alone")
    args = parser.parse_args(argv)
    args.no_record = (args.no_record or bool(args.arch)
                      or tuple(args.connections) != CONNECTION_COUNTS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    names = args.arch or [name for name in ARCHITECTURES if name in BOOK_COUNTERPARTS]
    features = ServeFeatures.probe()

    def produce() -> str:
        with tempfile.TemporaryDirectory(prefix="zenserve-instructions-") as scratch:
            tools = build_reference(Path(scratch))
            listings = prepare_listings(Path(scratch) / "book")
            results = {}
            for name in names:
                book, zen = measure_group(name, listings, features, tools.load,
                                          args.connections, Path(scratch))
                results[name] = [book, zen]
        return report(results, args.connections, None)

    return run_and_record("instructions benchmark", SECTION, not args.no_record, produce)


if __name__ == "__main__":
    sys.exit(main())
