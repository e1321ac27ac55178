"""Closing after a closing reply without a reset: FIN, then drop what the client still sends.

A socket closed with input it has not read makes the kernel send a reset
instead of a FIN. The reset throws away what the server's kernel has not
transmitted yet and, on many stacks, what the client's kernel received but
the client has not read: ``Error: request too long.`` or ``Error: server
busy.`` would be lost on a client that is still sending. So after such a
reply every architecture shuts its write side (the FIN follows the reply) and
reads and drops input until the client's end of stream, ``LINGER_BYTES`` or
``LINGER_SECONDS``, whichever comes first, and only then closes. The blocking
architectures wait in ``linger`` (their refused clients in the thread of a
``lingerer.Lingerer``, so the accepting thread never waits); the event loops
keep the socket in their loop and drop what ``drop_input`` reads each time it
is readable (asyncio: ``write_eof`` and a protocol that drops), never waiting.
A stop closes a lingering connection at once: its reply is delivered, it is
at a boundary.
"""

from __future__ import annotations

import contextlib
import socket
import time

# The bounds: a client still sending after this much, or this long, is reset.
LINGER_SECONDS = 1.0
LINGER_BYTES = 1 << 20
DROP_BYTES = 65536  # one read while lingering
# Refused clients linger too, counted apart from the served ones (a lingering
# refusal never takes a served client's place), but no more of them at once
# than --max-connections: past it a refusal closes at once, so a flood of
# refused clients cannot hold descriptors without bound. And at least this
# many, whatever --max-connections: refused clients that come one after
# another overlap for a moment (the last one's end of stream not read yet),
# which at --max-connections 1 would reset the next one; a handful of
# descriptors held for at most LINGER_SECONDS is no risk.
MIN_REFUSED_HELD = 64


def refused_held_at_most(max_connections: int) -> int:
    """How many refused clients may linger at once beside ``max_connections`` served ones."""
    return max(MIN_REFUSED_HELD, max_connections)


def linger(sock: socket.socket) -> None:
    """Shut the write side, then read and drop until EOF or a bound; waits (for threads).

    Never raises: a reset or a timeout ends it too. The caller closes ``sock``.
    """
    deadline = time.monotonic() + LINGER_SECONDS
    dropped = 0
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        while dropped < LINGER_BYTES and (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            data = sock.recv(DROP_BYTES)
            if not data:
                return
            dropped += len(data)


def drop_input(sock: socket.socket, budget: int) -> int:
    """Read and drop what a non-blocking ``sock`` holds now, at most about ``budget`` bytes.

    Returns the budget left, or 0 when lingering is over: the client's end of
    stream, an error, or the budget spent. Never waits.
    """
    try:
        while budget > 0:
            data = sock.recv(DROP_BYTES)
            if not data:
                return 0
            budget -= len(data)
    except (BlockingIOError, InterruptedError):
        return budget
    except OSError:  # a reset: nothing left to protect
        return 0
    return 0


def shut_write_side(sock: socket.socket) -> bool:
    """Send the FIN after what was written. False if the connection is gone already."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return False
    return True
