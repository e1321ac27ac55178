"""A client refused past ``--max-connections`` reads ``Error: server busy.`` and a clean end.

The blocking architectures that refuse (threaded, socketserver, forking; single
and inetd serve one client at a time and never refuse: the next one waits in
the listen backlog) answer a client past ``--max-connections`` from the
accepting thread, which must never wait for it; the event loops answer it in
their loop, which must not wait either. A refused client that is still
sending while the server closes makes the server's kernel answer with a
reset, which on many stacks destroys the busy reply before the client reads
it. On Linux loopback the bytes already received survive a reset, so what a
client here can see of the failure is the reset itself: a send that fails, a
``recv`` that raises, or ``SO_ERROR`` set once the connection has ended.
Refused clients that come one after another overlap for a moment (the last
one's end of stream not read yet): at ``--max-connections 1`` a bound on
lingering refused clients tied to it alone reset a few in 300 (the event
loops did, before ``linger.refused_held_at_most`` gave it a floor).

Each refused client sends a question at once and then goes on asking, reading
first whenever the server has sent something, until the end of stream.
"""

from __future__ import annotations

import errno
import select
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ANSWER, QUESTION, connect, read_answers, wait_for
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_BUSY
from zenserve.servers import ARCHITECTURES
from zenserve.servers.linger import LINGER_SECONDS

# Every architecture but the one-at-a-time ones (see above): blocking and event loops.
REFUSING = [name for name, arch in ARCHITECTURES.items() if arch.concurrency != "one"]
# Enough refusals for a race of a few in a thousand to show (it did, before the
# refused clients lingered); bounded so each architecture takes a second or two.
REFUSALS = 300
# Questions a refused client asks before it sees the reply: bounded, and far
# below linger.LINGER_BYTES, so a server that lingers never needs to reset.
MAX_QUESTIONS = 100
CLIENT_SECONDS = 5.0  # a refusal that never ends fails its round, never hangs the test
_RESET_ERRORS = frozenset({errno.ECONNRESET, errno.EPIPE})


@pytest.fixture(params=REFUSING)
def full_server(request: pytest.FixtureRequest) -> Iterator[tuple[int, socket.socket]]:
    """A server at ``--max-connections 1`` and the client holding its only place."""
    with ServerProcess("--arch", request.param, "--max-connections", "1") as server, \
            connect(server.port) as holder:
        holder.sendall(QUESTION)
        assert read_answers(holder, 1) == [ANSWER]
        yield server.port, holder


def refused_client(port: int) -> tuple[bytes, str]:
    """Connect, ask at once and keep asking until the server's end of stream.

    Returns what came back and how the connection ended: ``end of stream``
    (a FIN and nothing else), ``reset`` (on a recv, a send, or in ``SO_ERROR``
    after the end), ``more than a reply`` or ``no end in time``.
    """
    with connect(port) as sock:
        sock.sendall(QUESTION)
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLOUT)
        received, asked = b"", 1
        deadline = time.monotonic() + CLIENT_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            events = poller.poll(remaining * 1000)
            mask = events[0][1] if events else 0
            if mask & (select.POLLIN | select.POLLERR | select.POLLHUP):
                try:
                    data = sock.recv(4096)
                except OSError as error:
                    return received, "reset" if error.errno in _RESET_ERRORS else str(error)
                if not data:
                    reset = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in _RESET_ERRORS
                    return received, "reset" if reset else "end of stream"
                received += data
                if len(received) > len(ERROR_BUSY):
                    return received, "more than a reply"
            elif mask & select.POLLOUT:
                try:
                    sock.send(QUESTION)
                except BlockingIOError:
                    continue
                except OSError as error:
                    return received, "reset" if error.errno in _RESET_ERRORS else str(error)
                asked += 1
                if asked >= MAX_QUESTIONS:
                    poller.modify(sock, select.POLLIN)
        return received, "no end in time"


def test_every_refused_client_reads_busy_and_a_clean_end(
    full_server: tuple[int, socket.socket],
) -> None:
    port, _ = full_server
    outcomes = Counter(refused_client(port) for _ in range(REFUSALS))
    assert outcomes == Counter({(ERROR_BUSY, "end of stream"): REFUSALS})


def test_refusals_leave_the_place_to_the_next_client(
    full_server: tuple[int, socket.socket],
) -> None:
    port, holder = full_server
    for _ in range(3):
        assert refused_client(port) == (ERROR_BUSY, "end of stream")
    holder.close()  # its conversation ends and gives the place back, soon
    wait_for(lambda: is_answered(port))


def is_answered(port: int) -> bool:
    """True when a new client is answered, False when it is refused."""
    with connect(port) as sock:
        sock.sendall(QUESTION)
        reply = sock.recv(4096)
    assert reply in (ANSWER, ERROR_BUSY)
    return reply == ANSWER


@pytest.mark.parametrize("architecture", REFUSING)
def test_a_lingering_refused_client_never_takes_a_served_place(architecture: str) -> None:
    """While a refused client lingers, only served ones count, and a free place serves."""
    with ServerProcess("--arch", architecture, "--max-connections", "1",
                       "--metrics-port", "0") as server, connect(server.port) as holder:
        assert server.metrics_url is not None
        holder.sendall(QUESTION)
        assert read_answers(holder, 1) == [ANSWER]
        with connect(server.port) as refused:
            refused.sendall(QUESTION)  # unread by the server: it lingers on this client
            assert read_answers(refused, 1) == [ERROR_BUSY]
            refused_at = time.monotonic()
            assert active_connections(server.metrics_url) == 1  # the holder, not the refusal
            holder.close()
            wait_for(lambda: is_answered(server.port))
            if time.monotonic() - refused_at < LINGER_SECONDS / 2:
                # Answered while the refusal still lingers: the server drops what it sends.
                # (A machine that stalled longer may have ended it: nothing to tell then.)
                refused.sendall(QUESTION)
                assert not reset_follows(refused)


def active_connections(metrics_url: str) -> float:
    """``zenserve_connections_active`` as Prometheus would scrape it."""
    with urllib.request.urlopen(metrics_url, timeout=10.0) as response:
        text = response.read().decode()
    return next(sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name == "zenserve_connections_active")


def reset_follows(sock: socket.socket) -> bool:
    """True when the server's side is gone: loopback answers a send to it with a reset at once."""
    readable, _, _ = select.select([sock], [], [], 0.2)
    if not readable:
        return False
    try:
        return sock.recv(4096) == b"" and sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ERROR) in _RESET_ERRORS
    except OSError as error:
        return error.errno in _RESET_ERRORS
