"""Accepting for the gevent architecture: back-off out of descriptors, sharing under --workers.

StreamServer accepts on a watcher of the hub; this subclass adds what zenserve
asks of every architecture: out of descriptors it stops watching the listener
for a moment (one log line, not a traceback per failure), and under
``--workers`` it leaves new connections to a peer worker holding fewer
(``zenserve.accept_share``).
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

import gevent
from gevent.server import StreamServer

from zenserve.accept_share import AcceptShare, AcceptTurns
from zenserve.stats import Stats

log = logging.getLogger("zenserve.server")

# Out of descriptors, stop watching the listener this long instead of spinning
# (StreamServer's own back-off would also hold, but prints a traceback each time).
ACCEPT_BACKOFF_SECONDS = 0.1
_ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Acceptor(StreamServer):  # type: ignore[misc]  # gevent has no type hints
    """StreamServer whose accept backs off with one log line when out of descriptors.

    Under ``--workers`` it also shares new connections with the peer workers
    (``zenserve.accept_share``): it pauses while a peer holds fewer.
    """

    def __init__(self, listener: socket.socket, handle: Any, share: AcceptShare | None,
                 stats: Stats) -> None:
        super().__init__(listener, handle)
        self.stopping = False
        self._failing = False  # log once per run of failures
        self._backing_off = False
        self._stats = stats
        # Accepted, but their handler has not run yet (it counts them from then
        # on): counted here meanwhile, or a burst of connects all lands here.
        self._unhandled = 0
        self._pause_timer: Any = None
        self._turn_watcher: Any = None
        self._turns = AcceptTurns(share, self) if share is not None else None

    def begin(self) -> None:
        """Start accepting (and, under --workers, listening for the turn handed by peers)."""
        self.start()
        if self._turns is not None:
            self._turn_watcher = self.loop.io(self._turns.share.fileno(), 1)
            self._turn_watcher.start(self._turns.on_turn)
            self._turns.watching()

    def end(self) -> None:
        """Stop accepting for good."""
        self.stopping = True
        self.stop_accepting()
        if self._turns is not None:
            self._turns.withdraw()
        if self._turn_watcher is not None:
            self._turn_watcher.stop()
            self._turn_watcher = None

    def handling(self) -> None:
        """The handler starts on an accepted socket: from now on it counts it."""
        self._unhandled = max(0, self._unhandled - 1)
        self.held_changed()

    def held_changed(self) -> None:
        """A connection was accepted or ended: publish it, and watch again if now due."""
        if self._turns is not None:
            self._turns.held_changed()

    # The ListenerSwitch that AcceptTurns drives under --workers.

    def connections_held(self) -> int:
        return self._stats.connections_active + self._unhandled

    def may_watch_listener(self) -> bool:
        return not self.stopping and not self._backing_off

    def watch_listener(self) -> None:
        self.start_accepting()

    def unwatch_listener(self) -> None:
        self.stop_accepting()

    def start_pause_timer(self, seconds: float, expired: Callable[[], None]) -> None:
        self._pause_timer = self.loop.timer(seconds)
        self._pause_timer.start(expired)

    def cancel_pause_timer(self) -> None:
        if self._pause_timer is not None:
            self._pause_timer.stop()
            self._pause_timer = None

    def accept_queued(self) -> None:
        self._do_read()

    def do_read(self) -> Any:
        turns = self._turns
        if turns is not None and not turns.may_accept():
            return None
        try:
            # A plain socket, not StreamServer's gevent one (two watchers never used).
            accepted = self.socket.accept()
        except (BlockingIOError, ConnectionAbortedError):  # a peer worker took it; it left
            return None
        except OSError as error:
            if error.errno not in _ACCEPT_RESOURCE_ERRORS:
                raise  # StreamServer logs it and backs off
            if not self._failing:
                log.warning("accept() failed (%s); backing off", error.strerror)
                self._failing = True
            self.stop_accepting()
            if turns is not None:
                turns.withdraw()
            self._backing_off = True
            gevent.spawn_later(ACCEPT_BACKOFF_SECONDS, self._retry)
            return None
        self._failing = False
        if accepted and turns is not None:
            self._unhandled += 1
            turns.held_changed()
        return accepted

    def do_close(self, *args: Any) -> None:
        """Nothing: the handler owns the accepted socket, open after the handler returns."""

    def _retry(self) -> None:
        self._backing_off = False
        if self._turns is not None:
            self._turns.resume()
        elif not self.stopping:
            self.start_accepting()
