"""The lab bench: start one architecture at a time, run bounded loads against it, report progress.

Every server is a child ``zenserve serve -p 0`` (``ServerProcess``), found by
its readiness line, stopped before the next one starts. Load runs use the
``zenserve.load`` library in worker processes forked from a forkserver that
has the load code preloaded: a comparison makes hundreds of short runs, and a
fresh interpreter for each would cost more than the runs themselves.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.context import ForkServerContext
from typing import Protocol

from zenserve import load
from zenserve.errors import ZenserveError
from zenserve.load import BenchOptions, BenchResult
from zenserve.load.result import CPU_SATURATION_PERCENT
from zenserve.process import ServerProcess
from zenserve.protocol import answer_framer
from zenserve.service import pep20_table

LOOPBACK = "127.0.0.1"
SERVER_READY_TIMEOUT = 30.0
# Servers are stopped with SIGINT (at once): idle and stalled clients of an
# experiment must not hold up the next one for a graceful timeout.
SERVER_STOP_TIMEOUT = 5.0
PRELOADED = ["zenserve.load.worker", "uvloop"]
SETTLE_LIMIT = 2.0
SETTLE_QUESTION = next(iter(pep20_table()))


class Reporter(Protocol):
    """Where a comparison says how it is going (a progress bar, or nothing)."""

    def section(self, title: str, steps: int) -> None:
        """A section of ``steps`` steps begins."""

    def step(self, text: str) -> None:
        """What is being measured now."""

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps are done."""

    def warn(self, text: str) -> None:
        """Something the reader of the report should know."""


class SilentReporter:
    """Reports nothing (the library's default)."""

    def section(self, title: str, steps: int) -> None:
        """Ignored."""

    def step(self, text: str) -> None:
        """Ignored."""

    def advance(self, steps: int = 1) -> None:
        """Ignored."""

    def warn(self, text: str) -> None:
        """Ignored."""


def _forkserver() -> ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOADED)
    return context


@dataclass
class Lab:
    """Starts servers and runs loads for the experiments; collects warnings for the report."""

    reporter: Reporter = field(default_factory=SilentReporter)
    host: str = LOOPBACK
    warnings: list[str] = field(default_factory=list)
    # Every run bench flagged as possibly generator-bound (a full core, or its own
    # schedule lagging), with bench's reasons; never a server that fell short.
    saturation: list[str] = field(default_factory=list)
    context: ForkServerContext = field(default_factory=_forkserver)

    def warn(self, text: str) -> None:
        """Keep ``text`` for the report and show it now."""
        self.warnings.append(text)
        self.reporter.warn(text)

    @contextlib.contextmanager
    def server(self, architecture: str, *serve_args: str,
               steps: int = 0) -> Iterator[ServerProcess | None]:
        """`zenserve serve --arch ARCHITECTURE ARGS` on a free loopback port, stopped after.

        Yields None (after a warning, and moving the progress on by the
        ``steps`` that will not be made) if the server does not start: one
        architecture that cannot run must not end a long comparison.
        """
        with tempfile.TemporaryFile() as log:
            try:
                server = ServerProcess(self.host, "--arch", architecture, *serve_args,
                                       ready_timeout=SERVER_READY_TIMEOUT, stderr=log.fileno())
            except ZenserveError as error:
                log.seek(0)
                lines = log.read().decode(errors="replace").strip().splitlines()
                detail = f": {lines[-1]}" if lines else ""
                self.warn(f"{architecture} {' '.join(serve_args)} could not start ({error})"
                          f"{detail}; left out")
                self.reporter.advance(steps)
                yield None
                return
            try:
                yield server
            finally:
                _stop(server)

    def settle(self, port: int) -> bool:
        """Wait until the server answers a new client (True), at most ``SETTLE_LIMIT`` seconds.

        After an overloaded run a server may still be working through the
        connections the load left behind (a one-client server one by one);
        the next measurement must not be charged for them.
        """
        try:
            with socket.create_connection((self.host, port), timeout=SETTLE_LIMIT) as sock:
                sock.sendall(SETTLE_QUESTION)
                framer = answer_framer()
                while data := sock.recv(4096):
                    if framer.feed(data):
                        return True
            return False
        except OSError:
            return False

    def bench(self, options: BenchOptions, what: str,
              progress: load.ProgressCallback | None = None) -> BenchResult | None:
        """One load run; None (and a warning naming ``what``) if it could not run."""
        try:
            result = load.run(options, progress, context=self.context)
        except ZenserveError as error:
            self.warn(f"{what}: the run failed: {error}")
            return None
        if result.saturated:
            self.saturation.append(f"{what}: {'; '.join(result.saturation_reasons)}")
        return result


def _stop(server: ServerProcess) -> None:
    try:
        server.stop(signal.SIGINT, timeout=SERVER_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass  # stop() has killed it
    finally:
        server.kill()  # waits, and closes its pipes


def generator_limited(result: BenchResult) -> bool:
    """True when a load process was near a full core: the generator, not the server, was the limit.

    Bench also flags an open-loop run whose generator sent requests late on
    its own schedule (listed in the report with bench's reasons). A rate
    below the target with the schedule kept is no flag: the server could not
    keep up, and the points show it as the achieved rate.
    """
    return any(percent >= CPU_SATURATION_PERCENT for percent in result.worker_cpu_percent)


def serve_arguments(workers: int = 0, cost: str = "0", cost_kind: str = "block") -> list[str]:
    """The `zenserve serve` options every experiment shares, plus its own knobs."""
    arguments = ["--cost", cost, "--cost-kind", cost_kind]
    if workers:
        arguments += ["--workers", str(workers)]
    return arguments


def bench_options(port: int, connections: int, warmup: float, duration: float,
                  rate: float | None = None, connection_per_request: bool = False,
                  timeout: float = 2.0) -> BenchOptions:
    """The load of one run, on loopback (one load process: the server needs the other core)."""
    return BenchOptions(host=LOOPBACK, port=port, connections=connections, rate=rate,
                        duration=duration, warmup=warmup,
                        connection_per_request=connection_per_request, timeout=timeout)
