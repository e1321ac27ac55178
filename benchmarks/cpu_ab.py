"""Server CPU per request of two versions of zenserve's code, side by side (an A/B of a change).

    .venv/bin/python benchmarks/cpu_ab.py --arch asyncio-coroutines                # HEAD vs tree
    .venv/bin/python benchmarks/cpu_ab.py --arch asyncio-coroutines --workers 1 --workers 2 \\
        --cost --before 3ffbf93

The "before" version is ``git archive`` of a revision's ``src`` (HEAD by
default) in a scratch directory, served with that directory first on
PYTHONPATH; the "after" version is the working tree. Every setup runs as its
own server at the same time, and each round drives every server once with the
C reference load generator (10 connections, closed loop), interleaved, so
other work on the machine weighs on both versions alike. What is charged is
the server's own CPU time (user + system, workers included, psutil) over the
requests of each run: steadier under other work than a rate, which the table
shows only for orientation. Servers start fresh: the first round is each
process's first clients (``--skip-rounds`` leaves it out of the medians).
Prints a table; records nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from contenders import Contender, RunningServer, zenserve_contender
from profile_tools import measure_cpu
from reference import build_reference, run_reference_load

from zenserve.errors import ZenserveError

REPOSITORY = Path(__file__).resolve().parent.parent
CONNECTIONS = 10
COST = ("--cost", "100us", "--cost-kind", "cpu")
GIT_TIMEOUT_SECONDS = 60


@dataclass(slots=True)
class Samples:
    """One setup's runs: rate, user and system µs per request of each round."""

    runs: list[tuple[float, float, float]] = field(default_factory=list)

    def medians(self, skip: int) -> tuple[float, float, float, float]:
        """Median rate, user + system, user and system, the first ``skip`` rounds left out."""
        kept = self.runs[skip:] or self.runs
        return (statistics.median(rate for rate, _, _ in kept),
                statistics.median(user + system for _, user, system in kept),
                statistics.median(user for _, user, _ in kept),
                statistics.median(system for _, _, system in kept))


def export_source(revision: str, scratch: Path) -> Path:
    """``src`` of ``revision`` unpacked under ``scratch``; the directory to put on PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(REPOSITORY), "archive", revision, "src"],
                             capture_output=True, check=True, timeout=GIT_TIMEOUT_SECONDS)
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive.stdout, check=True,
                   timeout=GIT_TIMEOUT_SECONDS)
    return scratch / "src"


def contender(source: Path, architecture: str, workers: int, extra: tuple[str, ...]) -> Contender:
    """zenserve's ``serve`` importing the package from ``source``."""
    plain = zenserve_contender(architecture, workers, extra)
    return Contender(plain.label, plain.role, ("env", f"PYTHONPATH={source}", *plain.command),
                     announces_port=True)


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--arch", action="append", required=True, metavar="NAME",
                        help="architecture (repeatable)")
    parser.add_argument("--workers", action="append", type=int, metavar="N",
                        help="--workers N (repeatable; default 1)")
    parser.add_argument("--cost", action="store_true", help=f"serve with {' '.join(COST)}")
    parser.add_argument("--before", default="HEAD", help="git revision of the 'before' code")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each run")
    parser.add_argument("--skip-rounds", type=int, default=0,
                        help="leave the first N rounds out of the medians")
    args = parser.parse_args(argv)
    if not 0 <= args.skip_rounds < args.rounds:
        parser.error("--skip-rounds must leave at least one of the --rounds")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        samples = measure(args)
    except subprocess.CalledProcessError as error:
        print(f"cpu_ab: cannot export src of {args.before!r}: "
              f"{error.stderr.decode(errors='replace').strip() if error.stderr else error}",
              file=sys.stderr)
        return 1
    except ZenserveError as error:
        print(f"cpu_ab: {error}", file=sys.stderr)
        return 1
    print_table(samples, args)
    return 0


def measure(args: argparse.Namespace) -> dict[tuple[str, str, int], Samples]:
    """Start every setup, then drive each once per round; the samples of each setup."""
    extra = ("--metrics-port", "0", *(COST if args.cost else ()))
    setups = [(version, name, workers) for name in args.arch for workers in args.workers or [1]
              for version in ("before", "after")]
    samples = {setup: Samples() for setup in setups}
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zenserve-ab-")))
        sources = {"before": export_source(args.before, scratch), "after": REPOSITORY / "src"}
        load = build_reference(scratch).load
        servers = {setup: stack.enter_context(RunningServer(
            contender(sources[setup[0]], setup[1], setup[2], extra))) for setup in setups}
        for round_number in range(args.rounds):
            for setup, server in servers.items():
                drive = partial(run_reference_load, load, server.port, CONNECTIONS, args.seconds)
                profile = measure_cpu(server.process.pid, drive, args.seconds)
                if profile.rate:
                    samples[setup].runs.append((profile.rate, profile.user_us, profile.system_us))
                print(f"  round {round_number + 1}: {setup[0]} {setup[1]} --workers {setup[2]}: "
                      f"{profile.user_us + profile.system_us:.1f} µs/req" if profile.rate
                      else f"  {setup}: {profile.failure}", file=sys.stderr, flush=True)
    return samples


def print_table(samples: dict[tuple[str, str, int], Samples], args: argparse.Namespace) -> None:
    print(f"server CPU µs per request, {CONNECTIONS} connections, C load, "
          f"{'cost ' + ' '.join(COST) if args.cost else 'no cost'}; before = {args.before}, "
          f"after = working tree; medians of {args.rounds - args.skip_rounds} round(s)\n")
    print("| architecture | workers | version | user + sys | user | sys | req/s (skewed) |")
    print("|---|---|---|---|---|---|---|")
    for (version, name, workers), found in samples.items():
        if not found.runs:
            print(f"| {name} | {workers} | {version} | no run | | | |")
            continue
        rate, total, user, system = found.medians(args.skip_rounds)
        print(f"| {name} | {workers} | {version} | {total:.1f} | {user:.1f} | {system:.1f} | "
              f"{rate:,.0f} |")


if __name__ == "__main__":
    sys.exit(main())
