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
    """The first socket systemd passed us (``LISTEN_FDS``), or None.

    As sd_listen_fds(3), not when ``LISTEN_PID`` names another process (so a
    child never takes its parent's sockets); an unset ``LISTEN_PID`` is
    accepted, for launchers made by hand. The variables are then unset.
    """
    if os.environ.get("LISTEN_PID") not in (None, str(os.getpid())):
        return None
    count = os.environ.get("LISTEN_FDS", "0")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    if not count.isdigit():
        raise ZenserveError(f"--inherit: LISTEN_FDS={count!r} is not a number of sockets")
    if int(count) < 1:
        return None
    if int(count) > 1:
        log.warning("LISTEN_FDS=%s: serving only the first socket (fd %d)", count,
                    SYSTEMD_FIRST_FD)
    try:
        sock = socket.socket(fileno=SYSTEMD_FIRST_FD)
    except OSError:
        raise ZenserveError(f"--inherit: fd {SYSTEMD_FIRST_FD} from LISTEN_FDS is not a socket"
                            ) from None
    sock.set_inheritable(False)
    return sock


def is_listening(sock: socket.socket) -> bool:
    """True for a listening socket, False for a connected one."""
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 0


def inherited_socket() -> tuple[socket.socket, bool]:
    """The socket we were started with, and whether it is a listener.

    systemd's ``LISTEN_FDS`` comes first; otherwise fd 0 as inetd passes it:
    a listening socket in ``wait`` mode (systemd ``Accept=no``), one
    connection in ``nowait`` mode (``Accept=yes``).
    """
    sock = systemd_listener()
    if sock is None:
        try:
            sock = socket.socket(fileno=0)
        except OSError:
            raise ZenserveError("--inherit: standard input is not a socket") from None
    return sock, is_listening(sock)


def describe_address(address: object) -> str:
    """``host:port`` for a socket address tuple (IPv6 in brackets)."""
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
