"""A closing reply reaches a client that is still sending, and the connection ends with a FIN.

A server that closes a socket with input it has not read makes the kernel send
a reset instead of a FIN. The reset discards whatever the server's kernel had
not transmitted yet and, on many stacks, what the client's kernel received but
the client has not read: `Error: request too long.` or `Error: server busy.`
can vanish. So after a closing reply a server shuts its write side (FIN) and
reads and drops what the client still sends, within bounds, before closing.

On Linux loopback the bytes a client has already received survive a reset, so
what these tests check is what any client can see: the reply, then a clean end
of stream, not ``ConnectionResetError``.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.conftest import HOSTILE_IDS, HOSTILE_SETUPS
from tests.adversarial.harness import LoggedServer, logged_server
from tests.helpers import ANSWER, QUESTION, connect, read_answers
from zenserve.protocol import ERROR_BUSY, ERROR_TOO_LONG
from zenserve.servers import ARCHITECTURES

MAX_REQUEST_BYTES = 64
# "2 MB+" of input that never holds a question mark: more than the server's
# kernel buffers and its linger budget together, so it sees unread input.
SEND_BYTES = 3 << 20
CHUNK_BYTES = 256 * 1024
SEND_SECONDS = 5.0  # a server that never ends the connection fails the test, never hangs it
MAX_REPLY_BYTES = 4096
MANY_AT_ONCE = [name for name, arch in ARCHITECTURES.items() if arch.concurrency == "many"]


@pytest.fixture(scope="module", params=HOSTILE_SETUPS, ids=HOSTILE_IDS)
def small_request_server(request: pytest.FixtureRequest,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedServer]:
    """One server per setup whose requests may be at most 64 bytes."""
    name, extra = request.param
    setup = (ARCHITECTURES[name], ("--arch", name, *extra))
    with logged_server(setup, tmp_path_factory.mktemp("closing"),
                       "--max-request-bytes", str(MAX_REQUEST_BYTES)) as server:
        yield server


def send_while_reading(sock: socket.socket) -> tuple[bytes, str]:
    """Send up to ``SEND_BYTES`` of ``x`` while reading; what came back and how it ended.

    One thread does both, reading first whenever there is something to read:
    a send() that met the reset would take its error, and the read after it
    would then see a plain end of stream. Bounded in bytes and in time.
    """
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLOUT)
    chunk, sent, received = b"x" * CHUNK_BYTES, 0, b""
    deadline = time.monotonic() + SEND_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        events = poller.poll(remaining * 1000)
        mask = events[0][1] if events else 0
        if mask & (select.POLLIN | select.POLLERR | select.POLLHUP):
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                return received, "reset"
            if not data:
                return received, "end of stream"
            received += data
            if len(received) > MAX_REPLY_BYTES:
                return received, "more than a reply"
        elif mask & select.POLLOUT:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                continue
            except OSError:  # the server is done reading: only read from now on
                sent = SEND_BYTES
            if sent >= SEND_BYTES:
                poller.modify(sock, select.POLLIN)
    return received, "no end in time"


def test_too_long_is_read_while_the_client_keeps_sending(
    small_request_server: LoggedServer,
) -> None:
    with connect(small_request_server.port) as sock:
        assert send_while_reading(sock) == (ERROR_TOO_LONG, "end of stream")


def test_the_server_serves_on_after_lingering(small_request_server: LoggedServer) -> None:
    with connect(small_request_server.port) as sock:
        sock.sendall(QUESTION)
        assert read_answers(sock, 1) == [ANSWER]
    small_request_server.assert_alive()
    small_request_server.assert_no_traceback()


@pytest.mark.parametrize("arch", MANY_AT_ONCE)
def test_busy_is_read_while_the_refused_client_keeps_sending(
    arch: str, tmp_path: Path,
) -> None:
    setup = (ARCHITECTURES[arch], ("--arch", arch))
    with logged_server(setup, tmp_path, "--max-connections", "1") as server:
        with connect(server.port) as served:
            served.sendall(QUESTION)
            assert read_answers(served, 1) == [ANSWER]  # it holds the only place
            with connect(server.port) as refused:
                assert send_while_reading(refused) == (ERROR_BUSY, "end of stream")
        server.assert_no_traceback()
