"""Worker processes as the supervisor sees them.

A ``WorkerProcess`` is one child: its two channels, its last report, its
health probes (the first one makes it ready; later ones are its heartbeat).
It starts as a spare and is then assigned to a ``Generation``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable

from zenserve.deploy import channel
from zenserve.deploy.analysis import Sample
from zenserve.deploy.generation import Generation
from zenserve.deploy.probe import Probe
from zenserve.deploy.reactor import Reactor
from zenserve.deploy.spec import spec_to_json

SPARE, STARTING, READY, DRAINING, STOPPING, EXITED = (
    "spare", "starting", "ready", "draining", "stopping", "exited")
# A heartbeat answered wrongly this many times in a row means the worker is unhealthy.
UNHEALTHY_AFTER = 3
# Past a drain's graceful timeout, this much more before the worker is killed.
KILL_MARGIN_SECONDS = 2.0

HandoffHandler = Callable[[int], None]


class WorkerProcess:
    """One worker process: a spare until it is assigned to a generation."""

    def __init__(self, reactor: Reactor, on_handoff: HandoffHandler) -> None:
        self._reactor = reactor
        self._on_handoff = on_handoff
        self.connections, worker_connections = channel.connection_channel()
        self.control, worker_control = channel.control_channel()
        with worker_connections, worker_control:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "zenserve.deploy.worker",
                 str(worker_connections.fileno()), str(worker_control.fileno())],
                pass_fds=(worker_connections.fileno(), worker_control.fileno()),
                # Its own process group keeps a terminal's Ctrl-C away from workers (the
                # supervisor decides for them); not its own session: with the kernel's
                # scheduler autogroups, a session of its own costs ~0.1 ms per request.
                stdin=subprocess.DEVNULL, process_group=0)
        self.pid = self.process.pid
        self.connections.setblocking(False)
        self.control.setblocking(False)
        reactor.watch(self.control, self._on_control)
        self._generation: Generation | None = None
        self.slot = 0
        self.state = SPARE
        self.started_at = time.monotonic()
        self.said_ready = False
        self.sample = Sample()
        self.active = 0
        self.handed_off = 0
        self.probe: Probe | None = None
        self.next_probe = 0.0
        self.wrong_answers = 0
        self.stop_deadline = 0.0
        self.failure = ""  # why it was killed, for the generation's record
        self.channel_open = True
        self.state_at_exit = SPARE
        self.exit_expected = False

    @property
    def generation(self) -> Generation:
        assert self._generation is not None, "a spare worker has no generation"
        return self._generation

    def assign(self, generation: Generation, slot: int) -> None:
        """Serve ``generation``'s release (the spare has imported everything already)."""
        release = generation.release
        self._generation, self.slot = generation, slot
        self.state, self.started_at = STARTING, time.monotonic()
        try:
            channel.send_message(self.control, {
                "command": "serve",
                "config": spec_to_json(release.server_config(), release.table_digest),
                "environment": {"ZENSERVE_GENERATION": str(generation.id),
                                "ZENSERVE_VERSION": release.version}})
        except OSError:
            self.kill("its control channel is broken")

    @property
    def routable(self) -> bool:
        return self.state == READY

    def send(self, fd: int) -> None:
        """Route a connection here (BlockingIOError: the worker is behind; try another)."""
        channel.send_connection(self.connections, fd)

    def drain(self, graceful_timeout: float) -> None:
        """Hand every connection back at a request boundary, then exit."""
        self._command("drain", DRAINING, graceful_timeout)

    def stop(self, graceful_timeout: float) -> None:
        """Finish every conversation where it is, then exit."""
        self._command("stop", STOPPING, graceful_timeout)

    def _command(self, command: str, state: str, graceful_timeout: float) -> None:
        if self.state in (EXITED, STOPPING) or (self.state == DRAINING and command == "drain"):
            return
        self._drop_probe()
        if self.state in (SPARE, STARTING) and not self.said_ready:
            with contextlib.suppress(ProcessLookupError):  # nothing to drain yet
                self.process.kill()
            self.state, self.stop_deadline = STOPPING, time.monotonic()
            return
        self.state = state
        self.stop_deadline = time.monotonic() + graceful_timeout + KILL_MARGIN_SECONDS
        try:
            channel.send_message(self.control, {"command": command})
        except OSError:
            self.kill("its control channel is broken")

    def kill(self, reason: str) -> None:
        """SIGKILL: for a worker that cannot be asked (dead channel, stuck, past its deadline)."""
        if self.failure == "":
            self.failure = f"killed: {reason}"
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        if self.state != EXITED:
            self.state = STOPPING
            self.stop_deadline = time.monotonic()

    def _on_control(self) -> None:
        while True:
            try:
                message, fd, still_open = channel.receive_control(self.control)
            except BlockingIOError:
                return
            except OSError:
                message, fd, still_open = None, None, False
            if fd is not None:
                self._on_handoff(fd)
            if not still_open:
                self._reactor.unwatch(self.control)
                self.channel_open = False
                return
            if message is not None:
                self._on_message(message)

    def _on_message(self, message: channel.Message) -> None:
        kind = message.get("type")
        if kind == "failed" and self._generation is not None:
            # The worker could not start this release (a missing module, a changed
            # file): the reason goes to the rollout, which aborts on it.
            self.failure = f"could not start: {message.get('reason')}"
            self.generation.start_failed(str(message.get("reason")))
        elif kind == "ready":
            self.said_ready = True
            self.next_probe = 0.0  # check it now
        elif kind == "report":
            self.sample = Sample(int(message["answers"]), int(message["failures"]),
                                 tuple(message["latency"]))
            self.active = int(message["active"])
            self.handed_off = int(message["handed_off"])

    # Health: the first probe makes a worker ready, the next ones are its heartbeat.

    def check_health(self, now: float) -> None:
        release = self.generation.release
        health = release.health
        if self.state == STARTING and now - self.started_at > health.start_timeout:
            self.generation.start_failed(f"not ready within {health.start_timeout:g}s")
            self.kill("not ready in time")
            return
        if self.state not in (STARTING, READY) or not self.said_ready:
            return
        probe = self.probe
        if probe is not None:
            self._judge_probe(probe, now)
        elif now >= self.next_probe:
            self._send_probe(now)

    def _send_probe(self, now: float) -> None:
        health = self.generation.release.health
        expected = health.answer.encode() if health.answer is not None else None
        try:
            self.probe = Probe(self.connections, health.question.encode(), expected,
                               now + health.timeout, self.sample.answers)
        except BlockingIOError:
            self.next_probe = now + health.interval  # behind on connections: busy, not dead
            return
        except OSError:
            return  # the worker is gone; its exit is noticed by the channel
        self._reactor.watch(self.probe.sock, self._on_probe_readable)

    def _on_probe_readable(self) -> None:
        probe = self.probe
        if probe is not None:
            self._reactor.unwatch(probe.sock)
            probe.on_readable()
            if probe.outcome is None:
                self._reactor.watch(probe.sock, self._on_probe_readable)
            else:
                self._judge_probe(probe, time.monotonic())

    def _judge_probe(self, probe: Probe, now: float) -> None:
        health = self.generation.release.health
        if probe.outcome is None:
            if now < probe.deadline:
                return
            if self.sample.answers > probe.answers_before:
                probe.deadline = now + health.timeout  # slow, but answering clients
                probe.answers_before = self.sample.answers
                return
            self._drop_probe()
            self._unhealthy(f"no answer to its health check within {health.timeout:g}s")
            return
        self.probe = None
        self.next_probe = now + health.interval
        ok, detail = probe.outcome
        if ok:
            self.wrong_answers = 0
            if self.state == STARTING:
                self.state = READY
                self.generation.became_ready()
        elif self.state == STARTING:
            self.generation.start_failed(f"health check: {detail}")
            self.kill(f"health check failed: {detail}")
        else:
            self.wrong_answers += 1
            if self.wrong_answers >= UNHEALTHY_AFTER:
                self._unhealthy(f"health check failed {UNHEALTHY_AFTER} times: {detail}")

    def _unhealthy(self, reason: str) -> None:
        self.generation.restarts += 1
        self.kill(reason)

    def _drop_probe(self) -> None:
        if self.probe is not None:
            self._reactor.unwatch(self.probe.sock)
            self.probe.close()
            self.probe = None

    # Exit.

    def reap(self, now: float) -> bool:
        """True once the process has exited (and its channels are closed)."""
        if self.state == EXITED:
            return True
        if self.state in (DRAINING, STOPPING) and now > self.stop_deadline:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        if self.process.poll() is None:
            return False
        if self.channel_open:
            self._on_control()  # the last report and any last handoffs
        self._drop_probe()
        self._reactor.unwatch(self.control)
        self._reactor.unwatch(self.connections)  # watched while it was behind
        self.control.close()
        self.connections.close()
        self.state_at_exit = self.state
        self.exit_expected = self.state in (DRAINING, STOPPING) and not self.failure
        self.state = EXITED
        return True
