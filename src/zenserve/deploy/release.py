"""A release: one TOML file naming a version, an architecture, a service and a strategy.

Every key is checked (``fields.Fields``); relative paths are relative to the
release file; the aphorism table is read and validated here, so a broken
release is refused before any process starts. Two releases with the same
content have the same ``fingerprint``, which makes ``deploy apply`` idempotent.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from zenserve.config import MAX_WORKERS, Limits, ServerConfig, ServiceConfig
from zenserve.cost import Cost, CostKind
from zenserve.deploy.fields import Fields
from zenserve.errors import ZenserveError
from zenserve.protocol import is_valid_answer, is_valid_question
from zenserve.servers import ARCHITECTURES
from zenserve.service import load_table, pep20_table

STRATEGY_KINDS = ("rolling", "blue-green", "canary")
# Architectures that accept in C (uvloop, gevent) never call a Python accept(),
# so they cannot be handed routed connections; inetd serves one inherited
# socket; forking serves each connection in a child that cannot hand it back.
NOT_DEPLOYABLE = {
    "uvloop": "uvloop accepts connections in C, so routed connections cannot reach it",
    "gevent": "gevent accepts connections in C, so routed connections cannot reach it",
    "inetd": "inetd serves one inherited socket, not routed connections",
    "forking": "forking serves each connection in a child that cannot hand it back on a switch",
}
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
# The health check's default question when the service is a callable.
DEFAULT_HEALTH_QUESTION = "Beautiful is better than?"


@dataclass(frozen=True, slots=True)
class Strategy:
    """How a candidate replaces the stable release, and when it is judged bad."""

    kind: str = "rolling"
    steps: tuple[int, ...] = (10, 25, 50, 100)  # canary: % of new connections at each step
    pause: float = 10.0  # canary: time at each step before it is judged
    max_error_ratio: float = 0.01  # failed answers / answers, above it: abort
    max_p99: float | None = None  # seconds; None: latency is not judged
    min_requests: int = 100  # fewer answers than this in a step: hold, never pass
    hold_timeout: float = 300.0  # a step held this long for lack of traffic aborts


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A real protocol round trip: ask ``question``, expect ``answer`` (None: any non-error)."""

    question: str = DEFAULT_HEALTH_QUESTION
    answer: str | None = None
    interval: float = 1.0  # seconds between heartbeat probes of each worker
    timeout: float = 10.0  # a probe unanswered this long, with no progress: replace the worker
    start_timeout: float = 30.0  # a new worker must pass its first check within this


@dataclass(frozen=True, slots=True)
class HaproxyTarget:
    """Beyond one host: the HAProxy servers (in one backend) that run this release."""

    backend: str
    servers: tuple[str, ...]
    addresses: tuple[str, ...] = ()  # host:port of each server, for `deploy render haproxy`
    metrics: tuple[str, ...] = ()  # each server's zenserve metrics URL, for the analysis


@dataclass(frozen=True)
class Release:
    """One parsed, validated release file."""

    version: str
    path: Path
    architecture: str
    workers: int = 1
    threads: int = 4
    verbose: bool = False
    service: ServiceConfig = field(default_factory=ServiceConfig)
    limits: Limits = field(default_factory=Limits)
    strategy: Strategy = field(default_factory=Strategy)
    health: HealthCheck = field(default_factory=HealthCheck)
    haproxy: HaproxyTarget | None = None
    fingerprint: str = ""
    table_digest: str = ""  # of the aphorism table as read: workers check they read the same

    def server_config(self) -> ServerConfig:
        """The config each worker process serves with."""
        return ServerConfig(architecture=self.architecture, threads=self.threads,
                            limits=self.limits, service=self.service, verbose=self.verbose)

    def with_strategy(self, strategy: Strategy) -> Release:
        """The same release rolled out differently (``--strategy`` on the command line)."""
        return replace(self, strategy=strategy)


def load_release(path: Path) -> Release:
    """Read and check a release file; raise ``ZenserveError`` with one line on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ZenserveError(f"cannot read release {path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ZenserveError(f"{path}: not UTF-8 text (byte {error.start}); a release is TOML"
                            ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ZenserveError(f"{path}: not valid TOML: {error}") from None
    return parse_release(data, path.resolve())


def parse_release(data: object, path: Path) -> Release:
    """Build a ``Release`` from parsed TOML; relative paths are relative to ``path``."""
    fields = Fields(data, str(path))
    version = fields.text("version")
    if not _VERSION.match(version):
        raise fields.error(f"{version!r}: use letters, digits and . _ + - (at most 64)",
                           "version")
    haproxy = _haproxy(fields.table_of("haproxy")) if fields.has("haproxy") else None
    architecture = fields.text("architecture", "single" if haproxy else None)
    _check_deployable(fields, architecture, haproxy is not None)
    workers = fields.integer("workers", 1, minimum=1, maximum=MAX_WORKERS)
    threads = fields.integer("threads", 4, minimum=1, maximum=1024)
    verbose = fields.boolean("verbose", False)
    service, table = _service(fields.table_of("service"), path.parent)
    limits = _limits(fields.table_of("limits"))
    strategy = _strategy(fields.table_of("strategy"))
    health = _health(fields.table_of("health"), table)
    fields.finish()
    release = Release(version, path, architecture, workers, threads, verbose, service, limits,
                      strategy, health, haproxy,
                      table_digest=table_digest(table) if service.aphorisms else "")
    return _with_fingerprint(release, table)


def _check_deployable(fields: Fields, architecture: str, through_haproxy: bool) -> None:
    if architecture not in ARCHITECTURES:
        raise fields.error(f"unknown architecture {architecture!r}; choose one of: "
                           f"{', '.join(deployable_architectures())}", "architecture")
    if architecture in NOT_DEPLOYABLE and not through_haproxy:
        raise fields.error(f"{architecture!r} cannot be deployed by the supervisor: "
                           f"{NOT_DEPLOYABLE[architecture]}", "architecture")


def deployable_architectures() -> list[str]:
    """The registered architectures the one-host supervisor can run."""
    return [name for name in ARCHITECTURES if name not in NOT_DEPLOYABLE]


def _service(fields: Fields, base: Path) -> tuple[ServiceConfig, dict[bytes, bytes] | None]:
    aphorisms_text = fields.optional_text("aphorisms")
    callable_spec = fields.optional_text("callable")
    if aphorisms_text and callable_spec:
        raise fields.error("give aphorisms or callable, not both")
    cost_seconds = fields.duration("cost", 0.0)
    cost_kind = fields.choice("cost_kind", CostKind.BLOCK.value, [kind.value for kind in CostKind])
    fault_rate = fields.ratio("fault_rate", 0.0)
    fields.finish()
    aphorisms = (base / aphorisms_text).resolve() if aphorisms_text else None
    table = load_table(aphorisms) if aphorisms else None
    if table is None and callable_spec is None:
        table = pep20_table()
    service = ServiceConfig(aphorisms=aphorisms, callable_spec=callable_spec,
                            cost=Cost(cost_seconds, CostKind(cost_kind)), fault_rate=fault_rate)
    return service, table


def _limits(fields: Fields) -> Limits:
    defaults = Limits()
    limits = Limits(
        max_request_bytes=fields.integer("max_request_bytes", defaults.max_request_bytes, 1),
        idle_timeout=fields.duration("idle_timeout", defaults.idle_timeout, positive=True),
        request_timeout=fields.duration("request_timeout", defaults.request_timeout,
                                        positive=True),
        max_connections=fields.integer("max_connections", defaults.max_connections, 0),
        graceful_timeout=fields.duration("graceful_timeout", defaults.graceful_timeout),
    )
    fields.finish()
    return limits


def _strategy(fields: Fields) -> Strategy:
    defaults = Strategy()
    kind = fields.choice("kind", defaults.kind, STRATEGY_KINDS)
    steps = fields.list_of_integers("steps", list(defaults.steps))
    if not steps or any(not 0 < step <= 100 for step in steps) or list(steps) != sorted(
            set(steps)):
        raise fields.error(f"expected increasing percentages between 1 and 100, got "
                           f"{list(steps)}", "steps")
    strategy = Strategy(
        kind=kind,
        steps=steps,
        pause=fields.duration("pause", defaults.pause),
        max_error_ratio=fields.ratio("max_error_ratio", defaults.max_error_ratio),
        max_p99=fields.optional_duration("max_p99"),
        min_requests=fields.integer("min_requests", defaults.min_requests, 1),
        hold_timeout=fields.duration("hold_timeout", defaults.hold_timeout, positive=True),
    )
    fields.finish()
    return strategy


def _health(fields: Fields, table: dict[bytes, bytes] | None) -> HealthCheck:
    defaults = HealthCheck()
    default_question, default_answer = DEFAULT_HEALTH_QUESTION, None
    if table:
        question_bytes, answer_bytes = next(iter(table.items()))
        default_question, default_answer = question_bytes.decode(), answer_bytes.decode()
    question = fields.text("question", default_question)
    if not is_valid_question(question.encode()):
        raise fields.error(f"{question!r} must end with its only '?'", "question")
    if fields.has("answer"):
        default_answer = fields.text("answer")
        if not is_valid_answer(default_answer.encode()):
            raise fields.error(f"{default_answer!r} must end with its only '.'", "answer")
    elif table is not None and question != default_question:
        default_answer = (table.get(question.encode()) or b"").decode() or None
    health = HealthCheck(
        question=question,
        answer=default_answer,
        interval=fields.duration("interval", defaults.interval, positive=True),
        timeout=fields.duration("timeout", defaults.timeout, positive=True),
        start_timeout=fields.duration("start_timeout", defaults.start_timeout, positive=True),
    )
    fields.finish()
    return health


def _haproxy(fields: Fields) -> HaproxyTarget:
    backend = fields.text("backend")
    servers = fields.list_of_text("servers")
    if not servers:
        raise fields.error("list at least one server of the backend", "servers")
    addresses = fields.list_of_text("addresses")
    if addresses and len(addresses) != len(servers):
        raise fields.error(f"give one host:port per server ({len(servers)}), got "
                           f"{len(addresses)}", "addresses")
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise fields.error(f"{address!r} is not host:port", "addresses")
    metrics = fields.list_of_text("metrics")
    if metrics and len(metrics) != len(servers):
        raise fields.error(f"give one URL per server ({len(servers)}), got {len(metrics)}",
                           "metrics")
    for url in metrics:
        if not url.startswith(("http://", "https://")):
            raise fields.error(f"{url!r} is not an http:// URL", "metrics")
    fields.finish()
    return HaproxyTarget(backend, servers, addresses, metrics)


def table_digest(table: dict[bytes, bytes] | None) -> str:
    """A short digest of a table's content (not of the file's bytes)."""
    canonical = json.dumps(sorted((q.decode(), a.decode()) for q, a in (table or {}).items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _with_fingerprint(release: Release, table: dict[bytes, bytes] | None) -> Release:
    # What runs counts; how it is rolled out (the strategy) and where the file is do not.
    described = asdict(release)
    described.pop("path")
    described.pop("strategy")
    described.pop("table_digest")
    described["service"]["aphorisms"] = None  # the content counts, not where it lives
    described["table"] = sorted((q.decode(), a.decode()) for q, a in (table or {}).items())
    canonical = json.dumps(described, sort_keys=True, default=str)
    return replace(release, fingerprint=hashlib.sha256(canonical.encode()).hexdigest()[:16])
