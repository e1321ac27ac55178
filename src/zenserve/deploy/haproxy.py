"""Beyond one host: the step engine driving a real HAProxy through its Runtime API.

A generation is a set of servers of one HAProxy backend (zenserve instances on
other hosts or ports), named in the release's ``[haproxy]`` table. New
connections are shared with ``set weight``, a generation is retired with
``set server ... state drain`` (existing connections finish; in ``mode tcp``
HAProxy never moves a connection) and put in maintenance once its last
session has ended. Health and counts come from ``show stat``: a server is
ready when its health check (which asks a real question) says UP; each
session it served is a sample, and a connection error, response error or
server abort is a failure. When the release lists each server's zenserve
metrics URL, the instances' own counts are used instead of sessions: requests
answered, and requests that ended in an injected fault, an internal error or
"server busy" as failures (HAProxy's connection errors still count). HAProxy reports no
latency percentiles, so ``max_p99`` is not judged here.
"""

from __future__ import annotations

import csv
import io
import itertools
import socket
import time
from pathlib import Path
from typing import Any

from zenserve.deploy.analysis import Sample
from zenserve.deploy.release import Release
from zenserve.deploy.scrape import scrape_requests
from zenserve.errors import ZenserveError

# Each generation's weights add up to about this (HAProxy's maximum is 256).
TOTAL_WEIGHT = 200
# A drained server with sessions still open past its graceful timeout plus this
# is put in maintenance anyway (its sessions go on; it gets no new ones).
DRAIN_MARGIN_SECONDS = 2.0
# zenserve's metrics endpoints are read this often, each within this timeout.
SCRAPE_SECONDS = 0.25
SCRAPE_TIMEOUT = 0.5

Stats = dict[tuple[str, str], dict[str, str]]


class RuntimeApi:
    """HAProxy's stats socket at ``level admin``: one command per connection."""

    def __init__(self, path: Path, timeout: float = 2.0) -> None:
        self.path = path
        self.timeout = timeout

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
                sock.sendall(line.encode() + b"\n")
                chunks = []
                while data := sock.recv(65536):
                    chunks.append(data)
            except OSError as error:
                raise ZenserveError(f"HAProxy runtime API at {self.path}: "
                                    f"{error.strerror or error}") from None
        return b"".join(chunks).decode(errors="replace")

    def change(self, line: str) -> None:
        """A command that answers nothing when it succeeds."""
        answer = self.command(line).strip()
        if answer:
            raise ZenserveError(f"HAProxy refused {line!r}: {answer.splitlines()[0]}")

    def stats(self, backend: str) -> Stats:
        """``show stat`` of ``backend``'s servers, by (backend, server)."""
        # Every proxy's servers (type 4), then ours: filtering by name in HAProxy
        # would pick a frontend that happens to share the backend's name.
        text = self.command("show stat -1 4 -1")
        if not text.startswith("# "):
            raise ZenserveError(f"HAProxy: unexpected answer to show stat: {text.strip()[:80]}")
        rows = csv.DictReader(io.StringIO(text[2:]))
        return {(row["pxname"], row["svname"]): row for row in rows if row["pxname"] == backend}


class ServerGroup:
    """One generation through HAProxy: the servers of its release, and their state."""

    _ids = itertools.count(1)

    def __init__(self, release: Release) -> None:
        assert release.haproxy is not None
        self.id = next(self._ids)
        self.release = release
        self.label = f"generation {self.id} ({release.version})"
        self.role = "candidate"
        self.backend = release.haproxy.backend
        self.servers = release.haproxy.servers
        self.enabled: list[str] = []  # asked to serve, in order
        self.draining: dict[str, float] = {}  # server -> when it must be in maintenance
        self.weight = 0
        self.started = time.monotonic()
        self.failure = ""

    def stats(self, stats: Stats, server: str) -> dict[str, str]:
        return stats.get((self.backend, server), {})


class HaproxyTraffic:
    """``rollout.Traffic`` through HAProxy; ``refresh()`` reads ``show stat`` once per tick."""

    def __init__(self, api: RuntimeApi, on_event: Any) -> None:
        self.api = api
        self._event = on_event
        self.stats: Stats = {}
        self.groups: list[ServerGroup] = []
        self.requests: dict[str, tuple[int, int]] = {}  # metrics URL -> (requests, failed)
        self._next_scrape = 0.0

    def adopt(self, release: Release) -> ServerGroup:
        """The stable generation at start: its servers serve, every one of them."""
        group = self.launch(release)
        group.role = "stable"
        self.scale(group, len(group.servers))
        self.set_weights({group: 100})
        return group

    def launch(self, release: Release) -> ServerGroup:
        group = ServerGroup(release)
        stats = self.api.stats(group.backend)
        missing = [server for server in group.servers if (group.backend, server) not in stats]
        if missing:
            raise ZenserveError(f"HAProxy backend {group.backend!r} has no server "
                                f"{missing[0]!r}")
        for server in group.servers:
            self.api.change(f"set weight {group.backend}/{server} 0")
        self.groups.append(group)
        return group

    def refresh(self) -> None:
        for backend in {group.backend for group in self.groups}:
            self.stats.update(self.api.stats(backend))
        now = time.monotonic()
        if now >= self._next_scrape:
            self._scrape()
            self._next_scrape = now + SCRAPE_SECONDS
        for group in self.groups:
            for server, deadline in list(group.draining.items()):
                sessions = int(group.stats(self.stats, server).get("scur") or 0)
                if sessions == 0 or now >= deadline:
                    if sessions:
                        self._event(f"{group.label}: {server} still has {sessions} sessions; "
                                    "in maintenance anyway")
                    self.api.change(f"set server {group.backend}/{server} state maint")
                    del group.draining[server]

    def _scrape(self) -> None:
        for group in self.groups:
            assert group.release.haproxy is not None
            for url in group.release.haproxy.metrics:
                counts = scrape_requests(url, SCRAPE_TIMEOUT)
                if counts is not None:  # unreadable now: keep the last counts
                    self.requests[url] = counts

    # rollout.Traffic

    def scale(self, generation: Any, count: int) -> None:
        group: ServerGroup = generation
        for server in group.servers[:count]:
            if server not in group.enabled:
                self.api.change(f"set server {group.backend}/{server} state ready")
                group.enabled.append(server)
                group.draining.pop(server, None)

    def ready_count(self, generation: Any) -> int:
        group: ServerGroup = generation
        return sum(group.stats(self.stats, server).get("status", "").startswith("UP")
                   for server in group.enabled)

    def start_failure(self, generation: Any) -> str | None:
        group: ServerGroup = generation
        limit = group.release.health.start_timeout
        if time.monotonic() - group.started < limit:
            return None
        for server in group.enabled:
            row = group.stats(self.stats, server)
            if not row.get("status", "").startswith("UP"):
                return (f"{server} is {row.get('status', 'unknown')} after {limit:g}s: "
                        f"{row.get('check_desc') or row.get('check_status') or 'no check'}")
        return None

    def set_weights(self, weights: dict[Any, int]) -> None:
        total = sum(weights.values()) or 1
        for group, weight in weights.items():
            group.weight = weight
            serving = [server for server in group.enabled if server not in group.draining]
            if not serving:
                continue
            each = round(TOTAL_WEIGHT * weight / total / len(serving))
            each = max(each, 1) if weight else 0
            for server in serving:
                self.api.change(f"set weight {group.backend}/{server} {each}")

    def retire(self, generation: Any, count: int | None = None) -> None:
        group: ServerGroup = generation
        serving = [server for server in group.enabled if server not in group.draining]
        chosen = serving if count is None else serving[:count]
        deadline = time.monotonic() + group.release.limits.graceful_timeout + DRAIN_MARGIN_SECONDS
        for server in chosen:
            self.api.change(f"set weight {group.backend}/{server} 0")
            self.api.change(f"set server {group.backend}/{server} state drain")
            group.enabled.remove(server)
            group.draining[server] = deadline

    def drained(self, generation: Any) -> bool:
        group: ServerGroup = generation
        return not group.enabled and not group.draining

    def sample(self, generation: Any) -> Sample:
        group: ServerGroup = generation
        sessions = failures = 0
        for server in group.servers:
            row = group.stats(self.stats, server)
            sessions += int(row.get("stot") or 0)
            failures += sum(int(row.get(name) or 0) for name in ("econ", "eresp", "srv_abrt"))
        assert group.release.haproxy is not None
        urls = group.release.haproxy.metrics
        if not urls:
            return Sample(sessions, failures)
        counts = [self.requests.get(url, (0, 0)) for url in urls]
        return Sample(sum(requests for requests, _ in counts),
                      failures + sum(failed for _, failed in counts))
