"""What metrics cost: zenserve with and without --metrics-port, alone and under --workers 2.

    .venv/bin/python benchmarks/metrics_cost.py            # 3 rounds × 2 s per point
    .venv/bin/python benchmarks/metrics_cost.py --quick    # 1 round × 1 s, provisional
    .venv/bin/python benchmarks/metrics_cost.py --arch asyncio-callbacks

The C reference load generator drives each setup at 10 and 100 connections,
interleaved. Setups with metrics are scraped over HTTP once a second for the
whole race (Prometheus usually scrapes every 15 s), so the cost of serving
/metrics is in the numbers too, not only the cost of counting. The table goes
to stdout and to its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import urllib.request
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import psutil
from contenders import RunningServer, zenserve_contender
from other_work import OtherWork
from race import Entrant, Point, RaceSettings, run_race
from reference import build_reference
from results_file import run_and_record, section_start
from script_options import RunLength, parse_one_architecture_arguments

from zenserve.errors import ZenserveError

SECTION = "metrics-cost"
CONNECTION_COUNTS = (10, 100)
SCRAPE_INTERVAL_SECONDS = 1.0
METRICS = ("--metrics-port", "0")


def metrics_port(server: RunningServer) -> int:
    """The leader's other listening port: the metrics endpoint (port 0 picked it)."""
    for connection in psutil.Process(server.process.pid).net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port != server.port:
            return int(connection.laddr.port)
    raise ZenserveError(f"{server.contender.label}: no metrics port found")


def scrape_until(stop: threading.Event, urls: Sequence[str], scrapes: list[int]) -> None:
    """Scrape every URL each SCRAPE_INTERVAL_SECONDS until ``stop``; count the successes."""
    while not stop.wait(SCRAPE_INTERVAL_SECONDS):
        for url in urls:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            scrapes[0] += 1


def race(architecture: str, settings: RaceSettings) -> tuple[dict[tuple[str, int], Point], int]:
    setups = [(workers, extra) for workers in (0, 2) for extra in ((), METRICS)]
    with tempfile.TemporaryDirectory(prefix="zenserve-metrics-") as scratch, ExitStack() as stack:
        tools = build_reference(Path(scratch))
        entrants, urls = [], []
        for workers, extra in setups:
            server = stack.enter_context(
                RunningServer(zenserve_contender(architecture, workers, extra)))
            label = server.contender.label + (" --metrics-port" if extra else "")
            entrants.append(Entrant(label, server.port))
            if extra:
                urls.append(f"http://127.0.0.1:{metrics_port(server)}/metrics")
        stop, scrapes = threading.Event(), [0]
        scraper = threading.Thread(target=scrape_until, args=(stop, urls, scrapes), daemon=True)
        scraper.start()
        try:
            points = run_race(architecture, entrants, settings, tools.load)
        finally:
            stop.set()
            scraper.join(timeout=10)
    return points, scrapes[0]


def table(points: dict[tuple[str, int], Point]) -> list[str]:
    labels = list(dict.fromkeys(label for label, _ in points))
    header = " | ".join(f"{count} conns req/s | × off" for count in CONNECTION_COUNTS)
    lines = [f"| setup | {header} |", "|---" * (1 + 2 * len(CONNECTION_COUNTS)) + "|"]
    for label in labels:
        baseline = label.removesuffix(" --metrics-port")
        cells = []
        for count in CONNECTION_COUNTS:
            rate, off = points[label, count].median, points[baseline, count].median
            cells.append(f"{rate:,.0f}" if rate else "-")
            cells.append(f"{rate / off:.2f}" if rate and off else "-")
        lines.append(f"| {label} | {' | '.join(cells)} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_one_architecture_arguments(
        argv, __doc__.splitlines()[0] if __doc__ else None, quick=RunLength(1, 1.0),
        full=RunLength(3, 2.0))

    def produce() -> str:
        with OtherWork() as other:
            points, scrapes = race(args.arch, RaceSettings(CONNECTION_COUNTS, args.rounds,
                                                           args.seconds))
        lines = section_start(f"## What metrics cost ({args.arch})",
                              (args.provisional, other.note()))
        lines += [f"- each point: median of {args.rounds} run(s) of {args.seconds:g} s by "
                  "the C reference load generator, setups interleaved; × off: against the same "
                  f"setup without metrics; {scrapes} scrapes of /metrics (one per second per "
                  "setup) during the race", "", *table(points)]
        return "\n".join(lines) + "\n"

    return run_and_record("metrics benchmark", SECTION, not args.no_record, produce)


if __name__ == "__main__":
    sys.exit(main())
