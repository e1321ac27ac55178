"""Argument groups shared by several commands, and their conversion to configs."""

from __future__ import annotations

import argparse
from pathlib import Path

from zenserve.config import DEFAULT_HOST, DEFAULT_PORT, Limits, ServiceConfig
from zenserve.cost import Cost, CostKind, parse_duration
from zenserve.errors import ZenserveError

HIGHEST_PORT = 65535


def port_number(text: str) -> int:
    """``-p`` of a server: a TCP port, 0 (any free one) to 65535."""
    return _port_in_range(text, 0)


def remote_port(text: str) -> int:
    """``-p`` of a client: the port a server listens on, 1 to 65535."""
    return _port_in_range(text, 1)


def _port_in_range(text: str, lowest: int) -> int:
    # int() alone would let 99999 through, and getaddrinfo() quietly wraps it
    # to 34463: the server would listen, and be asked, on a port nobody chose.
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not lowest <= port <= HIGHEST_PORT:
        raise argparse.ArgumentTypeError(
            f"{port} is not a TCP port ({lowest} to {HIGHEST_PORT})")
    return port


def host_name(text: str) -> str:
    """HOST as typed, or as copied from ``Listening at [::1]:1060``: brackets removed."""
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def add_address_arguments(parser: argparse.ArgumentParser, host_help: str, *,
                          listening: bool = True) -> None:
    """HOST and ``-p PORT``: where a server listens, or (``listening=False``) where to connect."""
    parser.add_argument("host", nargs="?", default=DEFAULT_HOST, type=host_name,
                        help=f"{host_help} (default {DEFAULT_HOST})")
    if listening:
        parser.add_argument("-p", "--port", type=port_number, default=DEFAULT_PORT,
                            help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    else:
        parser.add_argument("-p", "--port", type=remote_port, default=DEFAULT_PORT,
                            help=f"the server's TCP port (default {DEFAULT_PORT})")


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("service")
    group.add_argument("--aphorisms", type=Path, metavar="FILE",
                       help="answer from a TOML/JSON table of question = answer")
    group.add_argument("--service", dest="callable_spec", metavar="MODULE:FUNCTION",
                       help="answer with a callable taking and returning bytes")
    group.add_argument("--cost", default="0", metavar="DURATION",
                       help="simulated cost per request, e.g. 2ms (default 0: free)")
    group.add_argument("--cost-kind", choices=[kind.value for kind in CostKind],
                       default=CostKind.BLOCK.value,
                       help="block: stalls its thread; io: awaited by event loops; "
                            "cpu: busy work holding the GIL (default block)")


def service_config_from(args: argparse.Namespace) -> ServiceConfig:
    return ServiceConfig(
        aphorisms=args.aphorisms,
        callable_spec=args.callable_spec,
        cost=Cost(parse_duration(args.cost), CostKind(args.cost_kind)),
        fault_rate=getattr(args, "fault_rate", 0.0),
    )


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    group = parser.add_argument_group("limits")
    group.add_argument("--max-request-bytes", type=int, default=defaults.max_request_bytes,
                       metavar="N", help=f"longest question (default {defaults.max_request_bytes})")
    group.add_argument("--idle-timeout", default=f"{defaults.idle_timeout:g}s",
                       metavar="DURATION", help="close clients silent this long (default 60s)")
    group.add_argument("--request-timeout", default=f"{defaults.request_timeout:g}s",
                       metavar="DURATION",
                       help="a started question must be complete within this (default 10s)")
    group.add_argument("--max-connections", type=int, default=defaults.max_connections,
                       metavar="N",
                       help="past this, new clients get 'Error: server busy.' (default 0: "
                            "none; socketserver 1000 threads, forking 256 processes)")
    group.add_argument("--graceful-timeout", default=f"{defaults.graceful_timeout:g}s",
                       metavar="DURATION",
                       help="on SIGTERM, how long open conversations may finish (default 10s)")


def limits_from(args: argparse.Namespace) -> Limits:
    if args.max_request_bytes < 1:
        raise ZenserveError("--max-request-bytes must be at least 1")
    if args.max_connections < 0:
        raise ZenserveError("--max-connections must be 0 (no limit) or more")
    limits = Limits(
        max_request_bytes=args.max_request_bytes,
        idle_timeout=parse_duration(args.idle_timeout),
        request_timeout=parse_duration(args.request_timeout),
        max_connections=args.max_connections,
        graceful_timeout=parse_duration(args.graceful_timeout),
    )
    for name in ("idle_timeout", "request_timeout"):
        if getattr(limits, name) <= 0:
            raise ZenserveError(f"--{name.replace('_', '-')} must be more than zero")
    return limits
