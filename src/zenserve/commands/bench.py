"""`zenserve bench`: the load generator (closed or open loop), library in zenserve.load."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from zenserve import load
from zenserve.commands.options import add_address_arguments
from zenserve.cost import parse_duration
from zenserve.errors import ZenserveError
from zenserve.load import BenchOptions, BenchResult, questions_from_table
from zenserve.load.display import ProgressDisplay, print_result, warn_if_saturated
from zenserve.load.eventloop import EVENT_LOOPS
from zenserve.load.options import DEFAULT_TIMEOUT, OptionError
from zenserve.protocol import DEFAULT_MAX_REQUEST_BYTES
from zenserve.service import load_table, pep20_table

HELP = "load a zen server and measure throughput and latency (checking every answer)"

# BenchOptions' settings as this command's flags: its errors name what the user typed.
FLAGS = {
    "connections": "-c/--connections", "rate": "-R/--rate", "duration": "-d/--duration",
    "warmup": "--warmup", "timeout": "--timeout", "processes": "--processes",
    "unknown_ratio": "--unknown-ratio", "error_ratio": "--error-ratio",
    "max_request_bytes": "--max-request-bytes", "event_loop": "--loop",
    "questions": "the table of --aphorisms",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address_arguments(parser, "server to load", listening=False)
    load = parser.add_argument_group("load")
    load.add_argument("-c", "--connections", type=int, default=10, metavar="N",
                      help="connections, each one question at a time (default 10)")
    load.add_argument("-R", "--rate", type=float, metavar="REQ/S",
                      help="open loop: this many requests/s in total, on a schedule; latency "
                           "counts from each request's intended send time (default: closed loop)")
    load.add_argument("-d", "--duration", default="10s", metavar="DURATION",
                      help="measured time (default 10s)")
    load.add_argument("--warmup", default="1s", metavar="DURATION",
                      help="load before measuring, not counted (default 1s)")
    load.add_argument("--connection-per-request", action="store_true",
                      help="connect, ask one question, close (accept/close churn)")
    load.add_argument("--processes", type=int, metavar="N",
                      help="load processes (default: half the cores, at least 1)")
    load.add_argument("--timeout", default=f"{DEFAULT_TIMEOUT:g}s", metavar="DURATION",
                      help=f"an answer or a connect slower than this is an error "
                           f"(default {DEFAULT_TIMEOUT:g}s)")
    load.add_argument("--loop", choices=EVENT_LOOPS, default="auto",
                      help="event loop of the load processes (default: uvloop if installed)")
    mix = parser.add_argument_group("question mix")
    mix.add_argument("--aphorisms", type=Path, metavar="FILE",
                     help="the table the server answers from (default: PEP 20)")
    mix.add_argument("-q", "--question", action="append", default=[], metavar="TEXT",
                     help="ask only this question of the table (repeatable)")
    mix.add_argument("--unknown-ratio", type=float, default=0.0, metavar="F",
                     help="share of questions not in the table (answer: unknown aphorism)")
    mix.add_argument("--error-ratio", type=float, default=0.0, metavar="F",
                     help="share of malformed requests: over-long and binary (see README)")
    mix.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES,
                     metavar="N", help="the server's limit, for over-long requests (default "
                                       f"{DEFAULT_MAX_REQUEST_BYTES})")
    mix.add_argument("--seed", type=int, default=1060, help="seed of the question mix")
    output = parser.add_argument_group("output")
    output.add_argument("--json", type=Path, metavar="FILE",
                        help="write the result as JSON (schema in the README)")
    output.add_argument("--hgrm", type=Path, metavar="FILE",
                        help="write the latency percentile spectrum (HdrHistogram .hgrm)")
    output.add_argument("--quiet", action="store_true",
                        help="no progress and no tables (warnings still go to stderr)")
    output.add_argument("--no-timeline", action="store_true",
                        help="leave the per-second rows out of the printed summary")


def options_from(args: argparse.Namespace) -> BenchOptions:
    """The frozen options of a run, from the command line (errors name the flags)."""
    table = load_table(args.aphorisms) if args.aphorisms else pep20_table()
    questions = questions_from_table(table, [text.encode() for text in args.question])
    try:
        return BenchOptions(
            host=args.host, port=args.port, connections=args.connections, rate=args.rate,
            duration=_duration(args.duration, "duration"),
            warmup=_duration(args.warmup, "warmup"),
            connection_per_request=args.connection_per_request, questions=questions,
            unknown_ratio=args.unknown_ratio, error_ratio=args.error_ratio,
            max_request_bytes=args.max_request_bytes, processes=args.processes,
            timeout=_duration(args.timeout, "timeout"), seed=args.seed, event_loop=args.loop,
        )
    except OptionError as error:
        raise ZenserveError(error.worded(FLAGS)) from None


def _duration(text: str, setting: str) -> float:
    try:
        return parse_duration(text)
    except ZenserveError as error:
        raise ZenserveError(f"{FLAGS[setting]}: {error}") from None


def run_command(args: argparse.Namespace) -> BenchResult:
    """Run the load with progress shown as the options ask; print the result."""
    options = options_from(args)
    if args.quiet:
        result = load.run(options)
        warn_if_saturated(result, Console(stderr=True))
        return result
    with ProgressDisplay(Console(stderr=True)) as display:
        result = load.run(options, progress=display)
    print_result(result, Console(), timeline=not args.no_timeline)
    return result


def run(args: argparse.Namespace) -> int:
    for path in (args.json, args.hgrm):
        if path is not None:
            check_writable(path)
    result = run_command(args)
    try:
        if args.json:
            result.write_json(args.json)
        if args.hgrm:
            args.hgrm.write_text(result.hgrm(), encoding="ascii")
    except OSError as error:
        raise ZenserveError(f"cannot write {error.filename}: {error.strerror}") from None
    return 0


def check_writable(path: Path) -> None:
    """Refuse an output file that cannot be written before the run, not after it."""
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as error:
        raise ZenserveError(f"cannot write {path}: {error.strerror}") from None
    if not existed:  # leave no empty file behind if the run itself fails
        path.unlink()
