"""Listening sockets: bind one, or inherit one (inetd's fd 0, systemd's LISTEN_FDS)."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket

from zenserve.errors import ZenserveError

log = logging.getLogger("zenserve.net")

# systemd's sd_listen_fds(3): passed sockets start at fd 3.
SYSTEMD_FIRST_FD = 3


def bind_listener(
    host: str, port: int, backlog: int, reuse_port: bool = False
) -> socket.socket:
    """Bind and listen on ``host:port`` (port 0 picks a free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ZenserveError(f"cannot resolve {host!r}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(address)
        listener.listen(backlog)
    except OSError as error:
        listener.close()
        raise ZenserveError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    if not is_loopback(host):
        log.warning("Notice: listening on %s, reachable from other hosts", host)
    return listener


def is_loopback(host: str) -> bool:
    """True when ``host`` is a loopback name or address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def systemd_listener() -> socket.socket | None:
    """The first socket systemd passed us (``LISTEN_FDS``), or None."""
    if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        return None
    count = int(os.environ.get("LISTEN_FDS", "0") or "0")
    if count < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return socket.socket(fileno=SYSTEMD_FIRST_FD)


def inherited_socket() -> tuple[socket.socket, bool]:
    """The socket we were started with, and whether it is a listener.

    systemd's ``LISTEN_FDS`` comes first; otherwise fd 0 as inetd passes it:
    a listening socket in ``wait`` mode, one connection in ``nowait`` mode.
    """
    listener = systemd_listener()
    if listener is not None:
        return listener, True
    try:
        sock = socket.socket(fileno=0)
    except OSError:
        raise ZenserveError("--inherit: standard input is not a socket") from None
    accepting = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0
    return sock, accepting


def describe_address(address: object) -> str:
    """``host:port`` for a socket address tuple (IPv6 in brackets)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
