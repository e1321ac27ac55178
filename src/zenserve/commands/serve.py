"""`zenserve serve`: run one architecture on one port."""

from __future__ import annotations

import argparse

from zenserve.commands.options import (
    add_address_arguments,
    add_limit_arguments,
    add_service_arguments,
    limits_from,
    service_config_from,
)
from zenserve.config import DEFAULT_BACKLOG, DEFAULT_HOST, MAX_WORKERS, ServerConfig
from zenserve.errors import ZenserveError
from zenserve.runner import serve
from zenserve.servers import ARCHITECTURES, get_architecture
from zenserve.worker_pool import usable_cores

HELP = "serve the zen protocol with one architecture"
DEFAULT_THREADS = ServerConfig().threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_address_arguments(parser, "address to listen on")
    parser.add_argument("--arch", default="single", metavar="NAME",
                        help=f"architecture: {', '.join(ARCHITECTURES)} (default single)")
    parser.add_argument("--inherit", action="store_true",
                        help="serve the socket inherited as fd 0 (inetd) or from LISTEN_FDS")
    parser.add_argument("--allow", action="append", default=[], metavar="CIDR",
                        help="accept clients only from this network (repeatable)")
    parser.add_argument("--backlog", type=int, default=DEFAULT_BACKLOG, metavar="N",
                        help=f"listen backlog (default {DEFAULT_BACKLOG})")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log every connection, book-style")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, metavar="N",
                        help="threads in the threaded architecture's pool "
                             f"(default {DEFAULT_THREADS}, as listing 7-4)")
    parser.add_argument("--workers", type=worker_count, default=0, metavar="N",
                        help=f"N supervised processes share the listener, at most {MAX_WORKERS} "
                             "(default 0: this one; auto: one per core this process may use)")
    parser.add_argument("--metrics-port", type=int, metavar="PORT",
                        help="serve Prometheus metrics at http://HOST:PORT/metrics (0: any port)")
    parser.add_argument("--metrics-host", default=DEFAULT_HOST, metavar="HOST",
                        help=f"address of the metrics endpoint (default {DEFAULT_HOST})")
    add_service_arguments(parser)
    add_limit_arguments(parser)


def worker_count(text: str) -> int:
    """``--workers``: a number, or ``auto`` for one worker per usable core (at most the cap)."""
    if text == "auto":
        return min(usable_cores(), MAX_WORKERS)
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or auto") from None


def config_from(args: argparse.Namespace) -> ServerConfig:
    get_architecture(args.arch)
    if args.workers < 0:
        raise ZenserveError("--workers must be 0 (serve in this process) or more")
    if args.workers > MAX_WORKERS:
        raise ZenserveError(f"--workers must be at most {MAX_WORKERS}")
    if args.threads < 1:
        raise ZenserveError("--threads must be 1 or more")
    return ServerConfig(
        host=args.host,
        port=args.port,
        architecture=args.arch,
        backlog=args.backlog,
        inherit=args.inherit,
        allow=tuple(args.allow),
        limits=limits_from(args),
        service=service_config_from(args),
        verbose=args.verbose,
        workers=args.workers,
        threads=args.threads,
        metrics_port=args.metrics_port,
        metrics_host=args.metrics_host,
    )


def run(args: argparse.Namespace) -> int:
    serve(config_from(args))
    return 0
