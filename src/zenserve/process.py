"""Run `zenserve serve` as a child process and wait for its readiness line.

Used by the demo, `compare`, tests and benchmarks: no fixed ports (port 0)
and no sleeps, only the ``Listening at HOST:PORT`` line.
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from functools import partial
from types import TracebackType

from zenserve.errors import ZenserveError

READY_PREFIX = "Listening at "
METRICS_PREFIX = "Metrics at "  # the line after the readiness line with --metrics-port


class ServerProcess:
    """``zenserve serve ARGS -p 0`` in a child process; ``port`` once ready."""

    def __init__(self, *serve_args: str, ready_timeout: float = 30.0,
                 stderr: int | None = None, env: dict[str, str] | None = None,
                 descriptor_limit: int | None = None) -> None:
        """``descriptor_limit``: the server's soft RLIMIT_NOFILE, as ``ulimit -n`` would set it."""
        command = [sys.executable, "-m", "zenserve", "serve", "-p", "0", *serve_args]
        self.metrics_url: str | None = None
        self._wants_metrics = any(arg.startswith("--metrics-port") for arg in serve_args)
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, text=True,
            env=env if env is not None else os.environ.copy(),
            preexec_fn=None if descriptor_limit is None else partial(
                limit_descriptors, descriptor_limit),
        )
        try:
            self.host, self.port = self._wait_ready(ready_timeout)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, timeout: float) -> tuple[str, int]:
        assert self.process.stdout is not None
        # Raw reads and our own line splitting: several lines may arrive in one
        # chunk, and lines held in a file object's buffer would not wake select.
        stdout = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        pending = b""
        address: tuple[str, int] | None = None
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            while (remaining := deadline - time.monotonic()) > 0:
                if not selector.select(remaining):
                    break
                data = os.read(stdout, 65536)
                if not data:
                    raise ZenserveError(f"server exited with status {self.process.wait()}")
                *lines, pending = (pending + data).split(b"\n")
                for line in (raw.decode(errors="replace") for raw in lines):
                    if line.startswith(METRICS_PREFIX):
                        self.metrics_url = line[len(METRICS_PREFIX):].strip()
                    if line.startswith(READY_PREFIX):
                        host, _, port = line[len(READY_PREFIX):].strip().rpartition(":")
                        address = host.strip("[]"), int(port)
                if address and (self.metrics_url or not self._wants_metrics):
                    return address
        raise ZenserveError(f"server not ready within {timeout:g}s")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``signum`` and wait for the exit status (killing it past ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.kill()


def limit_descriptors(soft_limit: int) -> None:
    """Lower this process's soft RLIMIT_NOFILE (in a child, before it runs the server)."""
    _, hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft_limit, hard_limit))
