"""The accepting side of the blocking architectures: accept or wait, limits, signal wake-ups.

Conversations live in ``blocking``; this module is what the thread that
accepts needs: ``accept_or_wait`` (with back-off when out of descriptors),
``--max-connections`` slots and the busy reply, and ``SignalWakeup``, which
makes sure a signal wakes the main thread wherever the kernel delivered it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import select
import signal
import socket
import threading
import time
from types import TracebackType

from zenserve.net import describe_address
from zenserve.protocol import ERROR_BUSY
from zenserve.servers.base import ServeContext, Waker
from zenserve.servers.lingerer import Lingerer

log = logging.getLogger("zenserve.server")

# Out of descriptors or memory, accept() fails at once while the connection
# stays queued; wait this long before trying again instead of spinning.
ACCEPT_BACKOFF_SECONDS = 0.1
# Say so at most this often: ten warnings a second would bury everything else.
RESOURCE_WARNING_INTERVAL = 10.0
_last_resource_warning = -RESOURCE_WARNING_INTERVAL
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# What a refused client may have sent already, read so that closing does not reset.
_DRAIN_BYTES = 65536


class SignalWakeup:
    """A socket that every caught signal makes readable, for the main thread to poll.

    A signal the kernel hands to another thread (the metrics endpoint, a
    conversation) runs its Python handler only once the main thread runs
    Python code again; asleep in poll(), it never would. With
    ``signal.set_wakeup_fd`` the C-level handler, in whatever thread, also
    writes a byte here, which ends the poll. Installed only in the main
    thread (elsewhere it is inert) and undone on exit.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous: int | None = None

    def __enter__(self) -> SignalWakeup:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.set_wakeup_fd(self._writer.fileno(),
                                                  warn_on_full_buffer=False)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._previous is not None:
            signal.set_wakeup_fd(self._previous)
        self._reader.close()
        self._writer.close()

    def fileno(self) -> int:
        return self._reader.fileno()

    def drain(self) -> None:
        """Forget the bytes of signals already seen (their handlers run on their own)."""
        with contextlib.suppress(OSError):
            while self._reader.recv(4096):
                pass


class ConnectionSlots:
    """``--max-connections``: past it a new client gets ``Error: server busy.``.

    Taken by the accepting thread, given back by the conversation's thread.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit) if limit > 0 else None
        # Refused clients still sending linger here, never in the accepting thread.
        self.refused = Lingerer(limit)

    def take(self) -> bool:
        return self._free is None or self._free.acquire(blocking=False)

    def give_back(self) -> None:
        if self._free is not None:
            self._free.release()

    def admit(self, sock: socket.socket, address: object, context: ServeContext) -> bool:
        """``--allow`` and then a free slot; a refused client is answered and closed."""
        if not context.admit(sock, address):
            return False
        if self.take():
            return True
        refuse_busy(sock, address, context, self.refused)
        return False

    def close(self) -> None:
        """At the server's stop: close the refused clients still lingering."""
        self.refused.close()


def refuse_busy(sock: socket.socket, address: object, context: ServeContext,
                lingerer: Lingerer | None = None) -> None:
    """Tell a client past ``--max-connections`` that the server is busy, then FIN.

    The client may still be sending: ``lingerer`` holds the socket until it
    is done, bounded, so that the close sends no reset (see ``lingerer``).
    Without one, or when it is full, what has arrived is read and it closes.
    """
    context.stats.busy += 1
    log.info("Client %s refused: server busy", describe_address(address))
    with contextlib.suppress(OSError):  # never let a refused client block the acceptor
        sock.send(ERROR_BUSY, socket.MSG_DONTWAIT)
        sock.shutdown(socket.SHUT_WR)
        if lingerer is not None and lingerer.hold(sock):
            return
        # Closing with its question unread would send a reset, which can
        # destroy the answer before the client reads it: read what is there.
        sock.recv(_DRAIN_BYTES, socket.MSG_DONTWAIT)
    sock.close()


def accept_or_wait(listener: socket.socket, stop: Waker,
                   wakeup: SignalWakeup | None = None) -> tuple[socket.socket, object] | None:
    """Accept the next connection, or return None once the server is stopping.

    ``listener`` must be non-blocking. Under load a connection is usually
    waiting already, so accept() comes first and poll() only when none is.
    ``wakeup``, in the main thread, lets any signal end the wait.
    """
    while not stop.woken:
        try:
            return listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            pass  # nobody waiting, another thread won the race, or the peer gave up
        except OSError as error:
            if not back_off_if_out_of_resources(error, stop):
                raise
            continue
        wait_for_connection(listener, stop, wakeup)
    return None


def wait_for_connection(listener: socket.socket, stop: Waker,
                        wakeup: SignalWakeup | None = None) -> bool:
    """Wait until a connection is waiting to be accepted (True) or the server stops (False)."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(stop, select.POLLIN)
    if wakeup is not None:
        poller.register(wakeup, select.POLLIN)
    while not stop.woken:
        for fd, _ in poller.poll():
            if fd == listener.fileno():
                return not stop.woken
            if wakeup is not None and fd == wakeup.fileno():
                wakeup.drain()  # the handlers have run, or run as soon as we return
    return False


def wait_for_stop(stop: Waker, wakeup: SignalWakeup | None = None) -> None:
    """Block until ``stop`` is woken (signal handlers still run meanwhile)."""
    poller = select.poll()
    poller.register(stop, select.POLLIN)
    if wakeup is not None:
        poller.register(wakeup, select.POLLIN)
    while not stop.woken:
        poller.poll()
        if wakeup is not None:
            wakeup.drain()  # its signal's handler runs before the loop tests stop again


def back_off_if_out_of_resources(error: OSError, stop: Waker) -> bool:
    """After accept() failed: wait a little if we ran out of fds or memory (True), else False.

    The connection stays queued, so trying again at once would spin.
    """
    global _last_resource_warning
    if error.errno not in _RESOURCE_ERRORS:
        return False
    now = time.monotonic()
    if now - _last_resource_warning >= RESOURCE_WARNING_INTERVAL:
        _last_resource_warning = now
        log.warning("accept() failed (%s); backing off", error.strerror)
    select.select([stop], [], [], ACCEPT_BACKOFF_SECONDS)
    return True
