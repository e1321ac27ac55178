"""The control socket: how `zenserve deploy status/release/promote/abort/apply` reach a supervisor.

A unix stream socket created with mode 0600 (only its owner can connect; the
peer's uid is checked too). One JSON request per connection, one JSON line
back; ``wait`` keeps the connection and streams the rollout's events, then
its result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from zenserve.deploy.reactor import Reactor
from zenserve.errors import ZenserveError

log = logging.getLogger("zenserve.deploy")

MAX_REQUEST_BYTES = 65536
Message = dict[str, Any]


def default_control_path(port: int) -> Path:
    """Where a supervisor on ``port`` listens for commands, unless ``--control`` says."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"zenserve-deploy-{os.getuid()}-{port}.sock"


class Peer:
    """One connected `zenserve deploy` command."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.closed = False

    def send(self, message: Message) -> bool:
        """Send one JSON line; False (and closed) if the peer is gone or not reading."""
        if self.closed:
            return False
        try:
            self.sock.settimeout(1.0)
            self.sock.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            self.close()
            return False
        return True

    def close(self) -> None:
        self.closed = True
        self.sock.close()


Handler = Callable[[Message, Peer], Message | None]


class ControlServer:
    """Accepts commands on the control socket; ``handle`` answers (None: it keeps the peer)."""

    def __init__(self, path: Path, reactor: Reactor, handle: Handler) -> None:
        self.path = path
        self._reactor = reactor
        self._handle = handle
        _refuse_if_in_use(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)  # created 0600: no window where others could connect
        try:
            self.sock.bind(str(path))
        except OSError as error:
            self.sock.close()
            raise ZenserveError(f"cannot create control socket {path}: {error.strerror}") from None
        finally:
            os.umask(old_umask)
        self.sock.listen(16)
        self.sock.setblocking(False)
        reactor.watch(self.sock, self._on_accept)

    def _on_accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        if not _same_user(conn):
            conn.close()
            return
        conn.setblocking(False)
        peer = Peer(conn)
        self._reactor.watch(conn, lambda: self._on_readable(peer))

    def _on_readable(self, peer: Peer) -> None:
        try:
            data = peer.sock.recv(MAX_REQUEST_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or len(peer.buffer) + len(data) > MAX_REQUEST_BYTES:
            self._reactor.unwatch(peer.sock)
            peer.close()
            return
        peer.buffer += data
        if b"\n" not in peer.buffer:
            return
        self._reactor.unwatch(peer.sock)
        line = peer.buffer.split(b"\n", 1)[0]
        try:
            request = json.loads(line)
            if not isinstance(request, dict):
                raise ValueError("not an object")
            response = self._handle(request, peer)
        except ZenserveError as error:
            response = {"error": str(error)}
        except ValueError:
            response = {"error": "bad request: expected one JSON object"}
        except Exception as error:  # a bad request must never take the supervisor down
            log.exception("control request %r failed", line[:200])
            response = {"error": f"internal error: {type(error).__name__}: {error}"}
        if response is not None:
            peer.send(response)
            peer.close()

    def close(self) -> None:
        self._reactor.unwatch(self.sock)
        self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _refuse_if_in_use(path: Path) -> None:
    """A live supervisor owns ``path``: refuse. A stale socket file is removed.

    Anything else at ``path`` (a directory, a user's file) is refused, never removed.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise ZenserveError(f"cannot create control socket {path}: {error.strerror}") from None
    if not stat.S_ISSOCK(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "a file that is not a socket"
        raise ZenserveError(f"--control {path} is {what}; give the path of a socket to create")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise ZenserveError(f"another supervisor is using the control socket {path}")


def _same_user(conn: socket.socket) -> bool:
    """Only the owner (or root) may command the supervisor, whatever the file mode."""
    credentials = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid in (os.getuid(), 0)


class ControlClient:
    """The command side: one request, one answer (or a stream of them for ``wait``)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def request(self, message: Message) -> Message:
        for answer in self.stream(message, self.timeout):
            return answer
        raise ZenserveError(f"the supervisor at {self.path} closed without answering")

    def stream(self, message: Message, timeout: float | None) -> Iterator[Message]:
        """Send ``message``; yield every JSON line until the supervisor closes."""
        sock = self._connect()
        with sock:
            sock.settimeout(timeout)
            sock.sendall(json.dumps(message).encode() + b"\n")
            buffer = b""
            while True:
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    raise ZenserveError(f"no answer from the supervisor at {self.path} within "
                                        f"{timeout:g}s") from None
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    yield json.loads(line)

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(str(self.path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise ZenserveError(f"no deployment supervisor at {self.path} (is `zenserve "
                                "deploy run` running? see --control/--port)") from None
        except PermissionError:
            sock.close()
            raise ZenserveError(f"not allowed to use {self.path}: it belongs to another user") \
                from None
        return sock
