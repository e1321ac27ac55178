"""Pipes a supervisor loop selects on: the kernel's signals, and its workers' readiness.

Both turn asynchronous news into bytes on a pipe, so that one loop, never a
signal handler, decides what to do about it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from types import FrameType

_PIPE_BUF = 512  # POSIX guarantees atomic pipe writes up to this size


class SignalInbox:
    """Signals as bytes on a pipe (``signal.set_wakeup_fd``) that the supervisor loop reads.

    The handlers do nothing: every decision is taken in the loop, never inside a handler.
    """

    def __init__(self, signals: tuple[int, ...]) -> None:
        self._reader, self._writer = os.pipe()
        os.set_blocking(self._reader, False)
        os.set_blocking(self._writer, False)
        self._previous_fd = signal.set_wakeup_fd(self._writer, warn_on_full_buffer=False)
        self._previous = {signum: signal.signal(signum, _ignore) for signum in signals}

    def fileno(self) -> int:
        return self._reader

    def fds(self) -> tuple[int, int]:
        return self._reader, self._writer

    def drain(self) -> list[int]:
        """The signals received since the last call."""
        received = []
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._reader, 256):
                received += list(data)
        return received

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        os.close(self._reader)
        os.close(self._writer)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """A Python-level handler, so the C handler writes the signal to the wake-up fd."""


class ReadyChannel:
    """Workers tell the supervisor, one short line each, that they are ready or why not."""

    def __init__(self) -> None:
        self._reader, self._writer = os.pipe()
        os.set_blocking(self._reader, False)
        self._partial = b""

    def fileno(self) -> int:
        return self._reader

    def report(self, index: int, message: str) -> None:
        """Called in a worker: ``ready``, or ``error`` and why."""
        line = f"{index} {message}".replace("\n", " ").encode()[: _PIPE_BUF - 1] + b"\n"
        os.write(self._writer, line)

    def receive(self) -> list[tuple[int, str]]:
        """The (worker index, message) lines that have arrived."""
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._reader, 4096):
                self._partial += data
        *lines, self._partial = self._partial.split(b"\n")
        messages = []
        for line in lines:
            index, _, message = line.decode(errors="replace").partition(" ")
            messages.append((int(index), message))
        return messages

    def close(self) -> None:
        os.close(self._reader)
        os.close(self._writer)
