"""Small helpers for tests that talk to real servers over loopback."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from zenserve.process import ServerProcess
from zenserve.protocol import answer_framer

SOCKET_TIMEOUT = 10.0
QUESTION = b"Beautiful is better than?"
ANSWER = b"Ugly."


def is_gone(process: psutil.Process) -> bool:
    """Exited: a zombie, or reaped already (which may happen between listing it and asking)."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def live_children(pid: int) -> list[psutil.Process]:
    """The child processes of ``pid`` that are still running (workers, forked children)."""
    return [child for child in psutil.Process(pid).children() if not is_gone(child)]


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection((host, port), timeout=SOCKET_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def served_connection(port: int) -> socket.socket:
    """A connection the server is conversing with (it has answered one question)."""
    sock = connect(port)
    sock.sendall(QUESTION)
    assert read_answers(sock, 1) == [ANSWER]
    return sock


def read_answers(sock: socket.socket, count: int) -> list[bytes]:
    """Read exactly ``count`` answers (fails on close or timeout)."""
    framer = answer_framer()
    answers: list[bytes] = []
    while len(answers) < count:
        data = sock.recv(65536)
        assert data, f"server closed after {len(answers)} of {count} answers"
        answers += framer.feed(data)
    assert len(answers) == count, f"got more answers than asked: {answers[count:]!r}"
    return answers


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def ask(port: int, question: bytes = QUESTION) -> bytes:
    with connect(port) as sock:
        sock.sendall(question)
        return read_answers(sock, 1)[0]


def environment_without(package: str, shadow_root: Path) -> dict[str, str]:
    """os.environ for a child Python in which importing ``package`` fails as if not installed."""
    shadow = shadow_root / package
    shadow.mkdir()
    (shadow / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{package}'\", name='{package}')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(shadow_root), os.environ.get("PYTHONPATH")]))}


def wait_for(condition: object, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll a condition that has no event to wait on (a process table, a file)."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


@contextmanager
def running_server(*args: str, stderr: int | None = None) -> Iterator[ServerProcess]:
    with ServerProcess(*args, stderr=stderr) as server:
        yield server
