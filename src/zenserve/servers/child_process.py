"""What a forked conversation needs besides the conversation: dying with its parent,
a stop signal of its own, and handing its counts back to the parent that owns the metrics.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import struct
from collections.abc import Callable, Iterator
from types import FrameType

from zenserve.servers.blocking import shutdown_quietly
from zenserve.stats import Stats

log = logging.getLogger("zenserve.server")

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# The parent counts these itself (one per child it forks and reaps).
PARENT_COUNTED = frozenset({"connections_opened", "connections_active"})
_FIELDS = Stats.__slots__
_RECORD = struct.Struct(f"<{len(_FIELDS)}q")  # far below PIPE_BUF: one write is atomic


def _find_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] | None = getattr(ctypes.CDLL(None, use_errno=True),
                                                   "prctl", None)
    except OSError:
        return None
    return prctl


# Looked up once in the parent, so a child pays nothing for it.
_prctl = _find_prctl()


def die_with_parent(signum: int, parent: int) -> None:
    """Ask the kernel to send ``signum`` to this process when ``parent`` dies (Linux).

    Elsewhere this does nothing. If the parent is already gone (it died
    between fork and this call), exit now.
    """
    if _prctl is None or _prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
        return
    if os.getppid() != parent:
        os._exit(0)


def close_other_fds(keep: set[int]) -> None:
    """Close every descriptor above stderr except ``keep``: a child needs only its client.

    What the parent holds open (its listener, the metrics endpoint, other
    clients' pipes) must not stay open for as long as some child lives.
    """
    low = 3
    for fd in sorted(keep | {os.sysconf("SC_OPEN_MAX")}):
        if fd >= low:
            os.closerange(low, fd)
            low = fd + 1


class AlarmStop:
    """The stop signal of a process that holds one conversation, in its main thread.

    Signal handlers run in the main thread, which here is the conversation's:
    a signal interrupts its blocked ``recv()`` or ``send()``, the handler shuts
    the socket down, and the call, retried, sees it. So no thread and no pipe
    are needed (a forked child pays for each page it writes): SIGTERM stops
    gracefully and arms SIGALRM for the graceful timeout; SIGALRM and SIGINT
    stop at once.
    """

    def __init__(self, graceful_timeout: float) -> None:
        self.graceful_timeout = graceful_timeout
        self.woken = False
        self.graceful = True
        self._sock: socket.socket | None = None

    def install(self) -> None:
        """Take SIGTERM, SIGINT and SIGALRM in this (single-threaded) process."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGALRM, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.wake(graceful=signum == signal.SIGTERM)

    def wake(self, graceful: bool = True) -> None:
        """Stop the conversation at a request boundary (``graceful``) or at once."""
        if graceful and self.graceful_timeout <= 0:
            graceful = False
        first = not self.woken
        self.woken = True
        self.graceful = self.graceful and graceful
        if first and self.graceful:
            signal.setitimer(signal.ITIMER_REAL, self.graceful_timeout)
        if self._sock is not None:
            shutdown_quietly(self._sock, socket.SHUT_RD if self.graceful else socket.SHUT_RDWR)

    def enter(self, sock: socket.socket) -> None:
        self._sock = sock
        if self.woken:
            shutdown_quietly(sock, socket.SHUT_RD if self.graceful else socket.SHUT_RDWR)

    def leave(self, sock: socket.socket) -> None:
        self._sock = None


class ChildStatsPipe:
    """A pipe on which each exiting child writes what it counted, for the parent to add.

    Each child's ``Stats`` is a copy made at fork, so a child reports the
    difference between its counters at the end and at the start.
    """

    def __init__(self) -> None:
        self._reader, self._writer = os.pipe()
        self.child_fd = self._writer
        os.set_blocking(self._reader, False)
        # A full pipe (a parent that stopped reading) loses a count, never a child.
        os.set_blocking(self._writer, False)
        self._partial = b""

    @contextlib.contextmanager
    def reporting(self, stats: Stats) -> Iterator[None]:
        """In the child: count the block's work and write it to the parent at its end."""
        before = [getattr(stats, name) for name in _FIELDS]
        try:
            yield
        finally:
            after = [getattr(stats, name) for name in _FIELDS]
            with contextlib.suppress(OSError):
                os.write(self._writer, _RECORD.pack(*(a - b for a, b in zip(after, before,
                                                                              strict=True))))

    def collect(self, stats: Stats) -> None:
        """In the parent: add every report waiting in the pipe to ``stats``."""
        data = self._partial
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._reader, 65536):
                data += chunk
        whole = len(data) - len(data) % _RECORD.size
        self._partial = data[whole:]
        for start in range(0, whole, _RECORD.size):
            for name, delta in zip(_FIELDS, _RECORD.unpack_from(data, start), strict=True):
                if delta and name not in PARENT_COUNTED:
                    setattr(stats, name, getattr(stats, name) + delta)

    def close(self) -> None:
        for fd in (self._reader, self._writer):
            with contextlib.suppress(OSError):
                os.close(fd)
