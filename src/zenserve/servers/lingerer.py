"""Refused clients of a blocking server linger in one thread of their own, never in the acceptor's.

A client told ``Error: server busy.`` may still be sending: closing its socket
with input unread, or receiving more after the close, makes the kernel send a
reset, which can destroy the reply before the client reads it (see
``linger``). The thread that accepts must not wait for such a client, so it
sends the reply and the FIN and hands the socket to a ``Lingerer``: one daemon
thread per server, started at the first refusal, that reads and drops what
each held client sends until its end of stream, ``LINGER_BYTES`` or
``LINGER_SECONDS``, and then closes it. As in the event loops, it holds at
most ``linger.refused_held_at_most(--max-connections)`` refused clients; a
refusal past that is closed at once. ``close``
(at the server's stop) closes every held client and ends the thread.
"""

from __future__ import annotations

import collections
import contextlib
import select
import socket
import threading
import time
from dataclasses import dataclass

from zenserve.servers.linger import LINGER_BYTES, LINGER_SECONDS, drop_input, refused_held_at_most
from zenserve.signals import start_leaving_signals_to_main

# The thread stops within this long of close(); joined no longer than that.
JOIN_SECONDS = 2.0


@dataclass(slots=True)
class _Held:
    sock: socket.socket
    deadline: float
    budget: int


class Lingerer:
    """Holds refused clients' sockets, dropping their input, until each ends or a bound passes."""

    def __init__(self, max_connections: int) -> None:
        self.limit = refused_held_at_most(max_connections)
        self._arrivals: collections.deque[socket.socket] = collections.deque()
        self._bell, self._ringer = socket.socketpair()
        self._bell.setblocking(False)
        self._ringer.setblocking(False)
        self._lock = threading.Lock()  # accepting threads only (several in a pool)
        self._handed_over = 0  # written under the lock
        self._released = 0  # written by the lingering thread only
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def holding(self) -> int:
        """How many refused clients are held right now (approximately, from any thread)."""
        return self._handed_over - self._released

    def hold(self, sock: socket.socket) -> bool:
        """Take over ``sock`` (its reply and FIN sent); False when full or closed: close it.

        On True the descriptor is this lingerer's: ``sock`` is detached, so a
        caller that closes it anyway (``socketserver`` does) closes nothing.
        """
        with self._lock:
            if self._closing or self.holding >= self.limit:
                return False
            if self._thread is None:
                self._thread = threading.Thread(target=self._linger, daemon=True,
                                                name="zenserve-lingerer")
                start_leaving_signals_to_main(self._thread)
            held = socket.socket(fileno=sock.detach())
            held.setblocking(False)
            self._handed_over += 1
            self._arrivals.append(held)
        self._ring()
        return True

    def close(self) -> None:
        """Close every held client and end the thread (waits for it, bounded)."""
        with self._lock:
            self._closing = True
            thread = self._thread
        self._ring()
        if thread is not None:
            thread.join(JOIN_SECONDS)
        if thread is None or not thread.is_alive():
            self._bell.close()
            self._ringer.close()

    def _ring(self) -> None:
        with contextlib.suppress(OSError):  # already ringing (buffer full), or closed
            self._ringer.send(b"!")

    def _linger(self) -> None:
        held: dict[int, _Held] = {}  # in arrival order, hence in deadline order
        poller = select.poll()
        poller.register(self._bell, select.POLLIN)
        try:
            while not self._closing:
                for fd, _ in poller.poll(_milliseconds_until(held)):
                    if fd == self._bell.fileno():
                        self._take_arrivals(held, poller)
                    elif (lingering := held.get(fd)) is not None:
                        lingering.budget = drop_input(lingering.sock, lingering.budget)
                        if not lingering.budget:
                            self._release(held, poller, fd)
                self._release_expired(held, poller)
        finally:
            with self._lock:  # no hold() gets past _closing from here on
                self._closing = True
            for lingering in held.values():
                lingering.sock.close()
            while self._arrivals:
                self._arrivals.popleft().close()

    def _take_arrivals(self, held: dict[int, _Held], poller: select.poll) -> None:
        with contextlib.suppress(OSError):
            while self._bell.recv(4096):
                pass
        deadline = time.monotonic() + LINGER_SECONDS
        while self._arrivals:
            sock = self._arrivals.popleft()
            held[sock.fileno()] = _Held(sock, deadline, LINGER_BYTES)
            poller.register(sock, select.POLLIN)

    def _release(self, held: dict[int, _Held], poller: select.poll, fd: int) -> None:
        poller.unregister(fd)
        held.pop(fd).sock.close()
        self._released += 1

    def _release_expired(self, held: dict[int, _Held], poller: select.poll) -> None:
        now = time.monotonic()
        for fd, lingering in list(held.items()):
            if lingering.deadline > now:
                break
            self._release(held, poller, fd)


def _milliseconds_until(held: dict[int, _Held]) -> int:
    """How long the thread may wait: until the first deadline, or until rung."""
    if not held:
        return -1
    first = next(iter(held.values()))
    return max(0, int((first.deadline - time.monotonic()) * 1000) + 1)
