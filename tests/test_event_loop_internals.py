"""The event loops served in this process, where their state can be looked at.

Real sockets and a real loop in a thread; what is inspected is the loop's own
connection state (paused reading, answers owed), so the tests show the
mechanism, not just an outcome that a lucky schedule could also produce.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ANSWER, QUESTION, SOCKET_TIMEOUT, ask, read_until_closed, wait_for
from zenserve.config import Limits, ServerConfig
from zenserve.conversation import Conversation
from zenserve.net import bind_listener
from zenserve.protocol import ERROR_UNKNOWN
from zenserve.servers import server_class
from zenserve.servers.base import ServeContext
from zenserve.servers.eventloop import EventLoopServer
from zenserve.servers.eventloop_io import BACKPRESSURE_BYTES, READ, RECV_BYTES
from zenserve.service import Service, pep20_table


@pytest.fixture(params=["poll", "epoll"])
def arch(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@contextlib.contextmanager
def serving(arch: str, listener: socket.socket) -> Iterator[EventLoopServer]:
    """Run ``arch`` on ``listener`` in a thread; stop it and check it ended."""
    context = ServeContext(ServerConfig(architecture=arch, limits=Limits()), Service())
    server = server_class(arch)(listener, context)
    assert isinstance(server, EventLoopServer)
    thread = threading.Thread(target=server.serve_forever, name=f"{arch} loop")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown(graceful=False)
        thread.join(timeout=SOCKET_TIMEOUT)
        listener.close()
    assert not thread.is_alive()


def tcp_listener() -> socket.socket:
    return bind_listener("127.0.0.1", 0, 64)


def unix_listener(path: Path) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    return listener


def unix_client_that_sent_and_left(path: Path, data: bytes) -> None:
    """Connect, send, close: on a unix socket the server sees POLLIN | POLLHUP at once."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(SOCKET_TIMEOUT)
        client.connect(str(path))
        client.sendall(data)


def test_questions_that_arrive_with_a_hang_up_are_still_read(
    arch: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Listing 7-6 tears the socket down on POLLHUP before reading what came with it."""
    caplog.set_level(logging.INFO)
    path = tmp_path / "zen.sock"
    listener = unix_listener(path)
    # Both clients are gone before the loop starts: each of its sockets is
    # readable and hung up from the first poll.
    unix_client_that_sent_and_left(path, QUESTION * 3)
    unix_client_that_sent_and_left(path, b"Beautiful is")
    with serving(arch, listener) as server:
        stats = server.context.stats
        wait_for(lambda: stats.connections_opened == 2 and stats.connections_active == 0)
        assert stats.answered == 3  # answered, though the answers had nowhere to go
    assert "sent b'Beautiful is' but then closed" in caplog.text


def cramped_listener() -> socket.socket:
    """A TCP listener whose connections have a tiny send buffer (accepted sockets inherit it)."""
    listener = tcp_listener()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    return listener


def cramped_client(server: EventLoopServer) -> socket.socket:
    """A client with a tiny receive buffer: the kernel holds few answers, the loop the rest."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.settimeout(SOCKET_TIMEOUT)
    client.connect(server.listener.getsockname()[:2])
    return client


def test_end_of_stream_with_answers_still_owed_delivers_them(arch: str) -> None:
    count = 20_000  # 20 KB of "?" owes 480 KB of errors
    with serving(arch, cramped_listener()) as server, cramped_client(server) as client:
        client.sendall(b"?" * count)
        client.shutdown(socket.SHUT_WR)
        received, saw_end_with_answers_owed = bytearray(), False
        while data := client.recv(4096):  # slowly: the loop resumes reading, meets EOF
            received += data
            saw_end_with_answers_owed |= any(c.eof and c.outgoing
                                             for c in server.open_connections())
        assert saw_end_with_answers_owed
        assert received == ERROR_UNKNOWN * count


def test_a_client_that_does_not_read_stops_being_read(arch: str) -> None:
    questions = list(pep20_table().items())
    rounds = 100_000 // len(questions) + 1
    flood = b"".join(question for question, _ in questions) * rounds
    with serving(arch, cramped_listener()) as server, cramped_client(server) as flooder:
        sender = threading.Thread(target=_send_and_half_close, args=(flooder, flood))
        sender.start()
        try:
            wait_for(lambda: _paused(server))
            # One recv's answers may land on top of the bound before reading stops.
            bound = BACKPRESSURE_BYTES + 24 * RECV_BYTES
            assert max(len(c.outgoing) for c in server.open_connections()) <= bound
            assert ask(server.listener.getsockname()[1]) == ANSWER  # others still served
            expected = b"".join(answer for _, answer in questions) * rounds
            assert read_until_closed(flooder) == expected
        finally:
            sender.join(timeout=SOCKET_TIMEOUT)
        assert not sender.is_alive()


def _paused(server: EventLoopServer) -> bool:
    """True when a connection that may still send is not being read: backpressure."""
    return any(c.outgoing and not c.eof and not c.interest & READ
               for c in server.open_connections())


def _send_and_half_close(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # a failure shows as missing answers
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)


def test_a_connection_closed_at_once_leaves_no_state_behind(arch: str) -> None:
    with serving(arch, tcp_listener()) as server:
        address = server.listener.getsockname()[:2]
        for _ in range(50):
            with socket.create_connection(address, timeout=SOCKET_TIMEOUT):
                pass
        assert ask(address[1]) == ANSWER
        stats = server.context.stats
        wait_for(lambda: stats.connections_opened == 51 and stats.connections_active == 0)
        assert server.open_connections() == []
        assert len(server._deadlines._live) == 0


def test_an_unexpected_error_costs_one_connection_not_the_server(
    arch: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    receive = Conversation.receive

    def failing_receive(self: Conversation, data: bytes) -> bytes:
        if b"boom" in data:
            raise RuntimeError("a bug in the loop's path")
        return receive(self, data)

    monkeypatch.setattr(Conversation, "receive", failing_receive)
    with serving(arch, tcp_listener()) as server:
        port = server.listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as victim:
            victim.sendall(b"boom?")
            assert read_until_closed(victim) == b""
        assert ask(port) == ANSWER
    assert "a bug in the loop's path" in caplog.text
