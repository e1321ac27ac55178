"""Every registered architecture against its book listing and the C yardstick, in one run.

    .venv/bin/python benchmarks/architectures.py            # full run: 7 rounds × 1 s
    .venv/bin/python benchmarks/architectures.py --quick    # 1 round × 1 s, marked provisional
    .venv/bin/python benchmarks/architectures.py --arch poll --arch epoll

For each architecture in zenserve's registry (whatever it holds when this
runs), the C reference load generator drives, at 1, 10 and 100 connections:
the C reference server, the book's listing for that architecture (from the
course text, its ``time.sleep(0.0)`` removed, or a labelled reconstruction
from book_baselines/) and a second copy of it (the A/A copy, which measures
what two identical servers differ by), zenserve with that architecture, and
zenserve with ``--workers 2`` when ``serve`` has it. Runs are interleaved;
each rate is the median of its rounds and each ratio to the book the median
of its per-round ratios (architecture_table). The table goes to stdout and to
its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from architecture_table import (
    C_LABEL,
    GroupResult,
    book_summary,
    failure_notes,
    fastest_summary,
    markdown_table,
)
from contenders import (
    Contender,
    RunningServer,
    book_contender,
    c_reference_contender,
    zenserve_contender,
)
from other_work import OtherWork
from race import Entrant, RaceSettings, run_race
from reference import build_reference
from results_file import run_and_record, runs_without_a_rate, section_start
from script_options import RunLength, parse_race_arguments

from zenserve.book import write_listings
from zenserve.errors import ZenserveError
from zenserve.servers import ARCHITECTURES

SECTION = "architectures"
BASELINES = Path(__file__).resolve().parent / "book_baselines"
CONNECTION_COUNTS = (1, 10, 100)


@dataclass(frozen=True, slots=True)
class Counterpart:
    """The book listing an architecture is raced against, and why that one."""

    listing: str
    why: str


BOOK_COUNTERPARTS = {
    "single": Counterpart("srv_single.py", "listing 7-3"),
    "threaded": Counterpart("srv_threaded.py", "listing 7-4 (4 threads)"),
    "socketserver": Counterpart("srv_legacy1.py", "listing 7-5, reconstructed (not in the seed)"),
    "forking": Counterpart("srv_legacy_forking.py",
                           "listing 7-5 with ForkingMixIn as the book's text suggests, "
                           "reconstructed"),
    "poll": Counterpart("srv_async.py", "listing 7-6"),
    "epoll": Counterpart("srv_async.py", "no book listing; 7-6, the same loop on poll()"),
    "asyncio-callbacks": Counterpart("srv_asyncio1.py", "listing 7-7, reconstructed"),
    "asyncio-coroutines": Counterpart("srv_asyncio2.py",
                                      "listing 7-8, reconstructed, async/await for 3.11"),
    "uvloop": Counterpart("srv_asyncio1.py", "no book listing; 7-7's callbacks on stock asyncio"),
    "gevent": Counterpart("srv_legacy1.py",
                          "no book listing; 7-5's task per client (threads, not greenlets)"),
    "inetd": Counterpart("srv_single.py", "no runnable book listing; an inetd wait-mode server "
                         "runs 7-1's accept loop, as 7-3 does"),
}

# Raced as they are deployed: handed a listening socket as fd 0 (inetd's wait mode).
INHERITING_ARCHITECTURES = frozenset({"inetd"})
# What the 10- and 100-connection columns mean for servers that do not serve everyone at once.
CONCURRENCY_NOTES = {
    "one": "serves one client at a time: at 10 and 100 connections the others wait in the "
           "backlog, so the rate is one client's (or the run times out past the backlog)",
    "pool": "serves a fixed pool of clients at a time: the rest wait in the backlog",
}


def prepare_listings(directory: Path) -> dict[str, Path]:
    """The seed's listings (sleep removed) and our reconstructions, side by side with zen_utils."""
    paths = write_listings(directory, without_sleep=True)
    for baseline in sorted(BASELINES.glob("srv_*.py")):
        paths[baseline.name] = Path(shutil.copy(baseline, directory / baseline.name))
    return paths


@dataclass(frozen=True, slots=True)
class ServeFeatures:
    """What this checkout's ``zenserve serve`` offers (others are adding options as we race)."""

    workers: bool
    metrics: bool

    @classmethod
    def probe(cls) -> ServeFeatures:
        result = subprocess.run([sys.executable, "-m", "zenserve", "serve", "--help"],
                                capture_output=True, text=True, timeout=60, check=False)
        return cls(workers="--workers" in result.stdout,
                   metrics="--metrics-port" in result.stdout)

    @property
    def serve_arguments(self) -> tuple[str, ...]:
        # Issue 7 judges zenserve with its metrics on: counting must cost little.
        return ("--metrics-port", "0") if self.metrics else ()


@dataclass(frozen=True, slots=True)
class Group:
    """The contenders raced for one architecture, and which of them are the book's."""

    book_label: str | None
    twin_label: str | None
    contenders: list[Contender]


def group_contenders(name: str, listings: dict[str, Path], features: ServeFeatures) -> Group:
    """The contenders raced for architecture ``name``: book, its A/A copy, zenserve setups."""
    contenders = []
    book_label = twin_label = None
    counterpart = BOOK_COUNTERPARTS.get(name)
    if counterpart is not None and counterpart.listing in listings:
        book = book_contender(listings[counterpart.listing])
        twin = dataclasses.replace(book, label=f"{book.label} (A/A copy)")
        contenders += [book, twin]
        book_label, twin_label = book.label, twin.label
    inherit = name in INHERITING_ARCHITECTURES
    contenders.append(zenserve_contender(name, 0, features.serve_arguments, inherit))
    if features.workers:
        contenders.append(zenserve_contender(name, 2, features.serve_arguments, inherit))
    return Group(book_label, twin_label, contenders)


@contextmanager
def started(contenders: Sequence[Contender]) -> Iterator[list[Entrant]]:
    """Start every contender; one that fails to start is raced as a failure, not a crash."""
    with ExitStack() as stack:
        entrants = []
        for contender in contenders:
            try:
                server = stack.enter_context(RunningServer(contender))
                entrants.append(Entrant(contender.label, server.port))
            except ZenserveError as error:
                entrants.append(Entrant(contender.label, None, str(error)))
        yield entrants


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    def provisional_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--provisional", metavar="WHY",
                            help="mark the recorded table provisional, saying why")

    return parse_race_arguments(
        argv, __doc__.splitlines()[0] if __doc__ else None, quick=RunLength(1, 1.0),
        full=RunLength(7, 1.0), arch_default="all registered", connections=CONNECTION_COUNTS,
        extend=provisional_option)


def race_all(names: Sequence[str], settings: RaceSettings,
             features: ServeFeatures) -> list[GroupResult]:
    """Build the yardsticks, then race every architecture's group beside the C servers."""
    groups = []
    with tempfile.TemporaryDirectory(prefix="zenserve-bench-") as scratch:
        tools = build_reference(Path(scratch))
        listings = prepare_listings(Path(scratch) / "book")
        # The two-process C server is raced in fastest.py, where --workers setups are.
        with started([c_reference_contender(tools.server, 1)]) as c_entrants:
            for name in names:
                group = group_contenders(name, listings, features)
                with started(group.contenders) as entrants:
                    points = run_race(name, [*c_entrants, *entrants], settings, tools.load)
                groups.append(GroupResult(
                    name, group.book_label, tuple(entrant.label for entrant in entrants),
                    tuple(entrant.label for entrant in c_entrants), points, group.twin_label))
    return groups


def report(groups: Sequence[GroupResult], args: argparse.Namespace,
           features: ServeFeatures, busy: str | None) -> str:
    """The markdown section: heading, provenance, table, verdicts and notes."""
    make_target = {(): " (or `make bench`)", ("--quick",): " (or `make bench-quick`)"}
    lines = section_start(
        "## Architectures vs the book's listings and the C reference",
        (args.provisional, busy), "Not final numbers. The full run: `make bench` "
        "(7 rounds × 1 s per point, about 35 minutes) on a quiet machine.",
        make_target.get(tuple(sys.argv[1:]), ""))
    lines += [f"- each point: median of {args.rounds} run(s) of {args.seconds:g} s by the C "
              "reference load generator (zen_ref_load.c, cc -O2), contenders interleaved",
              "- × book: the median of the per-round ratios to the book's listing (each round "
              "drives both within seconds); the `(A/A copy)` row is a second copy of the book's "
              "listing, raced the same way: what two identical servers differ by",
              "- zenserve: default limits, metrics "
              + ("on (`--metrics-port 0`)" if features.metrics else "not available yet")
              + (", `--workers 2` rows" if features.workers else ", no `--workers` yet"),
              f"- × C: against the one-process C reference measured in the same group "
              f"(the `{C_LABEL}` row shows the median over all groups)", "",
              markdown_table(groups, args.connections), "",
              *book_summary(groups, args.connections), *fastest_summary(groups), "",
              "Book counterparts (book listings run from the seed with `time.sleep(0.0)` "
              "removed; reconstructions live in benchmarks/book_baselines/):", ""]
    for group in groups:
        counterpart = BOOK_COUNTERPARTS.get(group.architecture)
        if group.book_label is None or counterpart is None:
            lines.append(f"- {group.architecture}: n/a (no book counterpart)")
        else:
            lines.append(f"- {group.architecture}: {counterpart.listing} ({counterpart.why})")
        if group.architecture in INHERITING_ARCHITECTURES:
            lines.append("  - zenserve started with `--inherit` and a bound listener as fd 0, "
                         "as inetd's wait mode starts it")
        concurrency = ARCHITECTURES[group.architecture].concurrency
        if concurrency in CONCURRENCY_NOTES:
            lines.append(f"  - {CONCURRENCY_NOTES[concurrency]}")
    lines += runs_without_a_rate(failure_notes(groups, args.connections))
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    names = args.arch or list(ARCHITECTURES)
    settings = RaceSettings(tuple(args.connections), args.rounds, args.seconds)
    features = ServeFeatures.probe()

    def produce() -> str:
        with OtherWork() as other:  # the race's own servers and generators do not count
            groups = race_all(names, settings, features)
        return report(groups, args, features, other.note())

    return run_and_record("architectures benchmark", SECTION, not args.no_record, produce)


if __name__ == "__main__":
    sys.exit(main())
