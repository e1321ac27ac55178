"""What the supervisor does for each control command, and the record of its rollouts.

``status``, ``release``, ``apply``, ``promote``, ``abort`` and ``wait`` arrive on
the control socket; rollout events are printed on stderr (the operator's log)
and streamed to every ``wait``-ing command.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from zenserve.deploy.analysis import Sample
from zenserve.deploy.control import ControlServer, Message, Peer
from zenserve.deploy.reactor import Reactor
from zenserve.deploy.release import STRATEGY_KINDS, Release, load_release
from zenserve.deploy.rollout import Rollout
from zenserve.deploy.status import describe
from zenserve.errors import ZenserveError

# Events kept for `deploy status`; finished rollouts kept for `deploy wait`.
EVENTS_KEPT = 50
HISTORY_KEPT = 20


class Site(Protocol):
    """A supervisor as the commands see it: on this host, or driving HAProxy."""

    stable: Any
    rollout: Rollout[Any] | None
    stopping: bool

    @property
    def address(self) -> str: ...

    def check_can_begin(self, release: Release) -> None: ...

    def begin_rollout(self, release: Release) -> Rollout[Any]: ...

    def generations_status(self) -> list[Message]: ...

    def totals(self) -> Sample: ...


class Commands:
    """The control socket's handlers, bound to one supervisor."""

    def __init__(self, control_path: Path, reactor: Reactor) -> None:
        self.server = ControlServer(control_path, reactor, self.handle)
        self.control_path = control_path
        self._supervisor: Site | None = None
        self.events: deque[tuple[float, str]] = deque(maxlen=EVENTS_KEPT)
        self.deployment = 0  # the id of the latest rollout
        self.rollout_events: list[tuple[float, float, str]] = []
        self.history: dict[int, Message] = {}
        self.waiters: list[Peer] = []

    def attach(self, supervisor: Site) -> None:
        self._supervisor = supervisor

    @property
    def supervisor(self) -> Site:
        assert self._supervisor is not None
        return self._supervisor

    def handle(self, request: Message, peer: Peer) -> Message | None:
        command = request.get("command")
        handler = getattr(self, f"_command_{command}", None) if isinstance(command, str) else None
        if handler is None:
            raise ZenserveError(f"unknown command {command!r}")
        result: Message | None = handler(request, peer)
        return result

    # The commands.

    def _command_status(self, request: Message, peer: Peer) -> Message:
        return describe(self.supervisor, self)

    def _command_release(self, request: Message, peer: Peer) -> Message:
        release = _release_from(request)
        return self._begin(release)

    def _command_apply(self, request: Message, peer: Peer) -> Message:
        """Idempotent: nothing if already stable; the running rollout if it is this release."""
        release = _release_from(request)
        stable = self.supervisor.stable.release
        if release.fingerprint == stable.fingerprint:
            return {"result": "unchanged", "version": release.version}
        if release.version == stable.version:
            raise ZenserveError(f"version {release.version} is already stable with different "
                                "content; give the changed release a new version")
        rollout = self.supervisor.rollout
        if rollout is not None and rollout.result is None and (
                rollout.candidate.release.fingerprint == release.fingerprint):
            return {"deployment": self.deployment, "version": release.version, "attached": True}
        return self._begin(release)

    def _command_promote(self, request: Message, peer: Peer) -> Message:
        return self._on_rollout(lambda rollout: rollout.promote(), "promoting")

    def _command_abort(self, request: Message, peer: Peer) -> Message:
        return self._on_rollout(lambda rollout: rollout.abort(), "aborting")

    def _command_wait(self, request: Message, peer: Peer) -> Message | None:
        """Stream the rollout's events and then its result; at once if it is over."""
        deployment = request.get("deployment", self.deployment)
        if deployment in self.history:
            return self.history[deployment]
        if deployment != self.deployment or self.supervisor.rollout is None:
            raise ZenserveError(f"no deployment {deployment}")
        for when, clock, text in self.rollout_events:
            if not peer.send({"event": text, "time": when, "clock": clock}):
                return None
        self.waiters.append(peer)
        return None

    # Rollouts.

    def _begin(self, release: Release) -> Message:
        self.supervisor.check_can_begin(release)
        self.rollout_events = []
        self.deployment += 1
        self.event(f"deployment {self.deployment}: {release.version} by "
                   f"{release.strategy.kind}")
        rollout = self.supervisor.begin_rollout(release)
        return {"deployment": self.deployment, "version": release.version,
                "strategy": rollout.strategy.kind}

    def _on_rollout(self, action: Any, doing: str) -> Message:
        rollout = self.supervisor.rollout
        if rollout is None or rollout.result is not None:
            raise ZenserveError("no rollout in progress")
        error = action(rollout)
        if error:
            raise ZenserveError(error)
        return {"deployment": self.deployment, "version": rollout.candidate.release.version,
                "result": doing}

    def reload(self) -> None:
        """SIGHUP: reread the stable release's file and replace its workers one at a time."""
        supervisor = self.supervisor
        if supervisor.rollout is not None and supervisor.rollout.result is None:
            self.event("SIGHUP ignored: a rollout is in progress")
            return
        try:
            release = load_release(supervisor.stable.release.path)
        except ZenserveError as error:
            self.event(f"SIGHUP: cannot reload: {error}")
            return
        self._begin(release.with_strategy(replace(release.strategy, kind="rolling")))

    def event(self, text: str) -> None:
        """Record, print and stream one rollout event."""
        now, clock = time.time(), time.monotonic()  # wall time to read, clock to compare
        self.events.append((now, text))
        self.rollout_events.append((now, clock, text))
        print(f"zenserve deploy: {text}", file=sys.stderr, flush=True)
        message = {"event": text, "time": now, "clock": clock}
        self.waiters = [peer for peer in self.waiters if peer.send(message)]

    def finished(self, rollout: Rollout[Any]) -> None:
        result = {"deployment": self.deployment, "version": rollout.candidate.release.version,
                  "result": rollout.result, "reason": rollout.reason}
        self.history[self.deployment] = result
        while len(self.history) > HISTORY_KEPT:
            del self.history[min(self.history)]
        for peer in self.waiters:
            peer.send(result)
            peer.close()
        self.waiters = []

    def close(self) -> None:
        for peer in self.waiters:
            peer.send({"error": "the supervisor stopped before the rollout finished"})
            peer.close()
        self.waiters = []
        self.server.close()


def _release_from(request: Message) -> Release:
    path = request.get("path")
    if not isinstance(path, str):
        raise ZenserveError("bad request: no release path")
    release = load_release(Path(path))
    kind = request.get("strategy")
    if kind is not None:
        if kind not in STRATEGY_KINDS:
            raise ZenserveError(f"unknown strategy {kind!r}; choose one of: "
                                f"{', '.join(STRATEGY_KINDS)}")
        release = release.with_strategy(replace(release.strategy, kind=kind))
    return release
