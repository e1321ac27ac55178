"""The worker's "listening socket": connections arrive from the supervisor, not the kernel.

Any deployable architecture takes it where it would take a listener: it polls
its descriptor (the connection channel) and calls ``accept()``, which receives
the next connection the supervisor routed here (SCM_RIGHTS) and returns it as
a ``HandoffSocket``, or the supervisor's health probe as a plain socket.
"""

from __future__ import annotations

import errno
import socket

from zenserve.deploy import channel
from zenserve.deploy.handoff import PROBE_PEER, HandoffSocket, WorkerState


class RoutedListener(socket.socket):
    """The worker's "listening socket": ``accept()`` takes the next routed connection."""

    __slots__ = ("_state",)

    def __init__(self, state: WorkerState, fd: int) -> None:
        super().__init__(fileno=fd)
        self._state = state

    def accept(self) -> tuple[socket.socket, object]:
        state = self._state
        if state.draining or state.supervisor_gone:
            raise BlockingIOError(errno.EAGAIN, "this worker is draining")
        received = channel.receive_connection(self)
        if received is None:
            state.lose_supervisor()
            raise BlockingIOError(errno.EAGAIN, "the supervisor has gone")
        kind, fd = received
        if kind == channel.PROBE:
            return socket.socket(fileno=fd), PROBE_PEER
        sock = HandoffSocket(state, fd)
        try:
            address = sock.getpeername()
        except OSError:
            sock.close()  # the client left before it reached us
            raise ConnectionAbortedError(errno.ECONNABORTED, "client left") from None
        sock.register_peer(address)
        return sock, address

    def listen(self, backlog: int = 0) -> None:
        """Nothing to do: the supervisor listens (asyncio calls this on its sockets)."""
