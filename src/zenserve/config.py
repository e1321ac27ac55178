"""Frozen configuration built once by the CLI (or a test) and passed down explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from zenserve.cost import FREE, Cost
from zenserve.protocol import DEFAULT_MAX_REQUEST_BYTES

# The book's port (listing 7-1's parse_command_line default).
DEFAULT_PORT = 1060
# Loopback unless told otherwise: an untrusted network never sees a server by accident.
DEFAULT_HOST = "127.0.0.1"
# Listing 7-1 listens with a backlog of 64; connections beyond a busy server's
# capacity should wait in the kernel rather than be refused, so allow more.
DEFAULT_BACKLOG = 1024
# The most worker processes one server (`serve --workers`, a release's
# `workers`) may have: each holds a slot of the shared tables and an eventfd,
# and far more processes than cores only take turns on them. Ten thousand
# slots would exhaust the open-file limit before serving anything.
MAX_WORKERS = 64


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Where answers come from: the PEP 20 table, a table file, or a callable."""

    aphorisms: Path | None = None
    callable_spec: str | None = None
    cost: Cost = FREE
    fault_rate: float = 0.0


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds every architecture enforces on every connection."""

    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    # A client silent this long is closed; long enough for a person at telnet.
    idle_timeout: float = 60.0
    # A question must be complete this long after its first byte (slowloris).
    request_timeout: float = 10.0
    # Past this many open connections new ones get "Error: server busy."; 0 = no limit.
    max_connections: int = 0
    # SIGTERM lets open conversations finish for this long, then closes them.
    graceful_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything `zenserve serve` needs."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    architecture: str = "single"
    threads: int = 4  # listing 7-4's start_threads(listener, workers=4)
    workers: int = 0  # 0: serve in this process; N: N supervised worker processes
    backlog: int = DEFAULT_BACKLOG
    inherit: bool = False
    metrics_port: int | None = None  # None: no metrics endpoint; 0 picks a free port
    metrics_host: str = DEFAULT_HOST  # loopback: metrics are not for the world by default
    allow: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    verbose: bool = False
