"""`zenserve compare`: every architecture through the same experiments; a report with plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from zenserve.lab import Plan

HELP = ("start each architecture in turn, measure throughput, latency, concurrency, "
        "availability and scalability, and write a report with plots")
DEFAULT_OUT = Path("zenserve-report")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--architectures", metavar="A,B,...",
                        help="run every experiment on exactly these (default: all but inetd; "
                             "with --quick one of each kind per experiment)")
    parser.add_argument("--quick", action="store_true",
                        help="fewer points, shorter runs, fewer architectures per experiment "
                             "(a few minutes on 2 cores; the full run takes under 20)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                        help=f"where to write report.html, results.json/.csv and the PNGs "
                             f"(default ./{DEFAULT_OUT}/)")
    # For the tests: every section, 2 architectures, 2 points, 0.3 s runs.
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)


def plan_from(args: argparse.Namespace) -> Plan:
    """The plan the options ask for."""
    from zenserve import lab

    plan = lab.tiny_plan() if args.tiny else lab.quick_plan() if args.quick else lab.full_plan()
    if args.architectures is not None:
        names = [name.strip() for name in args.architectures.split(",") if name.strip()]
        plan = lab.with_architectures(plan, names)
    return plan


def run(args: argparse.Namespace) -> int:
    # Imported here: every `zenserve` command builds the whole parser, and
    # `zenserve serve` should not pay for the lab, rich and the load generator.
    from rich.console import Console

    from zenserve import lab
    from zenserve.lab.compare import prepare
    from zenserve.lab.progress import ProgressReporter
    from zenserve.lab.summary import summary_table

    plan = plan_from(args)
    prepare(args.out)  # an unwritable --out is said before anything else is printed
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log file or a pipe: room for the summary's columns
    console.print(f"zenserve compare ({plan.name}): {', '.join(plan.all_architectures)}; "
                  f"every server on loopback, one at a time", highlight=False)
    with ProgressReporter(console, lab.total_steps(plan)) as reporter:
        results, report = lab.compare(plan, args.out, reporter)
    console.print(summary_table(results, plan.all_architectures, plan.timing.duration))
    if results.warnings:
        console.print(f"{len(results.warnings)} warning(s): see the report.", style="yellow")
    console.print(f"Took {results.elapsed_s:,.0f} s. Report: {report.resolve()}", highlight=False)
    console.print(f"Data: {report.parent.resolve()}/results.json and results.csv",
                  highlight=False)
    return 0
