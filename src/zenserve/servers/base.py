"""The one interface every architecture implements, and what each connection needs.

An architecture only decides where bytes come from and where they go: it takes
a listening socket and a ``ServeContext``, and hands every received byte to a
``Conversation`` from ``context.conversation(peer)``.
"""

from __future__ import annotations

import abc
import contextlib
import ipaddress
import logging
import socket
from dataclasses import dataclass, field

from zenserve.accept_share import AcceptShare
from zenserve.config import Limits, ServerConfig
from zenserve.conversation import Conversation
from zenserve.service import Service
from zenserve.stats import Stats

log = logging.getLogger("zenserve.server")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ServeContext:
    """What an architecture needs besides its listener: config, service, counters."""

    config: ServerConfig
    service: Service
    stats: Stats = field(default_factory=Stats)
    allowed_networks: tuple[Network, ...] = ()
    # Under --workers: how this worker shares new connections with its peers.
    accept_share: AcceptShare | None = None

    @property
    def limits(self) -> Limits:
        return self.config.limits

    def conversation(self, peer: str) -> Conversation:
        """A fresh conversation for one accepted connection."""
        return Conversation(self.service, self.stats, self.config.limits, peer)

    def admit(self, sock: socket.socket, address: object) -> bool:
        """Keep an accepted connection if ``--allow`` admits it; else count it and close it."""
        if self.admits(address):
            log.info("Accepted connection from %s", address)
            return True
        self.stats.connections_denied += 1
        sock.close()
        return False

    def admits(self, address: object) -> bool:
        """True when ``--allow`` is unset or the peer's address is in an allowed network."""
        if not self.allowed_networks:
            return True
        if not isinstance(address, tuple):
            return True  # unix sockets and socketpairs: local by construction
        try:
            peer_ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        except ValueError:
            return False
        if isinstance(peer_ip, ipaddress.IPv6Address) and peer_ip.ipv4_mapped is not None:
            peer_ip = peer_ip.ipv4_mapped
        return any(peer_ip in network for network in self.allowed_networks)


class Server(abc.ABC):
    """One architecture serving one listening socket in this process.

    ``__init__`` does nothing to the process (no threads, no signals);
    ``serve_forever`` blocks until ``shutdown`` has been called and every
    conversation is over; ``shutdown`` may be called from a signal handler or
    another thread. Graceful means: stop accepting, answer what was received,
    close each connection at a request boundary, give up after
    ``limits.graceful_timeout``.
    """

    def __init__(self, listener: socket.socket, context: ServeContext) -> None:
        self.listener = listener
        self.context = context

    @abc.abstractmethod
    def serve_forever(self) -> None:
        """Serve until shut down."""

    @abc.abstractmethod
    def shutdown(self, graceful: bool = True) -> None:
        """Ask ``serve_forever`` to return; safe from signal handlers and other threads."""


class Waker:
    """A self-pipe: ``wake()`` makes ``fileno()`` readable, for select/poll loops.

    Writing to a socket is async-signal-safe, so a signal handler may call it;
    once woken it stays readable, so every loop watching it sees the wake-up.
    """

    def __init__(self) -> None:
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self.woken = False
        self.graceful = True

    def fileno(self) -> int:
        return self._reader.fileno()

    def wake(self, graceful: bool = True) -> None:
        """Wake every waiter; ``graceful=False`` (SIGINT) asks them to stop at once."""
        self.graceful = self.graceful and graceful
        if self.woken:
            return
        self.woken = True
        with contextlib.suppress(OSError):  # already readable, or closed
            self._writer.send(b"!")

    def close(self) -> None:
        self._reader.close()
        self._writer.close()
