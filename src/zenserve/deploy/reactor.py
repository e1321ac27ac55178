"""The supervisor's one thread: a selector whose registrations carry their own handler."""

from __future__ import annotations

import selectors
import socket
from collections.abc import Callable

Handler = Callable[[], None]
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE


class Reactor:
    """Watch sockets; ``run_once`` calls the handler of each ready one."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._handlers: dict[int, tuple[Handler | None, Handler | None]] = {}

    def watch(self, sock: socket.socket, on_readable: Handler | None = None,
              on_writable: Handler | None = None) -> None:
        """Watch ``sock`` for what has a handler (replacing any earlier registration)."""
        events = (READ if on_readable else 0) | (WRITE if on_writable else 0)
        fd = sock.fileno()
        if fd in self._handlers:
            if events:
                self._selector.modify(fd, events)
            else:
                self._selector.unregister(fd)
                del self._handlers[fd]
                return
        elif events:
            self._selector.register(fd, events)
        else:
            return
        self._handlers[fd] = (on_readable, on_writable)

    def unwatch(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd >= 0 and self._handlers.pop(fd, None) is not None:
            self._selector.unregister(fd)

    def handlers(self, sock: socket.socket) -> tuple[Handler | None, Handler | None]:
        return self._handlers.get(sock.fileno(), (None, None))

    def run_once(self, timeout: float) -> None:
        for key, mask in self._selector.select(timeout):
            handlers = self._handlers.get(key.fd)
            if handlers is None:
                continue  # unwatched by an earlier handler of this batch
            on_readable, on_writable = handlers
            if mask & READ and on_readable is not None:
                on_readable()
            if mask & WRITE and on_writable is not None and key.fd in self._handlers:
                on_writable()

    def close(self) -> None:
        self._selector.close()
