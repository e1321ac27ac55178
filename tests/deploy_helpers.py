"""Helpers for the deployment tests: releases on disk and a supervisor process.

Every release of a test answers with its version ("Ugly in v3."), so each
answer tells which generation gave it (``version_of``). The clients that load
a deployment and record every answer are in ``deploy_load``.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from zenserve.deploy.control import ControlClient
from zenserve.service import pep20_table

SOCKET_TIMEOUT = 5.0


def versioned_table(version: str) -> dict[bytes, bytes]:
    """PEP 20's table with every answer saying which version gave it."""
    return {question: answer[:-1] + f" in {version}.".encode()
            for question, answer in pep20_table().items()}


def version_of(answer: bytes) -> str | None:
    """``b"Ugly in v3."`` -> ``"v3"``; None for anything else (an error, a plain answer)."""
    head, found, tail = answer.rpartition(b" in ")
    return tail[:-1].decode() if found and head and answer.endswith(b".") else None


def write_release(directory: Path, version: str, architecture: str = "epoll", workers: int = 1,
                  strategy: str = "blue-green", fault_rate: float = 0.0,
                  extra_strategy: str = "", extra: str = "", extra_service: str = "") -> Path:
    """A release file whose table answers "... in VERSION."."""
    table = directory / f"aphorisms-{version}.toml"
    table.write_text("".join(f'"{question.decode()}" = "{answer.decode()}"\n'
                             for question, answer in versioned_table(version).items()))
    path = directory / f"{version}.toml"
    path.write_text(f'version = "{version}"\narchitecture = "{architecture}"\n'
                    f"workers = {workers}\n{extra}\n"
                    f'[service]\naphorisms = "{table.name}"\nfault_rate = {fault_rate}\n'
                    f"{extra_service}\n"
                    f'[limits]\ngraceful_timeout = "5s"\n'
                    f'[health]\ninterval = "0.2s"\n'
                    f'[strategy]\nkind = "{strategy}"\n{extra_strategy}\n')
    return path


class Deployment:
    """`zenserve deploy run RELEASE -p 0` in a child process, ready once it printed its port."""

    def __init__(self, release: Path, control: Path, *extra: str,
                 ready_timeout: float = 30.0, ready_prefix: str = "Listening at ") -> None:
        self.control_path = control
        self.ready_prefix = ready_prefix
        self.process = subprocess.Popen(
            [sys.executable, "-m", "zenserve", "deploy", "run", str(release), "-p", "0",
             "--control", str(control), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.port = self._wait_ready(ready_timeout)
        except BaseException:
            self.kill()
            raise
        self.client = ControlClient(control, timeout=10.0)

    def _wait_ready(self, timeout: float) -> int:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while (remaining := deadline - time.monotonic()) > 0:
                if not selector.select(remaining):
                    break
                line = self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"supervisor exited: {self.stderr()}")
                if line.startswith(self.ready_prefix):
                    tail = line.rsplit(":", 1)[-1].strip()
                    return int(tail) if tail.isdigit() else 0
        raise AssertionError("supervisor not ready in time")

    def command(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run `zenserve deploy ARGS --control PATH` and return its result."""
        return subprocess.run(
            [sys.executable, "-m", "zenserve", "deploy", *args, "--control",
             str(self.control_path)], capture_output=True, text=True, timeout=timeout)

    def release(self, path: Path, strategy: str | None = None,
                timeout: float = 30.0) -> dict[str, object]:
        """Roll out ``path`` through the control socket and wait for its result."""
        return self.wait(self.begin(path, strategy), timeout)

    def begin(self, path: Path, strategy: str | None = None) -> int:
        """Start rolling out ``path``; its deployment number."""
        answer = self.client.request({"command": "release", "path": str(path),
                                      "strategy": strategy})
        assert "error" not in answer, answer
        return int(str(answer["deployment"]))

    def wait(self, deployment: int, timeout: float = 30.0) -> dict[str, object]:
        """The rollout's result, with its events (text, monotonic clock) under "events"."""
        result: dict[str, object] = {}
        events: list[tuple[str, float]] = []
        for message in self.client.stream({"command": "wait", "deployment": deployment},
                                          timeout):
            if "event" in message:
                events.append((message["event"], message["clock"]))
            else:
                result = message
        result["events"] = events
        return result

    def status(self) -> dict[str, object]:
        return self.client.request({"command": "status"})

    def worker_pids(self, version: str) -> list[int]:
        generations = self.status()["generations"]
        assert isinstance(generations, list)
        return [worker["pid"] for generation in generations
                if generation["version"] == version for worker in generation["workers"]]

    def stop(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ""
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def children(self) -> list[psutil.Process]:
        """The supervisor's worker processes (spares included)."""
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the supervisor; its workers must follow, or they are killed too."""
        workers = self.children()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        _, alive = psutil.wait_procs(workers, timeout=10)
        for worker in alive:  # a leak the tests must see, never leave behind
            worker.kill()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        assert not alive, f"workers outlived their supervisor: {alive}"


@contextlib.contextmanager
def deployment(release: Path, control: Path, *extra: str,
               ready_prefix: str = "Listening at ") -> Iterator[Deployment]:
    running = Deployment(release, control, *extra, ready_prefix=ready_prefix)
    try:
        yield running
    finally:
        running.kill()


def free_port() -> int:
    """A port that was free a moment ago (for configs that cannot say port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment_without_listen_fds() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("LISTEN_")}
