"""Helpers for the deployment tests: releases on disk, a supervisor process, a ledger client.

Every release of a test answers with its version ("Ugly in v3."), so each
answer tells which generation gave it. The ledger client records every
request it sends and what became of it, bounded in count and in time.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from zenserve.deploy.control import ControlClient
from zenserve.protocol import Framer, answer_framer
from zenserve.service import pep20_table

SOCKET_TIMEOUT = 5.0
QUESTIONS = list(pep20_table())


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


@dataclass
class Record:
    """One request: when it was sent, when it ended, and its answer or error kind."""

    sent: float
    ended: float
    answer: bytes = b""
    error: str = ""


@dataclass
class Ledger:
    """Every request of a load run, from every client thread."""

    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, records: list[Record]) -> None:
        with self.lock:
            self.records.extend(records)

    def errors(self) -> list[Record]:
        return [record for record in self.records if record.error]

    def versions_after(self, moment: float) -> set[str | None]:
        return {version_of(record.answer) for record in self.records
                if record.sent > moment and not record.error}


class LoadClients:
    """N threads asking questions until stopped (or a request/time bound), recording each one."""

    def __init__(self, port: int, threads: int = 4, per_request: bool = False,
                 max_seconds: float = 60.0, max_requests: int = 200_000,
                 think: float = 0.0, per_connection: int = 0) -> None:
        self.port = port
        self.per_request = per_request
        self.per_connection = per_connection  # reconnect after this many (0: never)
        self.think = think  # seconds between an answer and the next question
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._max_requests = max_requests // threads
        self._threads = [threading.Thread(target=self._run, args=(index,), daemon=True)
                         for index in range(threads)]

    def __enter__(self) -> LoadClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> Ledger:
        self._stop.set()
        for thread in self._threads:
            thread.join(SOCKET_TIMEOUT * 2)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread hung"
        return self.ledger

    def _run(self, index: int) -> None:
        records: list[Record] = []
        sock: socket.socket | None = None
        framer = answer_framer()
        try:
            for count in range(self._max_requests):
                if self._stop.is_set() or time.monotonic() > self._deadline:
                    break
                question = QUESTIONS[(index + count) % len(QUESTIONS)]
                if sock is None:
                    sock, framer = self._connect(records)
                    if sock is None:
                        continue
                record = _ask(sock, framer, question)
                records.append(record)
                asked_here = count + 1
                if record.error or self.per_request or (
                        self.per_connection and asked_here % self.per_connection == 0):
                    sock.close()
                    sock = None
                if self.think:
                    self._stop.wait(self.think)
        finally:
            if sock is not None:
                sock.close()
            self.ledger.add(records)

    def _connect(self, records: list[Record]) -> tuple[socket.socket | None, Framer]:
        started = time.monotonic()
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=SOCKET_TIMEOUT)
        except OSError as error:
            records.append(Record(started, time.monotonic(), error=f"refused: {error}"))
            time.sleep(0.01)
            return None, answer_framer()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, answer_framer()


def _ask(sock: socket.socket, framer: Framer, question: bytes) -> Record:
    record = Record(time.monotonic(), 0.0)
    try:
        sock.sendall(question)
        answers: list[bytes] = []
        while not answers:
            data = sock.recv(4096)
            if not data:
                record.error = "short read"
                break
            answers = framer.feed(data)
        if answers:
            record.answer = answers[0]
            if len(answers) > 1:
                record.error = f"extra answers: {answers[1:]!r}"
    except TimeoutError:
        record.error = "timeout"
    except OSError as error:
        record.error = f"reset: {error}"
    record.ended = time.monotonic()
    return record


def free_port() -> int:
    """A port that was free a moment ago (for configs that cannot say port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def environment_without_listen_fds() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("LISTEN_")}
