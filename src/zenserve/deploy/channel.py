"""The two socketpairs between the supervisor and each worker, and what travels on them.

- The *connection channel* (SOCK_STREAM, because asyncio accepts only stream
  sockets as listeners): the supervisor sends one byte per connection, with
  the connection's descriptor attached (SCM_RIGHTS). The byte says whether it
  is a client or the supervisor's own health probe. The worker's listener
  reads it in ``accept()``.
- The *control channel* (SOCK_SEQPACKET: one message per send): commands to
  the worker (drain, stop) as JSON; reports from the worker (ready, counts,
  latency histogram) as JSON; and connections handed back at a request
  boundary, one byte ``h`` with the descriptor attached.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

CLIENT = b"c"
PROBE = b"p"
HANDOFF = b"h"
MAX_MESSAGE_BYTES = 65536

Message = dict[str, Any]


def connection_channel() -> tuple[socket.socket, socket.socket]:
    """(supervisor end, worker end); the worker end is inherited by the worker process."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def control_channel() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send_connection(channel: socket.socket, fd: int, kind: bytes = CLIENT) -> None:
    """Pass ``fd`` over ``channel`` (raises BlockingIOError when the worker is behind)."""
    socket.send_fds(channel, [kind], [fd])


def receive_connection(channel: socket.socket, flags: int = 0) -> tuple[bytes, int] | None:
    """The next (kind, fd); None when the supervisor has gone. Raises BlockingIOError."""
    data, fds, _, _ = socket.recv_fds(channel, 1, 1, flags)
    if not data:
        _close_all(fds)
        return None
    if not fds:  # cannot happen with our sender; never hand out a bogus descriptor
        raise BlockingIOError("a connection message without a descriptor")
    return data, fds[0]


def send_message(channel: socket.socket, message: Message) -> None:
    channel.send(json.dumps(message, separators=(",", ":")).encode())


def hand_back(channel: socket.socket, fd: int) -> None:
    """Return a connection at a request boundary, for the supervisor to route elsewhere."""
    socket.send_fds(channel, [HANDOFF], [fd])


def receive_control(channel: socket.socket) -> tuple[Message | None, int | None, bool]:
    """One control message: (JSON message or None, handed-back fd or None, channel open)."""
    data, fds, _, _ = socket.recv_fds(channel, MAX_MESSAGE_BYTES, 1)
    if not data:
        _close_all(fds)
        return None, None, False
    if data == HANDOFF and fds:
        return None, fds[0], True
    _close_all(fds)
    try:
        message = json.loads(data)
    except ValueError:
        return None, None, True
    return (message if isinstance(message, dict) else None), None, True


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
