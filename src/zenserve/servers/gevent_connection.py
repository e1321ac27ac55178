"""gevent's connection as the sweep and the stop see it, and the greenlets for requests that wait.

``gevent_streams`` answers a ready request in the hub's callback; a request
that must wait (an ``io`` cost, a client not reading its answers) is handed to
a worker greenlet of ``WorkerPool``, whose jobs are blocking-style code. Idle
workers are kept for the next such request instead of a greenlet per client:
a greenlet suspended between requests would cost ~8 KiB per idle connection.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.hub import GreenletExit, RawGreenlet

from zenserve.conversation import Conversation
from zenserve.servers.first_read import FIRST_READ_BYTES
from zenserve.servers.sweep import ConnectionClock, input_waiting

# Idle workers kept for the next requests; more are made when more requests wait at once.
IDLE_WORKERS_KEPT = 32


class GreenConnection(ConnectionClock):
    """One client's socket, conversation and read watcher, as the sweep and shutdown see them."""

    __slots__ = ("closed_by_server", "conversation", "known", "linger_budget", "linger_timer",
                 "paying_cost", "progress", "read_size", "refused", "sock", "stats",
                 "waiting_worker", "watcher")

    def __init__(self, sock: socket.socket, conversation: Conversation, watcher: Any) -> None:
        super().__init__(time.monotonic())
        self.sock = sock  # a plain non-blocking socket
        self.conversation = conversation
        # The answer to a read that is one whole known question, at a request boundary
        # (Conversation.shortcut): the hub answers it without a call into receive,
        # counting it in the conversation's stats (a health probe's are not the server's).
        ready, self.stats = conversation.shortcut()
        self.known = ready.get
        self.watcher = watcher  # the hub's read watcher, started while the connection is idle
        self.read_size = FIRST_READ_BYTES  # what one recv asks for (see there)
        # The worker greenlet suspended on this connection's behalf (an io cost, or
        # answers draining), or None: parked on the watcher, or being served right now.
        self.waiting_worker: Any = None
        self.paying_cost = False  # in gevent.sleep for an io cost
        self.progress = 0  # changes while answers drain: the client is reading
        self.closed_by_server = False  # the EOF or error that follows is our own doing
        # After its closing reply (see ``linger``): what it may still send, dropped by a
        # hub callback, and the hub timer that ends it (0 and None: not lingering).
        self.linger_budget = 0
        self.linger_timer: Any = None
        self.refused = False  # told the server is busy: lingering, never served

    def end(self) -> None:
        """Shut the socket down: whatever waits on it wakes (EOF or an error)."""
        self.closed_by_server = True
        with contextlib.suppress(OSError):  # already gone
            self.sock.shutdown(socket.SHUT_RDWR)

    def at_boundary(self) -> bool:
        """Parked between questions with nothing unread, or lingering: a stop may close it now."""
        if self.linger_budget:
            return True
        return (self.waiting_worker is None and not self.closed_by_server
                and not self.conversation.mid_request and not input_waiting(self.sock.fileno()))


# A worker's job for a request that must wait: (connection, argument, the worker itself).
WorkerJob = Callable[[GreenConnection, Any, Any], None]


class WorkerPool:
    """Worker greenlets for requests that must wait; idle ones wait here for the next job.

    ``hand_over`` is called from the hub: a worker runs the job at once, until
    it is done or suspends (then the hub goes on). ``failed`` hears of what a
    job raised (the connection is then to be closed); a GreenletExit also ends
    that worker.
    """

    __slots__ = ("_failed", "_idle")

    def __init__(self, failed: Callable[[GreenConnection, BaseException], None]) -> None:
        self._failed = failed
        self._idle: list[Any] = []

    def hand_over(self, job: WorkerJob, connection: GreenConnection, arg: Any) -> None:
        """From the hub: an idle worker (or a new one) runs ``job(connection, arg, worker)``."""
        idle = self._idle
        worker = idle.pop() if idle else None
        if worker is None or worker.dead:  # none idle, or killed while idle (by a stop)
            worker = RawGreenlet(self._work, gevent.get_hub())
        worker.switch(job, connection, arg)

    def clear(self) -> None:
        """Forget the idle workers (collected while suspended, each exits with GreenletExit)."""
        self._idle.clear()

    def _work(self, job: WorkerJob, connection: GreenConnection, arg: Any) -> None:
        idle, back_to_hub, failed = self._idle, gevent.get_hub().switch, self._failed
        me = gevent.getcurrent()
        while True:
            try:
                job(connection, arg, me)
            except (Exception, GreenletExit) as error:
                failed(connection, error)
                if isinstance(error, GreenletExit):
                    raise
            if len(idle) >= IDLE_WORKERS_KEPT:
                return
            idle.append(me)
            job, connection, arg = back_to_hub()  # what the next hand_over switches in
