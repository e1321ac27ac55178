"""The one-host supervisor: owns the listening socket for its whole life, runs the rollouts.

The loop (one thread, like gunicorn's arbiter): handle signals, accept and
route connections, read worker reports, tick the fleet (reap, heal, grow) and
the rollout, answer control commands. The listening socket is never closed
while serving, so no connection is refused or reset because of a deployment.

Signals: SIGTERM drains everything and exits 0; SIGINT stops at once; SIGHUP
rereads the stable release's file and replaces its workers one at a time.
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import time
from collections.abc import Callable

from zenserve.deploy.analysis import Sample
from zenserve.deploy.commands import Commands
from zenserve.deploy.fleet import Fleet, LocalTraffic, wait_until
from zenserve.deploy.generation import Generation
from zenserve.deploy.reactor import Reactor
from zenserve.deploy.release import Release
from zenserve.deploy.rollout import Rollout
from zenserve.deploy.signals import SignalInbox
from zenserve.deploy.status import local_generations
from zenserve.errors import ZenserveError
from zenserve.net import describe_address

log = logging.getLogger("zenserve.deploy")

# The supervisor's housekeeping period: rollout steps, heartbeats and reaping
# are at most this late.
TICK_SECONDS = 0.02
# Connections accepted per readiness event before other work gets a turn.
ACCEPT_BATCH = 64
# Out of descriptors: stop accepting this long instead of spinning.
ACCEPT_BACKOFF_SECONDS = 0.1
# Spare workers kept started: one more than the stable workers, at most this many.
MAX_SPARES = 4
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def spares_for(release: Release) -> int:
    """How many spare workers to keep while ``release`` is stable."""
    return min(MAX_SPARES, release.workers + 1)


class Supervisor:
    """One listening socket, the generations behind it, and the rollout between them."""

    def __init__(self, listener: socket.socket, release: Release, reactor: Reactor,
                 commands: Commands) -> None:
        self.listener = listener
        self.listener.setblocking(False)
        self._address = describe_address(listener.getsockname())
        self.reactor = reactor
        self.fleet = Fleet(reactor, commands.event)
        self.fleet.spare_count = spares_for(release)  # warm before any rollout
        self.traffic = LocalTraffic(self.fleet)
        self.commands = commands
        commands.attach(self)
        self.stable = self.fleet.launch(release)
        self.stable.role = "stable"
        self.stable.weight = 100
        self.stable.target = release.workers
        self.rollout: Rollout[Generation] | None = None
        self.stopping = False
        self.finished = False
        self._accepting = False
        self._accept_resume = 0.0
        self._signals: SignalInbox | None = None

    @property
    def address(self) -> str:
        return self._address

    def generations_status(self) -> list[dict[str, object]]:
        return local_generations(self.fleet)

    def totals(self) -> Sample:
        return self.fleet.total()

    def start(self, ready: Callable[[str], None]) -> None:
        """Start the first generation; call ``ready`` once it passed its health check."""
        stable, release = self.stable, self.stable.release
        started = wait_until(self.fleet, lambda: len(stable.ready()) >= release.workers
                             or stable.start_failures > 0, release.health.start_timeout + 1,
                             self.reactor)
        if stable.start_failures or not started:
            self.fleet.kill_all()
            wait_until(self.fleet, lambda: self.fleet.idle, 5.0, self.reactor)
            reason = stable.last_failure or f"not ready within {release.health.start_timeout:g}s"
            raise ZenserveError(f"{stable.label} did not start: {reason}")
        self._signals = SignalInbox(self.reactor)
        self._accept(True)
        ready(self.address)

    def serve_forever(self) -> None:
        next_tick = 0.0
        try:
            while not self.finished:
                self.reactor.run_once(TICK_SECONDS)
                if self._signals is not None:
                    self._handle_signals(self._signals.take())
                now = time.monotonic()
                if now >= next_tick:
                    self._tick(now)
                    next_tick = now + TICK_SECONDS
        finally:
            self.fleet.kill_all()
            self.fleet.router.close_waiting()
            self.commands.close()
            if self._signals is not None:
                self._signals.close()

    # Rollouts (called by the command handlers).

    def check_can_begin(self, release: Release) -> None:
        """Raise with the reason a rollout of ``release`` cannot begin now."""
        if self.stopping:
            raise ZenserveError("the supervisor is stopping")
        if self.rollout is not None and self.rollout.result is None:
            raise ZenserveError(f"a rollout of {self.rollout.candidate.release.version} is in "
                                "progress; promote or abort it first")
        if release.haproxy is not None:
            raise ZenserveError(f"{release.path}: [haproxy] releases need --traffic haproxy")

    def begin_rollout(self, release: Release) -> Rollout[Generation]:
        self.check_can_begin(release)
        candidate = self.fleet.launch(release)
        self.rollout = Rollout(self.traffic, self.stable, candidate, release.strategy,
                               self.commands.event)
        return self.rollout

    def _tick(self, now: float) -> None:
        if not self.stopping:
            self.fleet.spare_count = spares_for(self.stable.release)
        self.fleet.tick(now)
        rollout = self.rollout
        if rollout is not None and rollout.result is None:
            rollout.tick()
            if rollout.result is not None:
                self._finish_rollout(rollout)
        self.fleet.forget_drained({self.stable.id} | (
            {rollout.candidate.id} if rollout is not None and rollout.result is None else set()))
        if self.stopping:
            self.finished = self.fleet.idle
        elif not self._accepting and not self.fleet.router.waiting and now >= self._accept_resume:
            self._accept(True)

    def _finish_rollout(self, rollout: Rollout[Generation]) -> None:
        candidate = rollout.candidate
        if rollout.result == "promoted":
            self.stable.role = "retired"
            candidate.role = "stable"
            self.stable = candidate
        else:
            candidate.role = "retired"
        self.commands.finished(rollout)

    # Accepting.

    def _accept(self, on: bool) -> None:
        if on and not self.stopping:
            self.reactor.watch(self.listener, self._on_listener)
        else:
            self.reactor.unwatch(self.listener)
        self._accepting = on and not self.stopping

    def _on_listener(self) -> None:
        router = self.fleet.router
        for _ in range(ACCEPT_BATCH):
            try:
                fd, _ = self.listener._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionAbortedError:
                continue
            except OSError as error:
                if error.errno not in _RESOURCE_ERRORS:
                    raise
                log.warning("accept() failed (%s); backing off", error.strerror)
                self._accept_resume = time.monotonic() + ACCEPT_BACKOFF_SECONDS
                self._accept(False)
                return
            router.route(fd)
        if router.waiting:
            self._accept(False)  # let the kernel's backlog hold the rest until workers catch up

    # Signals.

    def _handle_signals(self, signals: list[int]) -> None:
        for signum in signals:
            if signum == signal.SIGTERM:
                self.stop(graceful=True)
            elif signum == signal.SIGINT:
                self.stop(graceful=False)
            elif signum == signal.SIGHUP:
                self.commands.reload()

    def stop(self, graceful: bool) -> None:
        """Stop accepting, let every worker finish (or kill them all), then return."""
        if not self.stopping:
            self.commands.event(f"stopping ({'draining' if graceful else 'at once'})")
            self._accept(False)
            self.stopping = True
            self.listener.close()
            self.fleet.router.close_waiting()
            self.fleet.stop_all()
        if not graceful:
            self.fleet.kill_all()
