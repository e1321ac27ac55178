"""Inside a worker: connections arrive from the supervisor and leave at a request boundary.

Any deployable architecture serves a worker unchanged. It is given a
``RoutedListener`` whose ``accept()`` receives the next connection the
supervisor routed here, and each connection is a ``HandoffSocket``: a real
socket that also

- measures each answer's latency (first byte of a question to the last byte
  of its answer) into the worker's histogram;
- once the worker drains, *hands the connection back* to the supervisor
  instead of letting it end, the moment it is at a request boundary (no
  partial question, no answer owed, nothing unsent). The client keeps its
  connection and its next question is answered by the new generation; bytes
  it already sent stay in the kernel for the next owner to read.

A handed-back connection looks to the architecture like a client that closed
normally: ``recv()`` returns ``b""``. The real descriptor stays open until
the architecture closes its socket, so its event loop never watches a
descriptor number that was reused. A ``shutdown()`` the architecture uses to
wake a blocked reader is emulated rather than applied, because it would shut
the connection for its next owner too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
import struct
import time
from collections.abc import Callable

from zenserve.deploy import channel
from zenserve.deploy.histogram import LatencyHistogram
from zenserve.deploy.tracked_conversation import TrackedConversation
from zenserve.net import describe_address
from zenserve.servers.base import Waker

log = logging.getLogger("zenserve.deploy.worker")

# The peer name a health probe connection is accepted under.
PROBE_PEER = "health-probe"
# Looked up once: these run for every request.
_recv, _send, _monotonic = socket.socket.recv, socket.socket.send, time.monotonic
_READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR


class WorkerState:
    """What the listener, every connection and the control thread of one worker share."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.draining = False
        self.drain_waker = Waker()  # readable from the moment draining begins
        self.latency = LatencyHistogram()
        self.handed_off = 0
        self.supervisor_gone = False
        self.on_supervisor_gone: Callable[[], None] = lambda: None  # the worker stops
        # Accepted connections waiting for their Conversation, by peer name.
        self.unlinked: dict[str, HandoffSocket] = {}

    def lose_supervisor(self) -> None:
        """The supervisor is gone (its channel closed): nothing more will come; stop."""
        if not self.supervisor_gone:
            self.supervisor_gone = True
            self.on_supervisor_gone()

    def begin_drain(self) -> None:
        """From now on every connection is handed back at its next request boundary."""
        self.draining = True
        self.drain_waker.wake()

    def link(self, peer: str, conversation: TrackedConversation) -> None:
        sock = self.unlinked.pop(peer, None)
        if sock is not None:
            sock.conversation = conversation


class HandoffSocket(socket.socket):
    """A routed client connection that can be handed back at a request boundary."""

    __slots__ = ("_broken", "_eof", "_handed_off", "_peer", "_poller", "_read_any",
                 "_read_shut", "_receive_timeout", "_sent", "_since", "_state", "conversation")

    def __init__(self, state: WorkerState, fd: int) -> None:
        super().__init__(fileno=fd)
        self._state = state
        self.conversation: TrackedConversation | None = None
        self._peer = ""
        self._sent = 0
        self._since = 0.0  # when the oldest unanswered question's first byte arrived
        self._read_any = False
        self._eof = False
        self._broken = False
        self._handed_off = False
        self._read_shut = False
        self._receive_timeout: float | None = None  # SO_RCVTIMEO as set by the architecture
        self._poller: select.poll | None = None

    def register_peer(self, address: object) -> None:
        self._peer = describe_address(address)
        self._state.unlinked[self._peer] = self

    # Reading.

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        # The common case stays lean: a plain non-blocking read while serving.
        if flags or self._handed_off or self._state.draining or self.gettimeout() != 0.0:
            return self._recv_carefully(bufsize, flags)
        return self._read(bufsize, 0)

    def _recv_carefully(self, bufsize: int, flags: int) -> bytes:
        """Peeks, blocking reads (wakeable by a drain) and reads while draining."""
        if flags & socket.MSG_PEEK:
            return _recv(self, bufsize, flags)
        if self._handed_off:
            return b""
        if self._state.draining and self.at_boundary() and self._hand_off():
            return b""
        if not flags & socket.MSG_DONTWAIT and self.gettimeout() != 0.0:
            if not self._wait_readable():
                return b""  # handed off while waiting, or an emulated shutdown
            flags |= socket.MSG_DONTWAIT
        try:
            return self._read(bufsize, flags)
        except BlockingIOError:
            if self._read_shut:
                return b""  # what the kernel returns after SHUT_RD with nothing queued
            raise

    def _read(self, bufsize: int, flags: int) -> bytes:
        """One read, noted: a question's first byte starts its clock; b"" is the stream's end."""
        try:
            data = _recv(self, bufsize, flags)
        except BlockingIOError:
            raise
        except OSError:
            self._broken = True
            raise
        if data:
            self._read_any = True
            if not self._since:
                self._since = _monotonic()
        else:
            self._eof = True
        return data

    def recv_into(self, buffer: memoryview | bytearray, nbytes: int = 0,  # type: ignore[override]
                  flags: int = 0) -> int:
        data = self.recv(nbytes or len(buffer), flags)
        buffer[:len(data)] = data
        return len(data)

    def _wait_readable(self) -> bool:
        """Block like the kernel would, but wake when draining starts. False: return EOF."""
        timeout = self.gettimeout()
        limit = timeout if timeout is not None else self._receive_timeout
        deadline = time.monotonic() + limit if limit else None
        poller = self._poller
        if poller is None:
            poller = self._poller = select.poll()
            poller.register(self.fileno(), select.POLLIN)
            if not self._state.draining:
                poller.register(self._state.drain_waker.fileno(), select.POLLIN)
        own_fd = self.fileno()
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = poller.poll(None if wait is None else wait * 1000)
            if self._state.draining:
                if self.at_boundary() and self._hand_off():
                    return False
                if self._read_shut:
                    return True  # emulated SHUT_RD: read what is there, or see EOF
                _forget(poller, self._state.drain_waker.fileno())
            if any(fd == own_fd and mask & _READABLE for fd, mask in events):
                return True
            if not events and deadline is not None and time.monotonic() >= deadline:
                if timeout is not None:
                    raise TimeoutError("timed out")
                raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))

    # Writing.

    def send(self, data: bytes | memoryview, flags: int = 0) -> int:  # type: ignore[override]
        if self._handed_off:
            raise BrokenPipeError(errno.EPIPE, "connection handed back to the supervisor")
        try:
            sent = _send(self, data, flags)
        except BlockingIOError:
            raise
        except OSError:
            self._broken = True
            raise
        self._sent += sent
        if self._since:
            self._answered()
        return sent

    def sendall(self, data: bytes | memoryview, flags: int = 0) -> None:  # type: ignore[override]
        if self._handed_off:
            raise BrokenPipeError(errno.EPIPE, "connection handed back to the supervisor")
        try:
            super().sendall(data, flags)
        except OSError:
            self._broken = True
            raise
        self._sent += memoryview(data).nbytes
        if self._since:
            self._answered()

    def _answered(self) -> None:
        """Everything asked so far is answered: one latency sample, from the first byte."""
        conversation = self.conversation
        if (conversation is not None and self._sent >= conversation.replied
                and not conversation.pending):
            self._state.latency.record(_monotonic() - self._since)
            self._since = 0.0

    # Options, shutdown and close.

    def setsockopt(self, level: int, option: int, value: object, *rest: object) -> None:
        if level == socket.SOL_SOCKET and option == socket.SO_RCVTIMEO and isinstance(
                value, bytes):
            seconds, micros = struct.unpack("ll", value)
            self._receive_timeout = seconds + micros / 1e6 or None
        super().setsockopt(level, option, value, *rest)  # type: ignore[call-overload]

    def shutdown(self, how: int) -> None:
        if self._handed_off:
            return
        if self._state.draining:
            if how == socket.SHUT_RD:
                self._read_shut = True  # emulated: the next owner must still read this socket
                return
            if self.at_boundary() and self._hand_off():
                return
        super().shutdown(how)

    def close(self) -> None:
        state = self._state
        if state.unlinked.get(self._peer) is self:
            del state.unlinked[self._peer]
        if not self._handed_off and state.draining and self.fileno() >= 0:
            if self.at_boundary():
                self._hand_off()
            elif not (self._eof or self._broken):
                log.info("Closing %s mid-request while draining (graceful timeout)", self._peer)
        super().close()

    # Hand-off.

    def at_boundary(self) -> bool:
        """True when handing the connection over loses nothing and reorders nothing."""
        if self._eof or self._broken or self._handed_off:
            return False
        conversation = self.conversation
        if conversation is None:
            return not self._read_any and not self._sent  # untouched so far
        return (not conversation.mid_request and not conversation.closing
                and not conversation.pending and self._sent >= conversation.replied)

    def _hand_off(self) -> bool:
        state = self._state
        if state.supervisor_gone:
            return False
        try:
            channel.hand_back(state.control, self.fileno())
        except OSError as error:
            log.warning("could not hand %s back to the supervisor: %s", self._peer, error)
            return False  # the supervisor is gone: end this connection the ordinary way
        self._handed_off = True
        state.handed_off += 1
        return True


def _forget(poller: select.poll, fd: int) -> None:
    with contextlib.suppress(KeyError):  # already forgotten
        poller.unregister(fd)
