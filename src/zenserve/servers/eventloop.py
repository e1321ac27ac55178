"""The single-threaded event loop behind `poll` and `epoll`, minus the readiness API.

Listing 7-6's idea, one thread waiting for readiness on every socket, with
the loop's own chores around it: accepting every pending connection at once
(backing off when out of descriptors), the nearest deadline as the wait's
timeout, timers run between batches, and a graceful stop. What happens to a
connection's bytes is in ``eventloop_io``. Under ``--workers`` the loop shares
new connections with its peers (``zenserve.accept_share``): it watches its
share's eventfd, and stops watching the listener while a peer holds fewer.

A subclass supplies ``_register``/``_modify``/``_unregister`` and ``_loop``:
wait for readiness, hand ready sockets to ``_on_readable``, ``_on_writable``
and ``_on_own_socket``, then ``_run_timers`` when due. Handlers close only the
connection they were called for and timers run between batches, so an event
later in a batch never belongs to a socket that an earlier handler closed and
a new connection then reused.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import math
import socket
from collections.abc import Callable

from zenserve.accept_share import AcceptTurns
from zenserve.net import describe_address
from zenserve.servers import base
from zenserve.servers.eventloop_connection import Connection, at_rest
from zenserve.servers.eventloop_io import READ, ConnectionIO

log = logging.getLogger("zenserve.server")

# Out of descriptors, accept() fails at once while the connection stays queued:
# stop watching the listener this long instead of spinning.
ACCEPT_BACKOFF_SECONDS = 0.1
# While stopping, wake this often so a SIGINT after SIGTERM is noticed.
STOP_POLL_SECONDS = 0.1

class EventLoopServer(ConnectionIO):
    """One thread serving every connection from readiness events."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._waker = base.Waker()
        self._listener_fd = listener.fileno()
        self._waker_fd = self._waker.fileno()
        self._serial = 0
        self._stopping = False
        self._stop_deadline = math.inf
        self._listening = False  # the listener is registered with the poller
        self._backing_off = False
        self._accept_failing = False
        # Nonzero while backing off or paused: when to run _on_listener_due.
        self._listener_due = 0.0
        self._on_listener_due: Callable[[], None] = self._end_back_off
        share = context.accept_share  # under --workers: who takes the next connection
        if share is not None:
            self._accept_turns = AcceptTurns(share, self)
            self._turn_fd = share.fileno()
            # Peers leave connections to this worker from now on (it says it is ready
            # next); until its loop runs, the pause bounds how long they wait.
            self._accept_turns.watching()

    @abc.abstractmethod
    def _loop(self) -> None:
        """Wait, dispatch, run timers, until ``_run_timers`` says stop.

        Each turn: wait no later than the nearest deadline (``_deadlines.heap``;
        ``_nearest_chore`` when an io delay, the listener's timer or a stop is
        pending), set ``now`` to the clock after the wait, hand each ready
        socket to its handler, then call ``_run_timers(now)`` if a deadline
        passed or the loop is stopping.
        """

    def _close_poller(self) -> None:
        """Release the readiness object, if it holds a descriptor."""

    def _on_own_socket(self, fd: int) -> None:
        """The listener or the waker is ready."""
        if fd == self._listener_fd:
            if not self._stopping:  # the waker may have come first in this batch
                self._on_listener()
        elif fd == self._waker_fd:
            self._on_waker()
        elif self._accept_turns is not None and fd == self._turn_fd:
            self._accept_turns.on_turn()

    def _on_failure(self, connection: Connection, error: Exception) -> None:
        log.error("Client %s: unexpected error; closing it", connection.conversation.peer,
                  exc_info=error)
        with contextlib.suppress(Exception):
            self._close(connection)

    def open_connections(self) -> list[Connection]:
        """The connections being served (a snapshot, for tests and debugging)."""
        return list(self._connections.values())

    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        # The listener first: in a batch where both are ready, clients that connected
        # before a stop was asked are accepted (and served) before the waker is seen.
        self._start_accepting()
        self._register(self._waker, READ, None)
        if self._accept_turns is not None:
            self._register(self._accept_turns.share, READ, None)
        try:
            self._loop()
        finally:
            if self._accept_turns is not None:
                self._accept_turns.withdraw()
            for connection in self.open_connections():
                self._close(connection)
            self._close_poller()
            self._waker.close()

    def shutdown(self, graceful: bool = True) -> None:
        self._waker.wake(graceful)

    def _nearest_chore(self, nearest: float) -> float:
        """The wake-up time, counting io answers due, the listener's timer and stopping."""
        if self._io_delay:
            nearest = min(nearest, self._answers_due.nearest())
        if self._listener_due:
            nearest = min(nearest, self._listener_due)
        if self._stopping:
            nearest = min(nearest, self._stop_deadline, self.now + STOP_POLL_SECONDS)
        return nearest

    def _run_timers(self, now: float) -> bool:
        """Close expired connections, send io answers that are due, housekeep. True: stop."""
        if self._deadlines.nearest() <= now:
            self._expire(now)
        if self._answers_due.nearest() <= now:
            self._answer_due(now)
        if self._stopping:
            return self._stop_step(now)
        if self._listener_due and now >= self._listener_due:
            self._listener_due = 0.0
            self._on_listener_due()
        return False

    def _expire(self, now: float) -> None:
        for connection in self._deadlines.expired(now):
            if connection.deferred_batches:  # answers on their way: not idle
                connection.deadline = now + self._idle_timeout
                self._deadlines.arm(connection)
                continue
            if connection.linger_budget:  # lingered long enough after its closing reply
                self._close(connection)
                continue
            started = connection.request_started
            if started and started + self._request_timeout <= now:
                log.info("Client %s did not finish its question in time; closing",
                         connection.conversation.peer)
            else:
                log.info("Client %s timed out; closing", connection.conversation.peer)
            self._close(connection)

    # Stopping.

    def _on_waker(self) -> None:
        """Shutdown was asked for: stop accepting; the loop lets conversations finish."""
        if self._stopping:
            return
        self._stopping = True
        self._stop_deadline = self.now + self.context.limits.graceful_timeout
        self._unregister(self._waker)  # it stays readable: a later SIGINT is seen by polling
        self.unwatch_listener()
        self._listener_due = 0.0
        if self._accept_turns is not None:
            self._accept_turns.withdraw()

    def _stop_step(self, now: float) -> bool:
        """Close every connection at a request boundary. True: nothing left, or time is up."""
        if not self._waker.graceful or now >= self._stop_deadline:
            return True
        for connection in self.open_connections():
            if at_rest(connection):
                self._close(connection)
        return not self._connections

    # Accepting.

    def _start_accepting(self) -> None:
        if self.may_watch_listener():
            self.watch_listener()
            if self._accept_turns is not None:
                self._accept_turns.watching()

    def _on_listener(self) -> None:
        """Accept every pending connection, until the kernel has no more (or a peer's turn)."""
        accept, turns = self.listener.accept, self._accept_turns
        while True:
            if turns is not None and not turns.may_accept():
                return
            try:
                sock, address = accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as error:
                self._back_off_accepting(error)
                return
            try:
                self._open(sock, address)
            except OSError as error:  # reset before we could set it up
                log.info("Client %s error: %s", describe_address(address), error)
                sock.close()

    def _back_off_accepting(self, error: OSError) -> None:
        if not self._accept_failing:
            log.warning("accept() failed (%s); backing off", error.strerror)
            self._accept_failing = True
        self.unwatch_listener()
        if self._accept_turns is not None:
            self._accept_turns.withdraw()
        self._backing_off = True
        self._listener_due = self.now + ACCEPT_BACKOFF_SECONDS
        self._on_listener_due = self._end_back_off

    def _end_back_off(self) -> None:
        self._backing_off = False
        self._start_accepting()

    # The ListenerSwitch that AcceptTurns drives under --workers.

    def connections_held(self) -> int:
        return self.context.stats.connections_active

    def may_watch_listener(self) -> bool:
        return not self._stopping and not self._backing_off

    def watch_listener(self) -> None:
        if not self._listening:
            self._register(self.listener, READ, None)
            self._listening = True

    def unwatch_listener(self) -> None:
        if self._listening:
            self._unregister(self.listener)
            self._listening = False

    def start_pause_timer(self, seconds: float, expired: Callable[[], None]) -> None:
        self._listener_due, self._on_listener_due = self.now + seconds, expired

    def cancel_pause_timer(self) -> None:
        if not self._backing_off:  # the listener's one timer is the back-off's now
            self._listener_due = 0.0

    def accept_queued(self) -> None:
        self._on_listener()

    def _open(self, sock: socket.socket, address: object) -> None:
        self._accept_failing = False
        context = self.context
        if not context.admit(sock, address):
            return
        limit = context.limits.max_connections
        if limit and context.stats.connections_active >= limit:
            self._serial += 1
            self._refuse(sock, address, self._serial)
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
        if self._accept_turns is not None:
            self._accept_turns.held_changed()
        self._set_interest(connection, READ)
        self._deadlines.add(connection)
