"""Resident memory per idle connection (C10K) on every event-loop architecture.

    .venv/bin/python benchmarks/idle_memory.py                     # 10,000 connections each
    .venv/bin/python benchmarks/idle_memory.py --quick --arch poll   # 2,000, provisional

For each architecture, starts `zenserve serve`, opens the connections from
this process (raising its soft descriptor limit; the server inherits it),
waits until the server holds them all, and divides its RSS growth by their
number. A normal client must still get its answer. The table goes to stdout
and to its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Sequence

from results_file import command_line, machine_lines, update_section
from termination import exit_on_sigterm

from zenserve.client import ZenClient
from zenserve.footprint import footprint, settle
from zenserve.hostile import open_idle
from zenserve.process import ServerProcess
from zenserve.servers import ARCHITECTURES

HELD_WITHIN = 60.0
PEP20_ANSWER = (b"Beautiful is better than?", b"Ugly.")


def raise_descriptor_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        sys.exit(f"idle_memory: the hard descriptor limit {hard} is below {needed}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))


def measure(architecture: str, connections: int) -> tuple[float, float, bool]:
    """(KiB of RSS per idle connection, seconds to hold them all, a normal client served)."""
    with ServerProcess("--arch", architecture, "--idle-timeout", "600s") as server:
        pid = server.process.pid
        before = footprint(pid)
        started = time.monotonic()
        idle = open_idle("127.0.0.1", server.port, connections,
                         accepted=lambda: footprint(pid).fds - before.fds)
        try:
            held = settle(pid, lambda now: now.fds >= before.fds + connections, HELD_WITHIN)
            elapsed = time.monotonic() - started
            with ZenClient("127.0.0.1", server.port) as client:
                served = client.ask(PEP20_ANSWER[0]) == PEP20_ANSWER[1]
        finally:
            for sock in idle:
                sock.close()
        if held.fds < before.fds + connections:
            return float("nan"), elapsed, served
        return (held.rss_bytes - before.rss_bytes) / connections / 1024, elapsed, served


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true",
                        help="2,000 connections, marked provisional")
    parser.add_argument("--arch", action="append", default=[],
                        help="architecture (repeatable; default: every event loop)")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.connections = min(args.connections, 2_000)
    names = args.arch or [name for name, arch in ARCHITECTURES.items() if arch.event_loop]
    raise_descriptor_limit(args.connections + 1000)
    rows = ["| architecture | KiB of RSS per idle connection | held all in | a client served |",
            "|---|---|---|---|"]
    for name in names:
        per_connection, elapsed, served = measure(name, args.connections)
        rows.append(f"| {name} | {per_connection:.1f} | {elapsed:.1f} s | "
                    f"{'yes' if served else 'NO'} |")
        print(rows[-1], flush=True)
    body = [f"## Resident memory per idle connection ({args.connections:,} connections)", "",
            *(["**PROVISIONAL: --quick run.**", ""] if args.quick else []),
            f"- command: `{command_line()}`", *machine_lines(),
            "- RSS of the server process after it holds every connection, minus before, "
            "divided by their number", "", *rows]
    update_section("idle-memory", "\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
