"""`zenserve soak`: mixed normal and hostile load for a while, then the final tally."""

from __future__ import annotations

import argparse
import contextlib
import socket
from collections.abc import Iterator

import psutil

from zenserve.commands.options import remote_port
from zenserve.config import DEFAULT_HOST, MAX_WORKERS
from zenserve.cost import parse_duration
from zenserve.errors import ZenserveError
from zenserve.footprint import Footprint, footprint, settle
from zenserve.net import is_loopback
from zenserve.process import ServerProcess
from zenserve.servers import get_architecture
from zenserve.soak import SoakPlan, Tally, run_soak

HELP = "run mixed normal and hostile load against a loopback server and print the tally"

MAX_DURATION = 24 * 3600.0
# The server soak starts unless told otherwise: an event loop holds 100 slow
# clients without a thread each.
DEFAULT_ARCHITECTURE = "asyncio-callbacks"
# A server started by soak gets short timeouts, so slowloris connections are
# closed (and replaced) many times within a short soak.
OWN_SERVER_OPTIONS = ("--idle-timeout", "2s", "--request-timeout", "1s")
# After the load stops, how long the server may take to close what it left.
SETTLE_SECONDS = 5.0
# A loopback server that does not accept within this is not serving.
CONNECT_TIMEOUT = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("host", nargs="?", default=DEFAULT_HOST,
                        help=f"server address, loopback only (default {DEFAULT_HOST})")
    parser.add_argument("-p", "--port", type=remote_port, default=None,
                        help="soak the server already on this port (default: start one)")
    parser.add_argument("--arch", metavar="NAME",
                        help="architecture of the server soak starts, not with -p "
                             f"(default {DEFAULT_ARCHITECTURE})")
    parser.add_argument("--workers", type=int, metavar="N",
                        help=f"worker processes of the server soak starts, 0 to {MAX_WORKERS}, "
                             "not with -p (default 0)")
    parser.add_argument("-d", "--duration", default="10s", metavar="DURATION",
                        help="how long to run, e.g. 30s (default 10s)")
    parser.add_argument("--askers", type=int, default=4, metavar="N",
                        help="normal clients checking every answer (default 4)")
    parser.add_argument("--slow", type=int, default=100, metavar="N",
                        help="slowloris connections kept open (default 100)")


def run(args: argparse.Namespace) -> int:
    duration = parse_duration(args.duration)
    if not 0 < duration <= MAX_DURATION:
        raise ZenserveError(f"--duration must be more than 0 and at most {MAX_DURATION:g}s")
    if not is_loopback(args.host):
        raise ZenserveError(f"soak sends hostile traffic to loopback only; {args.host} is not")
    if args.askers < 1 or args.slow < 0:
        raise ZenserveError("--askers must be at least 1 and --slow at least 0")
    if args.port is not None and (args.arch is not None or args.workers is not None):
        # They describe a server soak would start; -p soaks one already running.
        raise ZenserveError("--arch and --workers are for the server soak starts; with -p "
                            "PORT it soaks the server already there: give one or the other")
    with _target(args) as (port, pid):
        start = _footprint(pid)
        print(f"Soaking {args.host}:{port} for {duration:g}s ...", flush=True)
        tally = run_soak(SoakPlan(args.host, port, duration, args.askers, args.slow))
        end = _settled_footprint(pid, start)
        alive = _running(pid) if pid is not None else _answers_connect(args.host, port)
    print_tally(tally, start, end, alive)
    return 0 if alive and not tally.errors else 1


@contextlib.contextmanager
def _target(args: argparse.Namespace) -> Iterator[tuple[int, int | None]]:
    """The port to soak and the server's pid: the given server's, or one started here."""
    if args.port is not None:
        if not _answers_connect(args.host, args.port):
            # Else every client would be refused for the whole --duration.
            raise ZenserveError(f"nothing accepts connections at {args.host}:{args.port}")
        yield args.port, listening_pid(args.port)
        return
    architecture = args.arch or DEFAULT_ARCHITECTURE
    get_architecture(architecture)  # one line for a typo, before a server is started
    if args.workers is not None and args.workers < 0:
        raise ZenserveError("--workers must be 0 (serve in one process) or more")
    if args.workers is not None and args.workers > MAX_WORKERS:
        raise ZenserveError(f"--workers must be at most {MAX_WORKERS}")
    workers = ("--workers", str(args.workers)) if args.workers else ()
    with ServerProcess(args.host, "--arch", architecture, *workers,
                       *OWN_SERVER_OPTIONS) as server:
        yield server.port, server.process.pid
        server.stop()


def _answers_connect(host: str, port: int) -> bool:
    """Whether a server accepts a connection at ``host:port`` (a server whose pid is unknown)."""
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT).close()
    except OSError:
        return False
    return True


def _running(pid: int) -> bool:
    """Whether ``pid`` runs: a server started here that died stays a zombie until reaped."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def listening_pid(port: int) -> int | None:
    """The topmost process listening on ``port`` (a supervisor, not its workers), if visible."""
    pids = {c.pid for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid}
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).ppid() not in pids:
                return int(pid)
    return None


def _settled_footprint(pid: int | None, start: Footprint | None) -> Footprint | None:
    """The footprint once the server has closed what the soak left (bounded wait)."""
    if pid is None or start is None:
        return _footprint(pid)
    try:
        return settle(pid, lambda now: not now.exceeds(start), SETTLE_SECONDS)
    except psutil.NoSuchProcess:
        return None


def _footprint(pid: int | None) -> Footprint | None:
    if pid is None:
        return None
    try:
        return footprint(pid)
    except psutil.NoSuchProcess:
        return None


def print_tally(tally: Tally, start: Footprint | None, end: Footprint | None,
                alive: bool) -> None:
    """The final tally, one fact per line."""
    rows = [("requests answered", str(tally.answered)),
            ("errors", _counts(tally.errors) or "none")]
    rows += [(f"  hostile: {kind}", str(count)) for kind, count in sorted(tally.hostile.items())]
    if start is not None and end is not None:
        rows += [("server memory (RSS)",
                  f"{start.rss_bytes / 2**20:.1f} MiB -> {end.rss_bytes / 2**20:.1f} MiB"),
                 ("server descriptors", f"{start.fds} -> {end.fds}"),
                 ("server threads", f"{start.threads} -> {end.threads}"),
                 ("server processes", f"{start.processes} -> {end.processes}")]
    else:
        rows.append(("server footprint", "unknown (its process is not visible here)"))
    rows.append(("server", "still running" if alive else "DIED"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{kind}: {count}" for kind, count in sorted(counter.items()) if count)
