"""Misbehaving clients for the availability experiment, each bounded in count and time.

- ``half-question-leave``: send half a question and close, again and again
  (the book's client with ``-e``);
- ``stalled-half-question``: a few connections send half a question and then
  say nothing more until the run ends (a server serving one client at a time
  waits for the rest of it until its request timeout);
- ``reset``: ask a whole question and reset the connection (RST) at once,
  again and again, so the answer meets a dead peer;
- ``mixed``: all three at once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

from zenserve.hostile import open_connection, reset
from zenserve.lab.plan import BASELINE, MISBEHAVIOURS, MIXED
from zenserve.service import pep20_table

# Each repeating misbehaviour acts this often (20 times a second).
PACE = 0.05
STALLED_CONNECTIONS = 2
SOCKET_TIMEOUT = 1.0
# However long a run is, no misbehaving loop acts more often than this.
MAX_ACTS = 10_000


def _question() -> bytes:
    return next(iter(pep20_table()))


def _half_question_and_leave(host: str, port: int) -> None:
    question = _question()
    with open_connection(host, port, SOCKET_TIMEOUT) as sock:
        sock.sendall(question[: len(question) // 2])


def _ask_and_reset(host: str, port: int) -> None:
    sock = open_connection(host, port, SOCKET_TIMEOUT)
    try:
        sock.sendall(_question())
    finally:
        reset(sock)


REPEATING: dict[str, Callable[[str, int], None]] = {
    "half-question-leave": _half_question_and_leave,
    "reset": _ask_and_reset,
}


def kinds_of(condition: str) -> tuple[str, ...]:
    """The misbehaviours a condition mixes in (none for the baseline)."""
    if condition == BASELINE:
        return ()
    if condition == MIXED:
        return MISBEHAVIOURS
    if condition not in MISBEHAVIOURS:
        raise ValueError(f"unknown misbehaviour {condition!r}")
    return (condition,)


class Misbehaving:
    """Runs the misbehaviours of ``condition`` against ``host:port`` until ``stop()``."""

    def __init__(self, host: str, port: int, condition: str) -> None:
        self.host = host
        self.port = port
        self.kinds = kinds_of(condition)
        self.acts = 0
        self.failures = 0  # misbehaving acts the server refused or timed out (not an error)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._stalled: list[socket.socket] = []

    def start(self) -> None:
        """Open the stalled connections and start the repeating misbehaviours."""
        if "stalled-half-question" in self.kinds:
            question = _question()
            for _ in range(STALLED_CONNECTIONS):
                with contextlib.suppress(OSError):
                    sock = open_connection(self.host, self.port, SOCKET_TIMEOUT)
                    self._stalled.append(sock)
                    sock.sendall(question[: len(question) // 2])
        for kind in self.kinds:
            if kind in REPEATING:
                thread = threading.Thread(target=self._repeat, args=(REPEATING[kind],),
                                          name=f"zenserve-misbehave-{kind}", daemon=True)
                self._threads.append(thread)
                thread.start()

    def _repeat(self, act: Callable[[str, int], None]) -> None:
        for _ in range(MAX_ACTS):
            started = time.monotonic()
            try:
                act(self.host, self.port)
            except OSError:
                self.failures += 1
            self.acts += 1
            if self._stopping.wait(max(0.0, PACE - (time.monotonic() - started))):
                return

    def stop(self) -> None:
        """Stop the repeating misbehaviours and close the stalled connections."""
        self._stopping.set()
        for thread in self._threads:
            # An act takes at most its connect and send timeouts.
            thread.join(3 * SOCKET_TIMEOUT)
        for sock in self._stalled:
            sock.close()
        self._stalled.clear()


@contextlib.contextmanager
def misbehaving(host: str, port: int, condition: str) -> Iterator[Misbehaving]:
    """Misbehave as ``condition`` says for the duration of the ``with`` block."""
    clients = Misbehaving(host, port, condition)
    try:
        clients.start()
        yield clients
    finally:
        clients.stop()
