"""Build a server from a ``ServerConfig`` and run it in this process until a signal."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType

from zenserve.config import ServerConfig, ServiceConfig
from zenserve.errors import ZenserveError
from zenserve.metrics import announce_metrics, start_metrics
from zenserve.net import bind_listener, describe_address, inherited_socket, is_listening
from zenserve.servers import server_class
from zenserve.servers.base import Network, ServeContext, Server
from zenserve.service import Service, import_handler, load_table

log = logging.getLogger("zenserve")

ReadyCallback = Callable[[str], None]


def build_service(config: ServiceConfig) -> Service:
    """The service a config names: the PEP 20 table, a table file, or a callable."""
    if config.aphorisms is not None and config.callable_spec is not None:
        raise ZenserveError("give --aphorisms or --service, not both")
    if not 0.0 <= config.fault_rate <= 1.0:
        raise ZenserveError(f"fault rate {config.fault_rate} is not between 0 and 1")
    table = load_table(config.aphorisms) if config.aphorisms is not None else None
    handler = import_handler(config.callable_spec) if config.callable_spec else None
    return Service(table=table, handler=handler, cost=config.cost, fault_rate=config.fault_rate)


def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """``--allow`` values as networks, with a one-line error for a bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            raise ZenserveError(f"--allow {cidr!r} is not a network like 10.0.0.0/8") from None
    return tuple(networks)


def build_context(config: ServerConfig) -> ServeContext:
    return ServeContext(config, build_service(config.service),
                        allowed_networks=parse_networks(config.allow))


def open_listener(config: ServerConfig, connected_ok: bool = False) -> socket.socket:
    """The listening socket: inherited with ``--inherit``, else bound to host:port.

    ``connected_ok``: an inherited socket may be one client's (inetd "nowait").
    """
    if config.inherit:
        sock, accepting = inherited_socket()
        if not accepting and not connected_ok:
            raise ZenserveError("--inherit: the inherited socket is one client's (inetd"
                                " nowait), not a listener to share")
        return sock
    return bind_listener(config.host, config.port, config.backlog)


def announce_ready(address: str) -> None:
    """The readiness line tests and scripts wait for."""
    sys.stdout.write(f"Listening at {address}\n")
    sys.stdout.flush()


def _say_nothing(address: str) -> None:
    """No readiness line: stdout may be the client's socket (inetd "nowait")."""


def install_shutdown_signals(server: Server) -> None:
    """SIGTERM: graceful shutdown; SIGINT: stop at once."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        server.shutdown(graceful=signum == signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def serve(config: ServerConfig, ready: ReadyCallback = announce_ready) -> None:
    """Serve ``config`` here (or in ``config.workers`` processes) until SIGTERM or SIGINT."""
    if config.workers:
        from zenserve.workers import serve_with_workers  # imports this module: import late

        serve_with_workers(config, ready)
        return
    context = build_context(config)
    server_type = server_class(config.architecture)
    listener = open_listener(config, connected_ok=True)
    if not is_listening(listener):  # inetd "nowait": converse with this one client, quietly
        server_type, ready = server_class("inetd"), _say_nothing
    metrics = None
    try:
        server = server_type(listener, context)
        install_shutdown_signals(server)
        # Read at scrape time from a daemon thread; the hot path only bumps ints.
        metrics = start_metrics(config, context.stats.snapshot)
        ready(describe_address(listener.getsockname()))
        announce_metrics(metrics)
        server.serve_forever()
    finally:
        if metrics is not None:
            metrics.close()
        listener.close()
