"""The `poll` architecture's loop on Linux ``select.epoll``.

The same loop and dispatch as `poll` (this is ``poll.Server`` with epoll's
constants and timeout unit). It uses ``select.epoll`` directly rather
than ``selectors``: with ten ready sockets one ``selector.select()`` costs about
4.5x the instructions of ``epoll.poll()`` (callgrind), for key objects this
loop does not need.
"""

from __future__ import annotations

from select import EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, epoll

from zenserve.servers import poll


class Server(poll.Server):
    """The event loop on ``select.epoll()``."""

    READABLE, WRITABLE = EPOLLIN, EPOLLOUT
    MASKS = (0, EPOLLIN, EPOLLOUT, EPOLLIN | EPOLLOUT)
    TROUBLE = EPOLLHUP | EPOLLERR
    TIMEOUT_UNITS_PER_SECOND = 1.0  # epoll.poll() takes seconds

    def _new_poller(self) -> poll.Poller:
        return epoll()
