"""Listing 7-5's text: a new process per connection (``ForkingMixIn``, inetd's "nowait").

The parent only accepts: each client gets a child process of its own that
converses with ``blocking.converse`` and exits. Past ``--max-connections``
children (``DEFAULT_MAX_CONNECTIONS`` when 0: a process per idle client is
the costliest way to hold one) a client is told ``Error: server busy.``.
Children are reaped as they exit (SIGCHLD), so none lingers as a zombie, and
each dies with the parent (Linux's parent-death signal). SIGTERM: the parent
stops accepting and tells every child to finish at a request boundary,
waiting up to the graceful timeout; SIGINT: children are stopped at once.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import time
from types import FrameType
from typing import NoReturn

from zenserve.servers import base
from zenserve.servers.accepting import SignalWakeup, accept_or_wait, refuse_busy
from zenserve.servers.blocking import FORCED_STOP_SECONDS, converse
from zenserve.servers.child_process import (
    AlarmStop,
    ChildStatsPipe,
    close_other_fds,
    die_with_parent,
)
from zenserve.servers.lingerer import Lingerer

log = logging.getLogger("zenserve.server")

# A forked Python child costs a few MiB once reference counting has touched
# its copy-on-write pages; a few hundred is what a small machine holds easily.
DEFAULT_MAX_CONNECTIONS = 256
# While waiting for children to stop, look at the stop signal this often
# (a second SIGINT during a graceful stop turns it into a stop at once).
STOP_CHECK_SECONDS = 0.1
_CHILD_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}


class Server(base.Server):
    """Accept in the parent; converse in a forked child per connection."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        self._stop = base.Waker()
        self._children: set[int] = set()
        self._limit = context.limits.max_connections or DEFAULT_MAX_CONNECTIONS
        self._reports: ChildStatsPipe | None = None
        self._refused = Lingerer(self._limit)  # busy clients still sending, off the acceptor

    def serve_forever(self) -> None:
        self.listener.setblocking(False)
        self._reports = ChildStatsPipe()
        previous = signal.signal(signal.SIGCHLD, self._on_sigchld)
        log.info("Serving a process per connection, at most %d", self._limit)
        # Every object so far is shared with the children copy-on-write; a
        # collection that visits them (in a child, or in the parent while
        # children live) would copy their pages. Frozen, the GC leaves them be.
        gc.freeze()
        try:
            # SIGCHLD must reap even when the kernel hands it to another thread.
            with SignalWakeup() as wakeup:
                while (accepted := accept_or_wait(self.listener, self._stop, wakeup)) is not None:
                    sock, address = accepted
                    if not self.context.admit(sock, address):
                        continue
                    if len(self._children) >= self._limit:
                        refuse_busy(sock, address, self.context, self._refused)
                        continue
                    self._fork_conversation(sock, address)
            self._stop_children()
        finally:
            gc.unfreeze()
            signal.signal(signal.SIGCHLD, previous)
            self._reports.close()
            self._refused.close()
            self._stop.close()

    def shutdown(self, graceful: bool = True) -> None:
        self._stop.wake(graceful)

    def _fork_conversation(self, sock: socket.socket, address: object) -> None:
        # Blocked around fork: the parent must record the child before reaping
        # it, and the child must install its own handlers before any arrives.
        parent = os.getpid()
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _CHILD_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                self._be_child(sock, address, parent, mask)
            self._children.add(pid)
            self.context.stats.connections_opened += 1
            self.context.stats.connections_active += 1
        except OSError as error:  # out of processes or memory
            log.warning("fork() failed (%s)", error.strerror)
            refuse_busy(sock, address, self.context, self._refused)
            return
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        sock.close()

    def _be_child(self, sock: socket.socket, address: object, parent: int,
                  mask: set[int | signal.Signals]) -> NoReturn:
        status = 1
        try:
            signal.set_wakeup_fd(-1)  # the parent's; closed below
            die_with_parent(signal.SIGTERM, parent)
            self.listener.close()
            self._stop.close()
            assert self._reports is not None
            close_other_fds({sock.fileno(), self._reports.child_fd})
            # A thread watching the graceful timeout would cost this child more
            # than its conversation: the timeout is an alarm signal instead.
            stop = AlarmStop(self.context.limits.graceful_timeout)
            stop.install()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            with self._reports.reporting(self.context.stats):
                converse(sock, address, self.context, stop)
            status = 0
        except BaseException:
            log.exception("Child serving %s failed", address)
        finally:
            os._exit(status)  # never return into the parent's stack

    def _on_sigchld(self, signum: int, frame: FrameType | None) -> None:
        self._reap()

    def _reap(self) -> None:
        """Collect every child that has exited, and the counts it reported."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self._children:
                self._children.discard(pid)
                self.context.stats.connections_active -= 1
        if self._reports is not None:
            self._reports.collect(self.context.stats)

    def _stop_children(self) -> None:
        """Tell every child to stop (gracefully or at once), wait, then kill stragglers."""
        graceful = self._stop.graceful
        self._signal_children(signal.SIGTERM if graceful else signal.SIGINT)
        limits = self.context.limits
        # Children keep the graceful deadline themselves; the margin lets them close.
        wait = limits.graceful_timeout + FORCED_STOP_SECONDS if graceful else FORCED_STOP_SECONDS
        if not self._wait_for_children(time.monotonic() + wait) and self._children:
            log.warning("Killing %d children still running", len(self._children))
            self._signal_children(signal.SIGKILL)
            self._wait_for_children(time.monotonic() + FORCED_STOP_SECONDS)

    def _wait_for_children(self, deadline: float) -> bool:
        """Reap children until none is left (True) or ``deadline`` passes (False)."""
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            graceful = self._stop.graceful
            while True:
                self._reap()
                if not self._children:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                if graceful and not self._stop.graceful:  # SIGINT during a graceful stop
                    graceful = False
                    self._signal_children(signal.SIGINT)
                    deadline = min(deadline, time.monotonic() + FORCED_STOP_SECONDS)
                signal.sigtimedwait({signal.SIGCHLD}, min(remaining, STOP_CHECK_SECONDS))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def _signal_children(self, signum: int) -> None:
        for pid in list(self._children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
