"""The single-threaded event loop behind `poll` and `epoll`, minus the readiness API.

Listing 7-6's idea (one thread, explicit state per socket, reading and
writing only when the kernel says the socket is ready) without its bugs:

- A connection is forgotten and unregistered *before* its socket is closed,
  so a new connection that reuses the file descriptor is never mistaken for it.
- A hang-up or error is read like POLLIN until recv() reports EOF or fails:
  questions that arrive with the hang-up are answered, and answers still owed
  after a half-close are delivered before the socket is closed.
- Framing comes from the Conversation, not from ``endswith(b"?")``.
- Output is bounded: past ``BACKPRESSURE_BYTES`` unsent, the loop stops reading
  from that client until it catches up, so a client that pipelines without
  reading gets every answer in order and never makes the server buffer them all.

Subclasses implement only ``_register``/``_modify``/``_unregister`` and
``_wait``/``_dispatch``, reporting ready sockets to ``_on_readable``,
``_on_writable``, ``_on_listener`` and ``_on_waker``.
Handlers close only the connection they were called for, and timers run
between batches, so an event later in a batch never belongs to a socket that
an earlier handler closed and a new connection then reused.
"""

from __future__ import annotations

import abc
import logging
import math
import socket
import time
from collections import deque
from typing import Generic, Protocol, TypeVar

from zenserve.net import describe_address
from zenserve.servers import base
from zenserve.servers.deadlines import Deadlines
from zenserve.servers.eventloop_connection import Connection, at_rest, refuse_busy

log = logging.getLogger("zenserve.server")

READ = 1  # the values of selectors.EVENT_READ and EVENT_WRITE
WRITE = 2
# Small enough that one recv's answers stay bounded (a 1-byte "?" earns a
# 24-byte error, so 16 KiB in is at most ~400 KiB out); big enough that a
# pipelining client's questions arrive hundreds per recv.
RECV_BYTES = 16384
# Stop reading from a client whose unsent answers exceed this.
BACKPRESSURE_BYTES = 64 * 1024
# With --cost-kind io, stop reading from a client with this many questions waiting.
MAX_DEFERRED_QUESTIONS = 4096
# Out of descriptors, accept() fails at once while the connection stays queued:
# stop watching the listener this long instead of spinning.
ACCEPT_BACKOFF_SECONDS = 0.1
# While stopping, wake this often so a SIGINT after SIGTERM is noticed.
STOP_POLL_SECONDS = 0.1


class HasFileno(Protocol):
    def fileno(self) -> int: ...


Event = TypeVar("Event")


class EventLoopServer(base.Server, Generic[Event]):
    """One thread serving every connection from readiness events."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._waker = base.Waker()
        self._connections: dict[int, Connection] = {}  # by fd, for dispatch and the sweep
        self._deadlines: Deadlines[Connection] = Deadlines()
        # (due, connection, questions): io-cost answers in due order (the delay is fixed).
        self._answers_due: deque[tuple[float, Connection, list[bytes]]] = deque()
        self._io_delay = context.service.io_delay
        self._idle_timeout = context.limits.idle_timeout
        self._request_timeout = context.limits.request_timeout
        self._serial = 0
        self.now = time.monotonic()
        self._stopping = False
        self._stop_deadline = math.inf
        self._accept_resume = 0.0  # nonzero while the listener is not watched
        self._accept_failing = False

    # The readiness API: the only part a subclass supplies.

    @abc.abstractmethod
    def _register(self, fileobj: HasFileno, interest: int, connection: Connection | None) -> None:
        """Start watching ``fileobj`` for ``interest`` (READ and/or WRITE)."""

    @abc.abstractmethod
    def _modify(self, fileobj: HasFileno, interest: int, connection: Connection) -> None:
        """Change what a watched connection is watched for."""

    @abc.abstractmethod
    def _unregister(self, fileobj: HasFileno) -> None:
        """Stop watching ``fileobj`` (before it is closed)."""

    @abc.abstractmethod
    def _wait(self, timeout: float | None) -> list[Event]:
        """Block until something is ready or ``timeout`` seconds pass (None: no limit)."""

    @abc.abstractmethod
    def _dispatch(self, events: list[Event]) -> None:
        """Hand each ready socket of ``events`` to the ``_on_*`` handlers."""

    def _close_poller(self) -> None:
        """Release the readiness object, if it holds a descriptor."""

    # The loop.

    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        self._register(self.listener, READ, None)
        self._register(self._waker, READ, None)
        try:
            self._loop()
        finally:
            for connection in list(self._connections.values()):
                self._close(connection)
            self._close_poller()
            self._waker.close()

    def shutdown(self, graceful: bool = True) -> None:
        self._waker.wake(graceful)

    def _loop(self) -> None:
        wait, dispatch, monotonic = self._wait, self._dispatch, time.monotonic
        next_timer, run_timers = self._next_timer, self._run_timers
        while True:
            nearest = next_timer()
            events = wait(None if nearest == math.inf else max(0.0, nearest - monotonic()))
            self.now = now = monotonic()
            dispatch(events)
            # A deadline moved earlier during dispatch is seen on the next turn.
            if (now >= nearest or self._stopping) and run_timers(now):
                return

    def _next_timer(self) -> float:
        """When the loop must wake up even if no socket is ready."""
        nearest = self._deadlines.nearest()
        answers_due = self._answers_due
        if answers_due and answers_due[0][0] < nearest:
            nearest = answers_due[0][0]
        if self._accept_resume:
            nearest = min(nearest, self._accept_resume)
        if self._stopping:
            nearest = min(nearest, self._stop_deadline, self.now + STOP_POLL_SECONDS)
        return nearest

    def _run_timers(self, now: float) -> bool:
        """Close expired connections, send io answers that are due, housekeep. True: stop."""
        if self._deadlines.nearest() <= now:
            self._expire(now)
        answers_due = self._answers_due
        if answers_due and answers_due[0][0] <= now:
            self._answer_due(now)
        return bool(self._accept_resume or self._stopping) and self._housekeep(now)

    def _housekeep(self, now: float) -> bool:
        """Resume accepting after a back-off; while stopping, close what is done. True: stop."""
        if self._stopping:
            if not self._waker.graceful or now >= self._stop_deadline:
                return True
            for connection in list(self._connections.values()):
                if at_rest(connection):
                    self._close(connection)
            return not self._connections
        if now >= self._accept_resume:
            self._accept_resume = 0.0
            self._register(self.listener, READ, None)
        return False

    # Handlers.

    def _on_waker(self) -> None:
        """Shutdown was asked for: stop accepting; the loop lets conversations finish."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_deadline = self.now + self.context.limits.graceful_timeout
        self._unregister(self._waker)  # it stays readable; SIGINT is seen by polling
        if not self._accept_resume:
            self._unregister(self.listener)
        self._accept_resume = 0.0

    def _on_listener(self) -> None:
        """Accept every pending connection, until the kernel has no more."""
        accept = self.listener.accept
        while True:
            try:
                sock, address = accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                self._back_off_accepting(error)
                return
            self._open(sock, address)

    def _back_off_accepting(self, error: OSError) -> None:
        if not self._accept_failing:
            log.warning("accept() failed (%s); backing off", error.strerror)
            self._accept_failing = True
        self._unregister(self.listener)
        self._accept_resume = self.now + ACCEPT_BACKOFF_SECONDS

    def _open(self, sock: socket.socket, address: object) -> None:
        self._accept_failing = False
        context = self.context
        if not context.admit(sock, address):
            return
        limit = context.limits.max_connections
        if limit and len(self._connections) >= limit:
            refuse_busy(sock, address, context.stats)
            return
        sock.setblocking(False)
        if sock.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._serial += 1
        connection = Connection(sock, context.conversation(describe_address(address)),
                                self._serial, self.now + self._idle_timeout)
        self._connections[connection.fd] = connection
        context.stats.connections_opened += 1
        context.stats.connections_active += 1
        self._set_interest(connection, READ)
        self._deadlines.add(connection)

    def _on_readable(self, connection: Connection) -> None:
        """Read once; answer every question it completes, in one send (the hot path)."""
        sock = connection.sock
        try:
            data = sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._drop(connection, error)
            return
        if not data:
            self._on_end_of_stream(connection)
            return
        conversation = connection.conversation
        if self._io_delay:
            self._defer(connection, data)
        elif reply := conversation.receive(data):
            if connection.outgoing:
                if not self._deliver(connection, reply):
                    return
            else:
                try:
                    sent = sock.send(reply)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as error:
                    self._drop(connection, error)
                    return
                if sent != len(reply):
                    self._keep_unsent(connection, reply, sent)
        if conversation.closing:
            self._refresh(connection)
        elif conversation.mid_request:
            self._in_mid_request(connection)
        else:
            connection.request_started = 0.0
            connection.deadline = self.now + self._idle_timeout

    def _in_mid_request(self, connection: Connection) -> None:
        """Part of a question is in: the request timeout runs from its first byte."""
        now = self.now
        if connection.request_started:
            connection.deadline = min(now + self._idle_timeout,
                                      connection.request_started + self._request_timeout)
        else:
            connection.request_started = now
            connection.deadline = now + min(self._idle_timeout, self._request_timeout)
            self._deadlines.arm(connection)

    def _on_end_of_stream(self, connection: Connection) -> None:
        """The client half-closed: answer what it asked, deliver what is owed, then close."""
        connection.eof = True
        connection.conversation.end_of_stream()
        self._refresh(connection)

    def _on_writable(self, connection: Connection) -> None:
        outgoing = connection.outgoing
        try:
            sent = connection.sock.send(outgoing)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._drop(connection, error)
            return
        del outgoing[:sent]
        connection.deadline = self.now + self._idle_timeout  # the client is reading
        if not outgoing or len(outgoing) <= BACKPRESSURE_BYTES < len(outgoing) + sent:
            self._refresh(connection)

    def _deliver(self, connection: Connection, reply: bytes) -> bool:
        """Send ``reply`` now, or queue what the socket cannot take. False: dropped."""
        outgoing = connection.outgoing
        if outgoing:
            outgoing += reply  # already waiting to be writable; keep the order
            if len(outgoing) > BACKPRESSURE_BYTES:
                self._refresh(connection)
            return True
        try:
            sent = connection.sock.send(reply)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as error:
            self._drop(connection, error)
            return False
        if sent != len(reply):
            self._keep_unsent(connection, reply, sent)
        return True

    def _keep_unsent(self, connection: Connection, reply: bytes, sent: int) -> None:
        connection.outgoing += memoryview(reply)[sent:]
        self._refresh(connection)  # watch for writable; past the bound, stop reading

    # io cost: answers are scheduled, not slept for.

    def _defer(self, connection: Connection, data: bytes) -> None:
        conversation = connection.conversation
        questions = conversation.frame(data)
        if questions or connection.deferred_batches:  # an empty batch keeps an error in order
            self._answers_due.append((self.now + self._io_delay, connection, questions))
            connection.deferred_batches += 1
            connection.deferred_questions += len(questions)
            if connection.deferred_questions > MAX_DEFERRED_QUESTIONS:
                self._refresh(connection)
        else:
            reply = conversation.answer_all(questions)  # only ever the too-long error
            if reply:
                self._deliver(connection, reply)

    def _answer_due(self, now: float) -> None:
        answers_due = self._answers_due
        while answers_due and answers_due[0][0] <= now:
            _, connection, questions = answers_due.popleft()
            if not connection.open:
                continue
            connection.deferred_batches -= 1
            connection.deferred_questions -= len(questions)
            connection.deadline = max(connection.deadline, now + self._idle_timeout)
            reply = connection.conversation.answer_all(questions)
            if not reply or self._deliver(connection, reply):
                self._refresh(connection)

    # State changes off the hot path.

    def _refresh(self, connection: Connection) -> None:
        """Close a connection that is done, else watch it for what its state needs."""
        outgoing = connection.outgoing
        if connection.eof or connection.conversation.closing:
            if not outgoing and not connection.deferred_batches:
                self._close(connection)
                return
            interest = WRITE if outgoing else 0
        else:
            keeps_up = (len(outgoing) <= BACKPRESSURE_BYTES
                        and connection.deferred_questions <= MAX_DEFERRED_QUESTIONS)
            interest = (READ if keeps_up else 0) | (WRITE if outgoing else 0)
        self._set_interest(connection, interest)

    def _set_interest(self, connection: Connection, interest: int) -> None:
        current = connection.interest
        if interest == current:
            return
        if not current:
            self._register(connection.sock, interest, connection)
        elif not interest:
            self._unregister(connection.sock)
        else:
            self._modify(connection.sock, interest, connection)
        connection.interest = interest

    def _expire(self, now: float) -> None:
        for connection in self._deadlines.expired(now):
            if connection.deferred_batches:  # answers on their way: not idle
                connection.deadline = now + self._idle_timeout
                self._deadlines.arm(connection)
                continue
            started = connection.request_started
            if started and started + self._request_timeout <= now:
                log.info("Client %s did not finish its question in time; closing",
                         connection.conversation.peer)
            else:
                log.info("Client %s timed out; closing", connection.conversation.peer)
            self._close(connection)

    def _drop(self, connection: Connection, error: OSError) -> None:
        log.info("Client %s error: %s", connection.conversation.peer, error)
        self._close(connection)

    def _close(self, connection: Connection) -> None:
        """Forget and unregister first, then close: the fd may be reused at once."""
        if not connection.open:
            return
        connection.open = False
        self._set_interest(connection, 0)
        del self._connections[connection.fd]
        self._deadlines.discard(connection)
        connection.sock.close()
        connection.outgoing.clear()
        self.context.stats.connections_active -= 1
