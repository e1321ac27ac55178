"""Serving one connection from one thread, shared by every blocking architecture.

A request costs what it costs in listing 7-1: one ``recv()`` and one
``send()``, and nothing else. The limits come from the kernel instead of a
``poll()`` before every read: ``SO_RCVTIMEO`` bounds a silent client (changed
only while a question arrives in pieces, for the request timeout) and
``SO_SNDTIMEO`` a client that never reads. A stop reaches a thread blocked in
``recv()`` through ``shutdown()``: ``SHUT_RD`` (graceful) lets it read what
the client already sent, answer it, and then see the end of input at a request
boundary; ``SHUT_RDWR`` (at once) ends the conversation.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Protocol

from zenserve.conversation import Conversation
from zenserve.net import describe_address
from zenserve.servers.accepting import accept_or_wait
from zenserve.servers.base import ServeContext, Waker
from zenserve.servers.first_read import FIRST_READ_BYTES
from zenserve.servers.linger import linger
from zenserve.signals import start_leaving_signals_to_main

# accept_or_wait lives in accepting; it is still offered here, beside converse.
__all__ = ["ConversationStop", "StopSignal", "accept_or_wait", "converse",
           "make_blocking_with_timeouts", "set_receive_timeout", "shutdown_quietly"]

log = logging.getLogger("zenserve.server")

RECV_BYTES = 65536
# After shutdown(SHUT_RD) recv() no longer blocks, so the rest of a question
# that was arriving when a graceful stop began is awaited in steps this long.
STOP_STEP_SECONDS = 0.01
# How long conversations told to stop at once may take to notice.
FORCED_STOP_SECONDS = 2.0
_TCP_ESTABLISHED = 1  # tcpi_state in <netinet/tcp.h>


class StopSignal(Protocol):
    """What a conversation needs of the server's stop: flags to read, and a way in and out.

    ``enter`` registers the socket so that a stop reaches it (by shutting it
    down: ``SHUT_RD`` graceful, ``SHUT_RDWR`` at once), ``leave`` forgets it.
    ``ConversationStop`` serves threads; a forked child has a lighter one
    (``child_process.AlarmStop``) that needs no thread of its own.
    """

    woken: bool
    graceful: bool

    def enter(self, sock: socket.socket) -> None: ...

    def leave(self, sock: socket.socket) -> None: ...


class ConversationStop(Waker):
    """The server's stop signal, which also reaches conversations blocked in ``recv()``.

    ``wake()`` may be called from a signal handler: it takes no lock and
    starts nothing, only shuts down the sockets of the conversations open at
    that moment. A conversation registers before it reads and checks
    ``woken`` after, so none is missed. A graceful stop turns into a stop at
    once after ``graceful_timeout``, even for a conversation blocked sending
    to a client that does not read: a watchdog thread, started with the first
    conversation, waits on the waker and enforces it.
    """

    def __init__(self, graceful_timeout: float) -> None:
        super().__init__()
        self.graceful_timeout = graceful_timeout
        self._open: set[socket.socket] = set()
        self._all_closed = threading.Condition()
        self._closed = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._watchdog_lock = threading.Lock()  # never taken in a signal handler

    def wake(self, graceful: bool = True) -> None:
        super().wake(graceful)
        how = socket.SHUT_RD if self.graceful else socket.SHUT_RDWR
        for sock in list(self._open):
            shutdown_quietly(sock, how)

    def close(self) -> None:
        self._closed.set()
        self.wake(self.graceful)  # lets the watchdog see that it is over
        super().close()

    def enter(self, sock: socket.socket) -> None:
        """Register a conversation's socket so that a stop reaches it."""
        if self._watchdog is None:
            self.start()
        self._open.add(sock)
        if self.woken:
            shutdown_quietly(sock, socket.SHUT_RD if self.graceful else socket.SHUT_RDWR)

    def start(self) -> None:
        """Start the graceful-timeout watchdog thread (once; never from a signal handler).

        Servers call this when they start serving, so a process's thread count
        does not change with its first client; ``enter`` starts it otherwise.
        """
        with self._watchdog_lock:
            if self._watchdog is None:
                self._watchdog = threading.Thread(target=self._enforce_graceful_timeout,
                                                  daemon=True, name="zenserve-graceful-timeout")
                start_leaving_signals_to_main(self._watchdog)

    def _enforce_graceful_timeout(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # closed meanwhile: nothing to enforce
            select.select([self], [], [])
        if not self.graceful or self._closed.wait(self.graceful_timeout):
            return
        if self._open:
            log.warning("Closing %d connections still open after the graceful timeout",
                        len(self._open))
        self.wake(graceful=False)

    def leave(self, sock: socket.socket) -> None:
        self._open.discard(sock)
        if not self._open:
            with self._all_closed:
                self._all_closed.notify_all()

    def wait_until_closed(self) -> bool:
        """After a stop, wait for every conversation to end; False if some never did."""
        timeout = FORCED_STOP_SECONDS + (self.graceful_timeout if self.graceful else 0.0)
        deadline = time.monotonic() + timeout
        with self._all_closed:
            while self._open:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._all_closed.wait(remaining)
        return True


def converse(sock: socket.socket, address: object, context: ServeContext,
             stop: StopSignal) -> None:
    """Converse with one client until it leaves, a limit closes it, or the server stops.

    Never raises for anything the peer does; always closes ``sock``.
    """
    stats = context.stats
    stats.connections_opened += 1
    stats.connections_active += 1
    peer = describe_address(address)
    stop.enter(sock)
    try:
        _converse(sock, context.conversation(peer), context, stop)
    except OSError as error:
        if stop.graceful:  # a stop at once breaks sends on purpose
            log.info("Client %s error: %s", peer, error)
    finally:
        stop.leave(sock)
        stats.connections_active -= 1
        sock.close()


def _converse(sock: socket.socket, conversation: Conversation, context: ServeContext,
              stop: StopSignal) -> None:
    limits = context.limits
    idle_timeout = limits.idle_timeout
    make_blocking_with_timeouts(sock, idle_timeout)
    ready, stats = conversation.shortcut()
    known_at_boundary = ready.get
    # The lookup in use: known_at_boundary, or _know_nothing in the middle of a question.
    known: Callable[[bytes], bytes | None] = known_at_boundary
    recv, sendall = sock.recv, sock.sendall
    question_deadline = 0.0  # set while a question arrives in pieces
    while True:
        try:
            data = recv(FIRST_READ_BYTES)
        except BlockingIOError:  # SO_RCVTIMEO expired
            log.info("Client %s timed out; closing", conversation.peer)
            return
        answer = known(data)
        if answer is not None:  # the common case: one whole known question
            stats.answered += 1
            stats.bytes_in += len(data)
            stats.bytes_out += len(answer)
            sendall(answer)
            continue
        if not data:
            if stop.woken:
                _stop_at_request_boundary(sock, conversation, limits.graceful_timeout, stop)
            else:
                conversation.end_of_stream()
            return
        reply = conversation.receive(data)
        if len(data) == FIRST_READ_BYTES and not conversation.closing:
            # A full read: the rest of a burst is taken now and answered in the
            # same send, as one big read would have. The conversation has seen
            # the first part, so a socket that watches it knows where it stands.
            more = _rest_of_burst(sock)
            if more:
                reply += conversation.receive(more)
        if reply:
            sendall(reply)
        if conversation.closing:
            linger(sock)  # no reset that could destroy the error
            return
        if conversation.mid_request:  # rare: a question split across reads
            known = _know_nothing
            now = time.monotonic()
            question_deadline = question_deadline or now + limits.request_timeout
            if now >= question_deadline:
                log.info("Client %s timed out; closing", conversation.peer)
                return
            set_receive_timeout(sock, min(idle_timeout, question_deadline - now))
        elif question_deadline:
            known = known_at_boundary
            question_deadline = 0.0
            set_receive_timeout(sock, idle_timeout)


def _know_nothing(data: bytes) -> None:
    """The shortcut's lookup in the middle of a question: every read goes to the framer."""
    return None


def _rest_of_burst(sock: socket.socket) -> bytes:
    """What has already arrived after a read that filled ``FIRST_READ_BYTES`` (b"" if nothing)."""
    try:
        return sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


def _stop_at_request_boundary(sock: socket.socket, conversation: Conversation,
                              graceful_timeout: float, stop: StopSignal) -> None:
    """The end of input after a stop: at a boundary we are done; mid-question, await the rest.

    After ``shutdown(SHUT_RD)`` recv() returns at once whether or not the
    client is done, so the rest of the question is awaited in small steps
    (a rare path: only a stop that lands inside a question takes it).
    """
    deadline = time.monotonic() + graceful_timeout
    while conversation.mid_request and stop.graceful and not conversation.closing:
        if _peer_closed(sock):
            conversation.end_of_stream()
            return
        if time.monotonic() >= deadline:
            log.info("Client %s still mid-question at the graceful timeout", conversation.peer)
            return
        time.sleep(STOP_STEP_SECONDS)
        data = sock.recv(RECV_BYTES)
        if data:
            sock.sendall(conversation.receive(data))
    log.info("Closing %s at a request boundary to stop", conversation.peer)
    shutdown_quietly(sock, socket.SHUT_WR)  # FIN after the answers, before any reset


def _peer_closed(sock: socket.socket) -> bool:
    """True when the client has closed its side (``SHUT_RD`` made recv() unable to tell)."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] != _TCP_ESTABLISHED
    except (OSError, AttributeError):  # not TCP, or no TCP_INFO here
        return False


def make_blocking_with_timeouts(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking, with both directions bounded by the kernel after ``seconds``.

    A Python-level timeout would add a poll() before every recv and send;
    SO_RCVTIMEO and SO_SNDTIMEO cost nothing per call (the call fails with EAGAIN).
    """
    if sock.gettimeout() is not None:
        sock.setblocking(True)
    timeval = _timeval(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)


def set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    micros = int((seconds - whole) * 1e6)
    if not whole and not micros:
        micros = 1  # a zero timeval means "wait forever": never round down to it
    return struct.pack("ll", whole, micros)


def shutdown_quietly(sock: socket.socket, how: int) -> None:
    """``sock.shutdown(how)``, ignoring a socket already closed by its conversation."""
    with contextlib.suppress(OSError):  # already closed by its conversation
        sock.shutdown(how)
