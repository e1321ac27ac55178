"""Serving one connection from one thread, shared by every blocking architecture.

The thread waits in ``poll`` on the client socket and the server's ``Waker``,
so a shutdown, an idle client or a stalled half question never pins it.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
import time

from zenserve.net import describe_address
from zenserve.servers.base import ServeContext, Waker

log = logging.getLogger("zenserve.server")

RECV_BYTES = 65536
# Out of descriptors or memory, accept() fails at once while the connection
# stays queued; wait this long before trying again instead of spinning.
ACCEPT_BACKOFF_SECONDS = 0.1
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


def converse(sock: socket.socket, address: object, context: ServeContext, stop: Waker) -> None:
    """Converse with one client until it leaves, a limit closes it, or the server stops.

    Never raises for anything the peer does; always closes ``sock``.
    """
    stats = context.stats
    stats.connections_opened += 1
    stats.connections_active += 1
    peer = describe_address(address)
    try:
        _converse(sock, peer, context, stop)
    except OSError as error:
        log.info("Client %s error: %s", peer, error)
    finally:
        stats.connections_active -= 1
        sock.close()


def _converse(sock: socket.socket, peer: str, context: ServeContext, stop: Waker) -> None:
    limits = context.limits
    conversation = context.conversation(peer)
    bound_blocking_sends(sock, limits.idle_timeout)
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    poller.register(stop, select.POLLIN)
    request_started = 0.0
    stop_deadline = 0.0
    while True:
        now = time.monotonic()
        if stop.woken:
            if not stop.graceful or not (conversation.mid_request or _more_waiting(sock)):
                return  # at once, or gracefully at a request boundary
            if not stop_deadline:
                stop_deadline = now + limits.graceful_timeout
                poller.unregister(stop)
        deadline = _next_deadline(now, limits.idle_timeout, request_started,
                                  limits.request_timeout, stop_deadline)
        events = poller.poll(max(0.0, deadline - now) * 1000)
        if not any(fd == sock.fileno() and mask & _READABLE for fd, mask in events):
            if events:
                continue  # only the waker: re-plan with the stop deadline
            log.info("Client %s timed out; closing", peer)
            return
        data = sock.recv(RECV_BYTES)
        if not data:
            conversation.end_of_stream()
            return
        reply = conversation.receive(data)
        if reply:
            sock.sendall(reply)
        if conversation.closing:
            return
        request_started = (request_started or time.monotonic()) if conversation.mid_request else 0.0


def bound_blocking_sends(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking, with sends to a client that never reads bounded by the kernel.

    A Python-level timeout would add a poll() before every recv and send;
    SO_SNDTIMEO bounds sendall() at no cost per call (it raises OSError).
    """
    sock.setblocking(True)
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                    struct.pack("ll", whole, int((seconds - whole) * 1e6)))


def _next_deadline(now: float, idle_timeout: float, request_started: float,
                   request_timeout: float, stop_deadline: float) -> float:
    deadline = now + idle_timeout
    if request_started:
        deadline = min(deadline, request_started + request_timeout)
    if stop_deadline:
        deadline = min(deadline, stop_deadline)
    return deadline


def _more_waiting(sock: socket.socket) -> bool:
    """True when the client has already sent more bytes we have not read."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except (BlockingIOError, InterruptedError):
        return False


def accept_or_wait(listener: socket.socket, stop: Waker) -> tuple[socket.socket, object] | None:
    """Accept the next connection, or return None once the server is stopping."""
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(stop, select.POLLIN)
    while not stop.woken:
        poller.poll()
        if stop.woken:
            break
        try:
            return listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue  # another thread won the race, or the peer gave up
        except OSError as error:
            if error.errno not in _RESOURCE_ERRORS:
                raise
            log.warning("accept() failed (%s); backing off", error.strerror)
            select.select([stop], [], [], ACCEPT_BACKOFF_SECONDS)
    return None
