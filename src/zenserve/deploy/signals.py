"""Signals as events of the supervisor's loop: the handler only notes them and wakes the loop."""

from __future__ import annotations

import signal
import socket
from types import FrameType

from zenserve.deploy.reactor import Reactor

SUPERVISOR_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD)


class SignalInbox:
    """Install handlers that queue signal numbers; ``take()`` returns and clears them."""

    def __init__(self, reactor: Reactor, signums: tuple[int, ...] = SUPERVISOR_SIGNALS) -> None:
        self._pending: list[int] = []
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._reactor = reactor
        signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        reactor.watch(self._reader, self._drain)
        for signum in signums:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._pending.append(signum)

    def _drain(self) -> None:
        try:
            while self._reader.recv(512):
                pass
        except BlockingIOError:
            pass

    def take(self) -> list[int]:
        pending, self._pending = self._pending, []
        return pending

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        self._reactor.unwatch(self._reader)
        self._reader.close()
        self._writer.close()
