"""What an event loop does with one connection's bytes: read, answer, write, back off, close.

Shared by `poll` and `epoll` through ``eventloop.EventLoopServer``. Listing
7-6 kept this state in four dicts keyed by socket; here it is one
``Connection`` object, and these handlers are its state machine:

- Reading is one recv; every question it completes is answered in one send
  (the Conversation frames; nothing here looks for ``?``).
- What the socket cannot take waits in ``connection.outgoing`` and the
  connection is watched for writable. Past ``BACKPRESSURE_BYTES`` unsent, it
  is no longer watched for readable: a client that pipelines without reading
  stops being read, and gets every answer in order once it reads.
- EOF (or a hang-up, read until EOF) ends reading, not the connection: what
  the client asked is still answered and what it is owed still delivered.
- After a closing reply (too long, or busy) the connection lingers: its write
  side is shut and what the client still sends is dropped, up to the bounds
  of ``linger``, so that closing never resets the reply away.
- A connection is forgotten and unregistered *before* its socket is closed,
  so a new connection that reuses the descriptor is never mistaken for it.
"""

from __future__ import annotations

import abc
import logging
import socket
import time
from typing import Protocol

from zenserve.accept_share import AcceptTurns
from zenserve.net import describe_address
from zenserve.servers import base
from zenserve.servers.deadlines import AnswersDue, Deadlines
from zenserve.servers.eventloop_connection import Connection, refuse_busy
from zenserve.servers.linger import (
    LINGER_BYTES,
    LINGER_SECONDS,
    drop_input,
    refused_held_at_most,
    shut_write_side,
)

log = logging.getLogger("zenserve.server")

READ = 1  # the values of selectors.EVENT_READ and EVENT_WRITE
WRITE = 2
# A connection's reads once one of FIRST_READ_BYTES came back full (first_read).
# Small enough that one recv's answers stay bounded (a 1-byte "?" earns a
# 24-byte error, so 16 KiB in is at most ~400 KiB out); big enough that a
# pipelining client's questions arrive hundreds per recv.
RECV_BYTES = 16384
# Stop reading from a client whose unsent answers exceed this.
BACKPRESSURE_BYTES = 64 * 1024
# With --cost-kind io, stop reading from a client with this many questions waiting.
MAX_DEFERRED_QUESTIONS = 4096


class HasFileno(Protocol):
    def fileno(self) -> int: ...


class ConnectionIO(base.Server):
    """The per-connection handlers; subclasses add the loop and the readiness API."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._connections: dict[int, Connection] = {}  # by fd: dispatch, sweeps, closing all
        self._refused_lingering = 0  # refused clients among them, not counted as active
        self._deadlines: Deadlines[Connection] = Deadlines()
        self._answers_due: AnswersDue[Connection] = AnswersDue(context.service.io_delay)
        self._io_delay = context.service.io_delay
        self._idle_timeout = context.limits.idle_timeout
        self._request_timeout = context.limits.request_timeout
        self.now = time.monotonic()  # set by the loop after each wait
        self._accept_turns: AcceptTurns | None = None  # the loop's, under --workers

    @abc.abstractmethod
    def _register(self, fileobj: HasFileno, interest: int, connection: Connection | None) -> None:
        """Start watching ``fileobj`` for ``interest`` (READ and/or WRITE)."""

    @abc.abstractmethod
    def _modify(self, fileobj: HasFileno, interest: int, connection: Connection) -> None:
        """Change what a watched connection is watched for."""

    @abc.abstractmethod
    def _unregister(self, fileobj: HasFileno) -> None:
        """Stop watching ``fileobj`` (before it is closed)."""

    def _on_readable(self, connection: Connection) -> None:
        """Read once; answer every question it completes, in one send (the hot path)."""
        sock, read_size = connection.sock, connection.read_size
        try:
            data = sock.recv(read_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._drop(connection, error)
            return
        if not data:
            self._on_end_of_stream(connection)
            return
        if len(data) == read_size:  # the client sends in bulk: read in big chunks
            connection.read_size = RECV_BYTES
        if connection.linger_budget:  # its closing reply is sent: drop what it still sends
            self._keep_dropping(connection, len(data))
            return
        conversation = connection.conversation
        if self._io_delay:
            if not self._defer(connection, data):
                return
        else:
            if (conversation.mid_request or conversation.closing
                    or (reply := connection.known(data)) is None):
                reply = conversation.receive(data)
            else:  # one whole known question: counted as receive would, without its call
                stats = connection.stats
                stats.answered += 1
                stats.bytes_in += len(data)
                stats.bytes_out += len(reply)
            if reply:
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
            self._refresh(connection)  # all sent, or back under the bound: read again

    def _deliver(self, connection: Connection, reply: bytes) -> bool:
        """Send ``reply`` now, or keep what the socket cannot take. False: dropped."""
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

    # --cost-kind io: answers are scheduled, not slept for.

    def _defer(self, connection: Connection, data: bytes) -> bool:
        """Frame now, answer after the io delay, in order. False: dropped."""
        conversation = connection.conversation
        questions = conversation.frame(data)
        if questions or connection.deferred_batches:  # an empty batch keeps an error in order
            self._answers_due.schedule(self.now, connection, questions)
            connection.deferred_batches += 1
            connection.deferred_questions += len(questions)
            if connection.deferred_questions > MAX_DEFERRED_QUESTIONS:
                self._refresh(connection)
            return True
        reply = conversation.answer_all(questions)  # nothing to wait for but an error
        return not reply or self._deliver(connection, reply)

    def _answer_due(self, now: float) -> None:
        for connection, questions in self._answers_due.pop_due(now):
            if not connection.open:
                continue
            connection.deferred_batches -= 1
            connection.deferred_questions -= len(questions)
            connection.deadline = max(connection.deadline, now + self._idle_timeout)
            reply = connection.conversation.answer_all(questions)
            if not reply or self._deliver(connection, reply):
                self._refresh(connection)

    # State changes, off the hot path.

    def _refresh(self, connection: Connection) -> None:
        """Close a connection that is done, else watch it for what its state needs."""
        if not connection.open:
            return
        outgoing = connection.outgoing
        if connection.eof or connection.conversation.closing:
            if not outgoing and not connection.deferred_batches:
                if connection.eof:
                    self._close(connection)
                else:
                    self._linger(connection)
                return
            interest = WRITE if outgoing else 0
        else:
            keeps_up = (len(outgoing) <= BACKPRESSURE_BYTES
                        and connection.deferred_questions <= MAX_DEFERRED_QUESTIONS)
            interest = (READ if keeps_up else 0) | (WRITE if outgoing else 0)
        self._set_interest(connection, interest)

    def _set_interest(self, connection: Connection, interest: int) -> None:
        """Tell the readiness API only when what the connection waits for changes."""
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

    # Lingering: after a closing reply, no reset that could destroy it (see ``linger``).

    def _linger(self, connection: Connection) -> None:
        """The closing reply is sent: FIN now, then drop what the client still sends, bounded."""
        if connection.linger_budget:
            return
        if not shut_write_side(connection.sock):
            self._close(connection)
            return
        connection.linger_budget = LINGER_BYTES
        connection.request_started = 0.0
        connection.deadline = self.now + LINGER_SECONDS
        self._deadlines.arm(connection)
        self._set_interest(connection, READ)

    def _keep_dropping(self, connection: Connection, dropped: int) -> None:
        budget = connection.linger_budget - dropped
        if budget > 0:
            budget = drop_input(connection.sock, budget)
        if budget > 0:
            connection.linger_budget = budget
        else:  # its end of stream, or past the bound
            self._close(connection)

    def _refuse(self, sock: socket.socket, address: object, serial: int) -> None:
        """Past --max-connections: say so; linger on it in the loop if the client may still send.

        A refused client lingering is held like a connection (it has a
        descriptor) but never takes a served client's place; a flood of them
        is bounded by ``linger.refused_held_at_most``.
        """
        context = self.context
        if not refuse_busy(sock, address, context.stats):
            return
        if self._refused_lingering >= refused_held_at_most(context.limits.max_connections):
            sock.close()
            return
        connection = Connection(sock, context.conversation(describe_address(address)), serial,
                                self.now + LINGER_SECONDS)
        connection.linger_budget = LINGER_BYTES
        connection.refused = True
        self._connections[connection.fd] = connection
        self._refused_lingering += 1
        self._set_interest(connection, READ)
        self._deadlines.add(connection)

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
        if connection.refused:
            self._refused_lingering -= 1
            return
        self.context.stats.connections_active -= 1
        if self._accept_turns is not None:  # under --workers: peers see one fewer held
            self._accept_turns.held_changed()
