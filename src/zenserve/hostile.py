"""Hostile clients, for the hardening tests and `zenserve soak`.

Each one misbehaves in one way a real peer can: dripping bytes (slowloris),
pipelining without reading (flood), resetting, sending garbage. They talk to
loopback servers only, and every loop here is bounded in count and in time.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

from zenserve.protocol import answer_framer

# One byte that is neither whitespace (skipped) nor a '?' (ends a question).
DRIP_BYTE = b"x"
_CLOSED_EVENTS = select.POLLIN | select.POLLHUP | select.POLLERR


def open_connection(host: str, port: int, timeout: float = 10.0) -> socket.socket:
    """A connected TCP socket with ``timeout`` on every operation and Nagle off."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def open_idle(host: str, port: int, count: int, accepted: Callable[[], int] | None = None,
              ahead: int = 512, timeout: float = 30.0) -> list[socket.socket]:
    """``count`` connections that say nothing, paced so the server's backlog never overflows.

    A connection that finds the accept queue full looks established to the
    client, but the kernel drops it into SYN-RECV retries that last seconds;
    so, given ``accepted()`` (how many the server holds now), stay at most
    ``ahead`` connections in front of the server, waiting at most ``timeout``.
    """
    sockets: list[socket.socket] = []
    try:
        for index in range(count):
            if accepted is not None and index and index % ahead == 0:
                deadline = time.monotonic() + timeout
                while accepted() < index - ahead and time.monotonic() < deadline:
                    time.sleep(0.01)
            sockets.append(socket.create_connection((host, port), timeout=timeout))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def server_closed(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (EOF or reset); never blocks."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)  # a timeout would make Python wait for data despite MSG_DONTWAIT
    try:
        while sock.recv(4096):
            pass  # e.g. "Error: server busy." before the close
        return True
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)


class SlowLoris:
    """``count`` connections that send one byte now and then and never finish a question."""

    def __init__(self, host: str, port: int, count: int, timeout: float = 10.0) -> None:
        self.sockets: list[socket.socket] = []
        self.closed_by_server = 0
        self._next = 0
        try:
            for _ in range(count):
                self.sockets.append(open_connection(host, port, timeout))
        except BaseException:
            self.close()
            raise

    def drip(self, how_many: int | None = None) -> None:
        """Send one byte on the next ``how_many`` open connections (all by default)."""
        if not self.sockets:
            return
        how_many = len(self.sockets) if how_many is None else min(how_many, len(self.sockets))
        for _ in range(how_many):
            self._next %= len(self.sockets)
            sock = self.sockets[self._next]
            try:
                sock.send(DRIP_BYTE, socket.MSG_DONTWAIT)
                self._next += 1
            except (BlockingIOError, InterruptedError):
                self._next += 1
            except OSError:
                self._drop(self._next)

    def reap(self, wait: float = 0.0) -> int:
        """Forget connections the server has closed, waiting up to ``wait`` s for one."""
        poller = select.poll()
        by_fd = {sock.fileno(): sock for sock in self.sockets}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        gone = {fd for fd, mask in poller.poll(wait * 1000)
                if mask & _CLOSED_EVENTS and server_closed(by_fd[fd])}
        if gone:
            for sock in [by_fd[fd] for fd in gone]:
                self._drop(self.sockets.index(sock))
        return len(gone)

    def wait_all_closed(self, timeout: float) -> int:
        """Wait until the server has closed every connection; return how many are still open."""
        deadline = time.monotonic() + timeout
        while self.sockets and (remaining := deadline - time.monotonic()) > 0:
            self.reap(min(remaining, 0.1))
        return len(self.sockets)

    def _drop(self, index: int) -> None:
        self.sockets.pop(index).close()
        self.closed_by_server += 1

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


class Flood:
    """One connection that pipelines ``count`` questions without reading, then reads.

    ``start`` sends from a thread (the server's backpressure blocks it);
    ``read_answers`` reads every answer and says whether each one matched, in order.
    """

    def __init__(self, host: str, port: int, questions: Sequence[bytes], count: int,
                 timeout: float = 30.0) -> None:
        self.sock = open_connection(host, port, timeout)
        self._questions = questions
        self.count = count
        self.send_error: OSError | None = None
        self._sender = threading.Thread(target=self._send_all, name="flood-sender", daemon=True)

    def expected(self, index: int) -> bytes:
        """The question sent in position ``index``."""
        return self._questions[index % len(self._questions)]

    def start(self) -> None:
        self._sender.start()

    def _send_all(self) -> None:
        repeats = max(1, 1000 // len(self._questions))
        block = b"".join(self._questions) * repeats
        per_block = len(self._questions) * repeats
        try:
            whole, rest = divmod(self.count, per_block)
            for _ in range(whole):
                self.sock.sendall(block)
            self.sock.sendall(b"".join(self.expected(i) for i in range(rest)))
        except OSError as error:
            self.send_error = error

    def read_answers(self, answer_for: dict[bytes, bytes]) -> tuple[int, int]:
        """Read ``count`` answers; return (answers received, the first mismatch index or -1)."""
        framer = answer_framer()
        received, first_wrong = 0, -1
        while received < self.count:
            data = self.sock.recv(1 << 20)
            if not data:
                break
            for answer in framer.feed(data):
                if first_wrong < 0 and answer != answer_for[self.expected(received)]:
                    first_wrong = received
                received += 1
        return received, first_wrong

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a sender blocked in sendall
        if self._sender.ident is not None:
            self._sender.join(timeout=10.0)
        self.sock.close()
