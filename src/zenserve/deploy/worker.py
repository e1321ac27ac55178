"""One worker process of a generation: any deployable architecture on routed connections.

Started by the supervisor as ``python -m zenserve.deploy.worker`` with its two
channels inherited (see ``channel``), ahead of need: a *spare* imports
everything, then waits for the release it is assigned. The main thread runs the
architecture's ``serve_forever``; a control thread reports counts every
``REPORT_SECONDS`` (which is also how the supervisor knows it is alive) and
obeys ``drain`` (hand every connection back at a request boundary, then exit)
and ``stop`` (finish conversations where they are, then exit).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field, replace
from types import FrameType

from zenserve.config import ServerConfig, ServiceConfig
from zenserve.conversation import Conversation
from zenserve.deploy import channel
from zenserve.deploy.handoff import PROBE_PEER, WorkerState
from zenserve.deploy.listener import RoutedListener
from zenserve.deploy.release import table_digest
from zenserve.deploy.spec import spec_from_json
from zenserve.deploy.tracked_conversation import TrackedConversation
from zenserve.errors import ZenserveError
from zenserve.servers import server_class
from zenserve.servers.base import ServeContext, Server, Waker
from zenserve.service import Service, import_handler, load_table
from zenserve.stats import Stats

log = logging.getLogger("zenserve.deploy.worker")

# How often a worker reports its counts; the supervisor's view of a canary
# step is at most this stale.
REPORT_SECONDS = 0.1
# At exit, how long the control thread may take to finish handing connections back.
CONTROL_JOIN_SECONDS = 5.0


def answers_and_failures(stats: Stats) -> tuple[int, int]:
    """What the canary analysis judges: every reply, and those that are the server's fault.

    An injected fault, an internal error and "server busy" are failures; an
    unknown or over-long question is the client's doing and counts as answered.
    """
    failures = stats.faults + stats.internal_errors + stats.busy
    return stats.answered + stats.unknown + stats.too_long + failures, failures


def build_service(config: ServiceConfig, expected_digest: str = "") -> Service:
    """The release's service (already validated when the release was read).

    Not ``runner.build_service``: that module brings the metrics exporter, and
    every millisecond of a worker's start is a millisecond added to each switch.
    """
    table = load_table(config.aphorisms) if config.aphorisms is not None else None
    if expected_digest and table_digest(table) != expected_digest:
        raise ZenserveError(f"{config.aphorisms} changed since the release was read; "
                            "roll it out again as a new release")
    handler = import_handler(config.callable_spec) if config.callable_spec else None
    return Service(table=table, handler=handler, cost=config.cost, fault_rate=config.fault_rate)


@dataclass(frozen=True)
class WorkerContext(ServeContext):
    """A ServeContext whose conversations can be handed back, and probes are told apart."""

    state: WorkerState | None = None
    probe_service: Service | None = None
    probe_stats: Stats = field(default_factory=Stats)

    def conversation(self, peer: str) -> Conversation:
        if peer == PROBE_PEER and self.probe_service is not None:
            # The health probe is not client traffic: not counted, and never faulted.
            return Conversation(self.probe_service, self.probe_stats, self.limits, peer)
        conversation = TrackedConversation(self.service, self.stats, self.limits, peer)
        if self.state is not None:
            self.state.link(peer, conversation)
        return conversation


class Worker:
    """The architecture, its routed listener, and the control thread beside it."""

    def __init__(self, config: ServerConfig, connection_fd: int, control: socket.socket,
                 expected_digest: str = "") -> None:
        control.settimeout(5.0)  # a handoff or report never blocks a worker for long
        self.state = WorkerState(control)
        self.listener = RoutedListener(self.state, connection_fd)
        probe_service = build_service(replace(config.service, fault_rate=0.0))
        self.context = WorkerContext(config, build_service(config.service, expected_digest),
                                     state=self.state, probe_service=probe_service)
        self.server: Server = server_class(config.architecture)(self.listener, self.context)
        self._stopping = False
        self._exiting = Waker()  # wakes the control thread the moment serving is over
        self.state.on_supervisor_gone = self._supervisor_gone

    def run(self) -> None:
        control_thread = threading.Thread(target=self._control_loop, name="deploy-control",
                                          daemon=True)
        control_thread.start()
        try:
            self.server.serve_forever()
        finally:
            # The control thread may be handing queued connections back: let it
            # finish before the channels close under it.
            self._stopping = True
            self._exiting.wake()
            control_thread.join(CONTROL_JOIN_SECONDS)
            if self.state.draining:
                self._return_queued()
            self._report()
            self.state.control.close()
            self.listener.close()
            self._exiting.close()

    def stop(self, graceful: bool = True) -> None:
        self.server.shutdown(graceful)

    def _control_loop(self) -> None:
        try:
            self._control()
        except Exception:  # without this thread the worker cannot be drained: stop it
            log.exception("the control thread failed; stopping this worker")
            self.stop()

    def _control(self) -> None:
        control = self.state.control
        channel.send_message(control, {"type": "ready", "pid": os.getpid()})
        poller = select.poll()
        poller.register(control, select.POLLIN)
        poller.register(self._exiting, select.POLLIN)
        while not self._stopping:
            events = poller.poll(REPORT_SECONDS * 1000)
            if self._stopping:
                return
            if events:
                try:
                    message, fd, still_open = channel.receive_control(control)
                except OSError:
                    still_open, message, fd = False, None, None
                if fd is not None:
                    os.close(fd)
                if not still_open:
                    self.state.lose_supervisor()
                    return
                self._obey(message or {})
            if not self._report():
                self.state.lose_supervisor()  # a report that cannot be sent: same thing
                return

    def _supervisor_gone(self) -> None:
        if not self._stopping:
            log.warning("the supervisor has gone; stopping")
        self.stop()

    def _obey(self, message: channel.Message) -> None:
        command = message.get("command")
        if command == "drain":
            self.state.begin_drain()
            self.stop()
            self._return_queued()
        elif command == "stop":
            self.stop()

    def _return_queued(self) -> None:
        """Connections routed here but not yet accepted go back to the supervisor."""
        while True:
            try:
                received = channel.receive_connection(self.listener, socket.MSG_DONTWAIT)
            except (BlockingIOError, OSError):
                return
            if received is None:
                return
            kind, fd = received
            try:
                if kind == channel.CLIENT and not self.state.supervisor_gone:
                    channel.hand_back(self.state.control, fd)
                    self.state.handed_off += 1
            except OSError as error:
                log.warning("could not hand a queued connection back: %s", error)
            finally:
                os.close(fd)

    def _report(self) -> bool:
        stats = self.context.stats
        answers, failures = answers_and_failures(stats)
        try:
            channel.send_message(self.state.control, {
                "type": "report", "answers": answers, "failures": failures,
                "latency": self.state.latency.counts, "active": stats.connections_active,
                "handed_off": self.state.handed_off})
        except OSError:
            return False
        return True


Assignment = tuple[ServerConfig, str, dict[str, str]]


def wait_for_assignment(control: socket.socket) -> Assignment | None:
    """A spare waits here, imports done, until the supervisor assigns it a release."""
    while True:
        message, fd, still_open = channel.receive_control(control)
        if fd is not None:
            os.close(fd)
        if not still_open:
            return None  # the supervisor no longer needs this spare
        if message is not None and message.get("command") == "serve":
            config, digest = spec_from_json(message["config"])
            return config, digest, dict(message.get("environment") or {})


def preload_architectures() -> None:
    """Import every deployable architecture now, so that a spare starts any of them at once."""
    from zenserve.deploy.release import deployable_architectures

    for name in deployable_architectures():
        # Best effort: a module that fails to import here fails again, with its
        # reason, only in a worker assigned that architecture.
        with contextlib.suppress(Exception):
            server_class(name)


def main(argv: list[str]) -> int:
    """Entry point: ``python -m zenserve.deploy.worker CONNECTION_FD CONTROL_FD``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides for its workers
    connection_fd, control_fd = int(argv[0]), int(argv[1])
    control = socket.socket(fileno=control_fd)
    preload_architectures()
    assignment = wait_for_assignment(control)
    if assignment is None:
        return 0
    config, digest, environment = assignment
    os.environ.update(environment)  # ZENSERVE_GENERATION and ZENSERVE_VERSION, for services
    logging.basicConfig(level=logging.INFO if config.verbose else logging.WARNING,
                        format="%(asctime)s %(process)d %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        worker = Worker(config, connection_fd, control, digest)
    except Exception as error:  # the release cannot run: say why, to the rollout
        reason = str(error) if isinstance(error, ZenserveError) else (
            f"{type(error).__name__}: {error}")
        if not isinstance(error, ZenserveError):
            log.exception("cannot start %s", config.architecture)
        print(f"zenserve deploy worker: error: {reason}", file=sys.stderr)
        with contextlib.suppress(OSError):
            channel.send_message(control, {"type": "failed", "reason": reason})
        return 2

    def on_signal(signum: int, frame: FrameType | None) -> None:
        worker.stop(graceful=True)

    signal.signal(signal.SIGTERM, on_signal)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
