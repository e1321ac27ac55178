"""`zenserve deploy run --traffic haproxy`: the same commands and step engine, HAProxy routing.

No listening socket and no workers here: HAProxy listens, zenserve instances
on other hosts or ports serve, and this supervisor moves weights between the
server sets of the stable release and its candidate. SIGTERM and SIGINT stop
the supervisor (HAProxy keeps its current weights); SIGHUP rereads the stable
release, as on one host.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

from zenserve.deploy.analysis import Sample
from zenserve.deploy.commands import Commands
from zenserve.deploy.control import Message
from zenserve.deploy.haproxy import HaproxyTraffic, RuntimeApi, ServerGroup
from zenserve.deploy.reactor import Reactor
from zenserve.deploy.release import Release
from zenserve.deploy.rollout import PROMOTED, Rollout
from zenserve.deploy.signals import SignalInbox
from zenserve.errors import ZenserveError

# HAProxy's counters are read this often; steps and drains are at most this late.
TICK_SECONDS = 0.1


class HaproxySupervisor:
    """Rollouts between server sets of one HAProxy backend."""

    def __init__(self, api: RuntimeApi, release: Release, reactor: Reactor,
                 commands: Commands) -> None:
        if release.haproxy is None:
            raise ZenserveError(f"{release.path}: --traffic haproxy needs a [haproxy] table "
                                "naming the backend and its servers")
        self.api = api
        self.reactor = reactor
        self.commands = commands
        commands.attach(self)
        self.traffic = HaproxyTraffic(api, commands.event)
        self.stable: ServerGroup = self.traffic.adopt(release)
        self.stable.role = "stable"
        self.rollout: Rollout[ServerGroup] | None = None
        self.stopping = False
        self._signals: SignalInbox | None = None

    @property
    def address(self) -> str:
        return f"HAProxy backend {self.stable.backend} via {self.api.path}"

    def start(self, ready: Callable[[str], None]) -> None:
        """Wait until the stable servers pass HAProxy's health check, then say so."""
        release = self.stable.release
        deadline = time.monotonic() + release.health.start_timeout
        while True:
            self.traffic.refresh()
            if self.traffic.ready_count(self.stable) == len(self.stable.servers):
                break
            if time.monotonic() >= deadline:
                failure = self.traffic.start_failure(self.stable) or "not UP in time"
                raise ZenserveError(f"{self.stable.label}: {failure}")
            time.sleep(TICK_SECONDS)
        self._signals = SignalInbox(self.reactor)
        ready(self.address)

    def serve_forever(self) -> None:
        next_tick = 0.0
        try:
            while not self.stopping:
                self.reactor.run_once(TICK_SECONDS)
                for signum in self._signals.take() if self._signals else []:
                    if signum in (signal.SIGTERM, signal.SIGINT):
                        self.commands.event("stopping; HAProxy keeps its weights")
                        self.stopping = True
                    elif signum == signal.SIGHUP:
                        self.commands.reload()
                if time.monotonic() >= next_tick:
                    self._tick()
                    next_tick = time.monotonic() + TICK_SECONDS
        finally:
            self.commands.close()
            if self._signals is not None:
                self._signals.close()

    def _tick(self) -> None:
        try:
            self.traffic.refresh()
        except ZenserveError as error:
            self.commands.event(f"cannot read HAProxy's counters: {error}")
            return
        rollout = self.rollout
        if rollout is None or rollout.result is not None:
            return
        try:
            rollout.tick()
        except ZenserveError as error:  # HAProxy refused a change: roll back if still possible
            self.commands.event(f"HAProxy: {error}")
            if rollout.abort(f"HAProxy refused a change: {error}") is not None:
                return
        if rollout.result is not None:
            if rollout.result == PROMOTED:
                self.stable.role = "retired"
                rollout.candidate.role = "stable"
                self.stable = rollout.candidate
            else:
                rollout.candidate.role = "retired"
            self.traffic.groups = [group for group in self.traffic.groups
                                   if group.role != "retired" or group.draining]
            self.commands.finished(rollout)

    # Commands.Site

    def check_can_begin(self, release: Release) -> None:
        if self.stopping:
            raise ZenserveError("the supervisor is stopping")
        if self.rollout is not None and self.rollout.result is None:
            raise ZenserveError(f"a rollout of {self.rollout.candidate.release.version} is in "
                                "progress; promote or abort it first")
        if release.haproxy is None:
            raise ZenserveError(f"{release.path}: through HAProxy a release needs a [haproxy] "
                                "table naming its servers")
        if release.haproxy.backend != self.stable.backend:
            raise ZenserveError(f"{release.path}: backend {release.haproxy.backend!r} is not "
                                f"the stable release's {self.stable.backend!r}")
        shared = set(release.haproxy.servers) & set(self.stable.servers)
        if shared:
            raise ZenserveError(f"{release.path}: server {sorted(shared)[0]!r} already runs the "
                                "stable release; a candidate needs servers of its own")

    def begin_rollout(self, release: Release) -> Rollout[Any]:
        self.check_can_begin(release)
        candidate = self.traffic.launch(release)
        self.rollout = Rollout(self.traffic, self.stable, candidate, release.strategy,
                               self.commands.event)
        return self.rollout

    def generations_status(self) -> list[Message]:
        total_weight = sum(group.weight for group in self.traffic.groups) or 1
        described = []
        for group in self.traffic.groups:
            sample = self.traffic.sample(group)
            servers = []
            for server in group.servers:
                row = group.stats(self.traffic.stats, server)
                servers.append({"name": server, "status": row.get("status"),
                                "weight": row.get("weight"), "sessions": row.get("scur"),
                                "total": row.get("stot")})
            described.append({
                "generation": group.id, "version": group.release.version, "role": group.role,
                "architecture": f"haproxy {group.backend}",
                "share": round(100 * group.weight / total_weight, 1),
                "target": len(group.enabled), "ready": self.traffic.ready_count(group),
                "servers": servers, "workers": [], "answers": sample.answers,
                "failures": sample.failures, "success_ratio": sample.success_ratio,
                "recent_answers": None, "recent_success_ratio": None, "recent_p99": None,
                "restarts": 0, "handed_off": 0,
            })
        return described

    def totals(self) -> Sample:
        total = Sample()
        for group in self.traffic.groups:
            total = total + self.traffic.sample(group)
        return total
