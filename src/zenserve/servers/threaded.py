"""Listing 7-4: a fixed pool of threads, each accepting on the shared listener.

As in the book, ``--threads N`` threads (default 4) each loop "accept, then
converse until the client leaves", so N clients are served at once and the
next one waits in the listen backlog. Unlike the book, the threads take turns
at ``accept()`` (one waits in poll() while the others converse), so a new
connection wakes one thread instead of all of them, and they stop: SIGTERM
ends every conversation at a request boundary, SIGINT at once.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from zenserve.errors import ZenserveError
from zenserve.servers import base
from zenserve.servers.accepting import (
    ConnectionSlots,
    SignalWakeup,
    accept_or_wait,
    wait_for_stop,
)
from zenserve.servers.blocking import FORCED_STOP_SECONDS, ConversationStop, converse
from zenserve.signals import start_leaving_signals_to_main

log = logging.getLogger("zenserve.server")


class Server(base.Server):
    """``config.threads`` threads taking turns to accept, each conversing with one client."""

    def __init__(self, listener: socket.socket, context: base.ServeContext) -> None:
        super().__init__(listener, context)
        if context.config.threads < 1:
            raise ZenserveError("--threads must be at least 1")
        self._stop = ConversationStop(context.limits.graceful_timeout)
        self._turn_to_accept = threading.Lock()
        # Only a --max-connections below the pool size can refuse anyone: an
        # accepting thread is never one of the busy ones.
        self._slots = ConnectionSlots(context.limits.max_connections)
        self._failure: Exception | None = None

    def serve_forever(self) -> None:
        self._stop.start()
        self.listener.setblocking(False)
        threads = [threading.Thread(target=self._accept_and_converse, daemon=True,
                                    name=f"zenserve-thread-{number}")
                   for number in range(1, self.context.config.threads + 1)]
        log.info("Serving with a pool of %d threads", len(threads))
        try:
            with SignalWakeup() as wakeup:
                for thread in threads:
                    start_leaving_signals_to_main(thread)
                wait_for_stop(self._stop, wakeup)
            # The stop ends conversations (at once after the graceful timeout);
            # a thread that had just accepted may still be starting one.
            self._stop.wait_until_closed()
            deadline = time.monotonic() + FORCED_STOP_SECONDS
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        finally:
            self._stop.close()
            self._slots.close()
        if self._failure is not None:
            raise ZenserveError(f"serving failed: {self._failure}")

    def shutdown(self, graceful: bool = True) -> None:
        self._stop.wake(graceful)

    def _accept_and_converse(self) -> None:
        try:
            self._serve_clients()
        except Exception as error:  # a broken listener: a pool that shrinks would hang
            log.error("A pool thread failed (%s); stopping", error)
            self._failure = error
            self._stop.wake(graceful=True)

    def _serve_clients(self) -> None:
        context, stop, slots = self.context, self._stop, self._slots
        while True:
            with self._turn_to_accept:
                accepted = accept_or_wait(self.listener, stop)
            if accepted is None:
                return
            sock, address = accepted
            if not slots.admit(sock, address, context):
                continue
            try:
                converse(sock, address, context, stop)
            finally:
                slots.give_back()
