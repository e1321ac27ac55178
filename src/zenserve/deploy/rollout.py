"""The step engine: one candidate replacing the stable release, by a strategy.

It is a state machine advanced by ``tick()`` (the supervisor's loop calls it
often; the HAProxy driver calls it in a loop), so it needs no thread, and the
same engine drives the one-host supervisor and a real HAProxy through the
``Traffic`` interface.

- ``rolling``: grow the candidate one unit (worker or server) at a time; each
  time a new one passes its health check, drain one unit of the stable release.
- ``blue-green``: start the candidate in full, wait until every unit passes
  its health check, switch all new connections to it, drain the stable one.
- ``canary``: start the candidate, then at each step send that share of new
  connections to it, and judge its own answers in the step (``analysis``):
  a failed threshold aborts at once, too few answers holds the step (and
  aborts after ``hold_timeout``), a pass moves to the next step.

The outcome is ``promoted`` (the candidate is the stable release and the old one
is drained) or ``rolled back`` (the candidate is drained, the stable release
serves everything again).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from zenserve.deploy.analysis import Sample, Verdict, judge
from zenserve.deploy.release import Release, Strategy

PROMOTED, ROLLED_BACK = "promoted", "rolled back"


class Deployed(Protocol):
    """A generation of the release as the traffic backend tracks it."""

    label: str
    release: Release


class Traffic(Protocol):
    """Where generations run and how new connections are shared between them."""

    def scale(self, generation: Any, count: int) -> None:
        """Ask for ``count`` units (workers, servers) of ``generation`` to serve."""

    def ready_count(self, generation: Any) -> int:
        """Units that passed their health check and may take connections."""

    def start_failure(self, generation: Any) -> str | None:
        """Why ``generation`` cannot start (a crash, a failed health check), if it cannot."""

    def set_weights(self, weights: dict[Any, int]) -> None:
        """Share new connections between generations in proportion to ``weights``."""

    def retire(self, generation: Any, count: int | None = None) -> None:
        """Drain ``count`` units (None: all) of ``generation``."""

    def drained(self, generation: Any) -> bool:
        """True once every retired unit has finished or handed back its connections."""

    def sample(self, generation: Any) -> Sample:
        """Cumulative answers, failures and latencies of ``generation``."""


EventHandler = Callable[[str], None]
Unit = TypeVar("Unit", bound=Deployed)


class Rollout(Generic[Unit]):
    """One candidate, one stable generation, one strategy: ``tick()`` until ``result``."""

    def __init__(self, traffic: Traffic, stable: Unit, candidate: Unit,
                 strategy: Strategy, on_event: EventHandler,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.traffic, self.stable, self.candidate = traffic, stable, candidate
        self.strategy = strategy
        self._emit = on_event
        self._clock = clock
        self.size = candidate.release.workers if candidate.release.haproxy is None else len(
            candidate.release.haproxy.servers)
        self.stable_size = stable.release.workers if stable.release.haproxy is None else len(
            stable.release.haproxy.servers)
        self.result: str | None = None
        self.reason = ""
        self.phase = "starting"
        self.step = -1  # canary: index into strategy.steps
        self.step_started = 0.0
        self.baseline = self.window = Sample()
        self.verdict = Verdict("hold", "not judged yet")
        self.rolled = 0  # rolling: candidate units asked for
        self.started = clock()
        first = 1 if strategy.kind == "rolling" else self.size
        self.rolled = first
        traffic.scale(candidate, first)
        self._emit(f"{candidate.label}: {strategy.kind} started, starting {first} of "
                   f"{self.size}")

    # Commands.

    def promote(self) -> str | None:
        """Skip the remaining steps; an error message when it is too late or too early."""
        if self.result is not None or self.phase in ("promoting", "aborting"):
            return f"nothing to promote: the rollout is {self.result or self.phase}"
        if self.traffic.ready_count(self.candidate) < 1:
            return "the candidate has no ready worker yet"
        self._emit(f"{self.candidate.label}: promoted by hand")
        self._promote()
        return None

    def abort(self, reason: str = "aborted by hand") -> str | None:
        if self.result is not None or self.phase in ("promoting", "aborting"):
            return f"too late to abort: the rollout is {self.result or self.phase}"
        self._abort(reason)
        return None

    # The state machine.

    def tick(self) -> None:
        if self.result is not None:
            return
        failure = self.traffic.start_failure(self.candidate)
        if failure and self.phase not in ("promoting", "aborting"):
            self._abort(f"{self.candidate.label} failed to start: {failure}")
            return
        getattr(self, f"_tick_{self.phase}")()

    def _tick_starting(self) -> None:
        if self.strategy.kind == "rolling":
            self.phase = "rolling"
            return
        if self.traffic.ready_count(self.candidate) < self.size:
            return
        self._emit(f"{self.candidate.label}: all {self.size} passed the health check")
        if self.strategy.kind == "blue-green":
            self._promote()
        else:
            self._next_step()

    def _tick_rolling(self) -> None:
        ready = self.traffic.ready_count(self.candidate)
        if ready < self.rolled:
            return
        self.traffic.retire(self.stable, 1)
        retired = self.rolled
        self.traffic.set_weights({self.candidate: ready,
                                  self.stable: max(0, self.stable_size - retired)})
        self._emit(f"{self.candidate.label}: {ready} of {self.size} ready; "
                   f"{retired} of {self.stable_size} of {self.stable.label} draining")
        if self.rolled >= self.size:
            self._promote()
            return
        self.rolled += 1
        self.traffic.scale(self.candidate, self.rolled)

    def _next_step(self) -> None:
        self.step += 1
        if self.step >= len(self.strategy.steps):
            self._emit(f"{self.candidate.label}: every step passed")
            self._promote()
            return
        share = self.strategy.steps[self.step]
        self.phase = "step"
        self.traffic.set_weights({self.candidate: share, self.stable: 100 - share})
        self.step_started = self._clock()
        self.baseline = self.traffic.sample(self.candidate)
        self.window = Sample()
        self.verdict = judge(self.window, self.strategy)
        self._emit(f"{self.candidate.label}: step {self.step + 1} of "
                   f"{len(self.strategy.steps)}: {share}% of new connections")

    def _tick_step(self) -> None:
        strategy = self.strategy
        self.window = window = self.traffic.sample(self.candidate) - self.baseline
        self.verdict = verdict = judge(window, strategy)
        if verdict.outcome == "fail":
            self._abort(f"step {self.step + 1} ({strategy.steps[self.step]}%) failed: "
                        f"{verdict.reason}")
            return
        elapsed = self._clock() - self.step_started
        if elapsed < strategy.pause:
            return
        if verdict.outcome == "pass":
            self._emit(f"{self.candidate.label}: step {self.step + 1} passed: {verdict.reason}")
            self._next_step()
        elif elapsed >= strategy.pause + strategy.hold_timeout:
            self._abort(f"step {self.step + 1} held too long: {verdict.reason} within "
                        f"{strategy.pause + strategy.hold_timeout:g}s")

    def _promote(self) -> None:
        self.phase = "promoting"
        self.traffic.set_weights({self.candidate: 100, self.stable: 0})
        self.traffic.retire(self.stable)
        self._emit(f"{self.candidate.label}: every new connection; draining {self.stable.label}")

    def _tick_promoting(self) -> None:
        if self.traffic.drained(self.stable):
            self._finish(PROMOTED, f"{self.candidate.label} is stable")

    def _abort(self, reason: str) -> None:
        self.phase = "aborting"
        self.reason = reason
        self._emit(f"{self.candidate.label}: aborting: {reason}")
        self.traffic.scale(self.stable, self.stable_size)  # rolling may have drained some
        self.traffic.set_weights({self.candidate: 0, self.stable: 100})
        self.traffic.retire(self.candidate)

    def _tick_aborting(self) -> None:
        if (self.traffic.drained(self.candidate)
                and self.traffic.ready_count(self.stable) >= self.stable_size):
            self._finish(ROLLED_BACK, self.reason)

    def _finish(self, result: str, reason: str) -> None:
        self.result, self.reason = result, reason
        self.phase = result
        self._emit(f"{self.candidate.label}: {result}" + (f": {reason}" if reason else ""))

    # Reporting.

    def describe(self) -> dict[str, object]:
        """The rollout as `deploy status` shows it."""
        strategy = self.strategy
        described: dict[str, object] = {
            "version": self.candidate.release.version, "strategy": strategy.kind,
            "phase": self.phase, "result": self.result, "reason": self.reason,
            "elapsed": round(self._clock() - self.started, 3),
        }
        if strategy.kind == "canary" and self.phase == "step":
            window = self.window  # the one the verdict was reached on
            described.update(step=self.step + 1, steps=list(strategy.steps),
                             share=strategy.steps[self.step],
                             step_elapsed=round(self._clock() - self.step_started, 3),
                             pause=strategy.pause, window_answers=window.answers,
                             window_failures=window.failures,
                             verdict=self.verdict.outcome, verdict_reason=self.verdict.reason)
        if strategy.kind == "rolling":
            described.update(rolled=self.rolled, size=self.size)
        return described
