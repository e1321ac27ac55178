"""What the conformance suite does not cover for the raw event loops (`poll`, `epoll`).

Each test here would fail on listing 7-6's approach: the fd-reuse race, EOF
tearing down a connection that is still owed answers, answers that stall the
loop under an io cost, and no limits at all.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.helpers import (
    ANSWER,
    QUESTION,
    SOCKET_TIMEOUT,
    ask,
    connect,
    read_answers,
    read_until_closed,
    wait_for,
)
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_BUSY, ERROR_TOO_LONG, ERROR_UNKNOWN
from zenserve.service import pep20_table

EVENT_LOOPS = ["poll", "epoll"]


@pytest.fixture(params=EVENT_LOOPS)
def arch(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module", params=EVENT_LOOPS)
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """One plain server per architecture, shared by the tests that only ask questions."""
    with ServerProcess("--arch", request.param) as process:
        yield process


IO_COST = 0.5  # long enough that a loaded machine cannot blur 1 cost and 4


@pytest.fixture(scope="module", params=EVENT_LOOPS)
def io_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """One server per architecture whose answers take an io cost (awaited, not slept)."""
    with ServerProcess("--arch", request.param, "--cost", f"{IO_COST}s",
                       "--cost-kind", "io") as process:
        yield process


def lose_clients_to_descriptor_reuse(port: int, cycles: int, bystanders: int) -> list[str]:
    """Close a client and connect a new one while other clients keep the loop busy.

    The new connection is likely to get the closed one's descriptor while the
    server still has events for it; listing 7-6 closes without unregistering,
    so its stale POLLNVAL tears the new connection down (it fails this in the
    first cycle). Returns what went wrong, cycle by cycle.
    """
    failures = []
    for cycle in range(cycles):
        leaving = connect(port)
        leaving.sendall(QUESTION)
        read_answers(leaving, 1)
        others = [connect(port) for _ in range(bystanders)]
        try:
            for other in others:
                other.sendall(QUESTION)
                read_answers(other, 1)
            leaving.close()
            for other in others:
                other.sendall(QUESTION)  # events queued behind the closed descriptor
            with connect(port) as newcomer:
                newcomer.sendall(QUESTION)
                try:
                    if read_answers(newcomer, 1) != [ANSWER]:
                        failures.append(f"cycle {cycle}: wrong answer")
                except (AssertionError, OSError) as error:
                    failures.append(f"cycle {cycle}: {error!r}")
            for other in others:
                assert read_answers(other, 1) == [ANSWER]
        finally:
            for other in others:
                other.close()
    return failures


def test_a_new_connection_on_a_reused_descriptor_is_served(server: ServerProcess) -> None:
    assert lose_clients_to_descriptor_reuse(server.port, cycles=40, bystanders=10) == []
    assert ask(server.port) == ANSWER


def test_half_close_with_many_answers_still_owed_gets_them_all(server: ServerProcess) -> None:
    """EOF arrives while answers wait for the client to read: they are delivered, then close."""
    count = 20_000  # 20 KB of "?" owes 480 KB of errors: far more than the socket buffers
    with connect(server.port) as sock:
        sock.sendall(b"?" * count)
        sock.shutdown(socket.SHUT_WR)
        assert read_until_closed(sock) == ERROR_UNKNOWN * count


def test_a_flooding_client_gets_every_answer_in_order_and_others_are_served(
    server: ServerProcess,
) -> None:
    questions = list(pep20_table().items())
    rounds = 100_000 // len(questions) + 1
    flood = b"".join(question for question, _ in questions) * rounds
    with connect(server.port) as flooder:
        sender = threading.Thread(target=_send_and_half_close, args=(flooder, flood))
        sender.start()
        try:
            sender.join(timeout=1.0)  # a while without reading: the server must stop reading
            assert ask(server.port) == ANSWER  # and the loop is not stuck on the flooder
            expected = b"".join(answer for _, answer in questions) * rounds
            assert read_until_closed(flooder) == expected
        finally:
            sender.join(timeout=SOCKET_TIMEOUT)
        assert not sender.is_alive()


def _send_and_half_close(sock: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):  # a failure shows as missing answers
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)


def test_past_max_connections_a_client_is_told_the_server_is_busy(arch: str) -> None:
    with ServerProcess("--arch", arch, "--max-connections", "2") as server:
        first, second = connect(server.port), connect(server.port)
        try:
            for sock in (first, second):
                sock.sendall(QUESTION)
                assert read_answers(sock, 1) == [ANSWER]  # both admitted
            with connect(server.port) as third:
                assert read_until_closed(third) == ERROR_BUSY
            first.close()
            # The server sees the close soon; until then a newcomer may still be refused.
            wait_for(lambda: _asks_without_busy(server.port), timeout=SOCKET_TIMEOUT)
        finally:
            first.close()
            second.close()


def _asks_without_busy(port: int) -> bool:
    try:
        with connect(port) as sock:
            sock.sendall(QUESTION)
            return read_answers(sock, 1) == [ANSWER]
    except (AssertionError, OSError):
        return False


def test_an_idle_client_is_closed_after_the_idle_timeout(arch: str) -> None:
    with ServerProcess("--arch", arch, "--idle-timeout", "0.3s") as server, \
            connect(server.port) as sock:
        asked_at = time.monotonic()  # the server hears the question later than this
        sock.sendall(QUESTION)
        assert read_answers(sock, 1) == [ANSWER]
        assert read_until_closed(sock) == b""
        assert time.monotonic() - asked_at >= 0.29


def test_a_question_trickling_in_is_cut_off_at_the_request_timeout(arch: str) -> None:
    """Slowloris: a byte every 0.1 s keeps the client from being idle, not from the limit."""
    with ServerProcess("--arch", arch, "--request-timeout", "0.4s",
                       "--idle-timeout", "30s") as server, connect(server.port) as sock:
        started = time.monotonic()
        closed = False
        for _ in range(100):  # at most ~10 s
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                try:
                    closed = sock.recv(100) == b""
                except ConnectionResetError:  # closed with our bytes unread
                    closed = True
                break
        assert closed
        assert time.monotonic() - started >= 0.35


def _ask_concurrently(port: int, clients: int) -> float:
    """Every client asks at once; seconds until the last answer arrives."""
    socks = [connect(port) for _ in range(clients)]
    try:
        started = time.monotonic()
        for sock in socks:
            sock.sendall(QUESTION)
        for sock in socks:
            assert read_answers(sock, 1) == [ANSWER]
        return time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()


def test_an_io_cost_is_awaited_without_stalling_the_loop(io_server: ServerProcess) -> None:
    clients = 4
    elapsed = _ask_concurrently(io_server.port, clients)
    # Served one after the other the last answer would take clients × cost;
    # waited for together, they all arrive after about one cost.
    assert IO_COST * 0.9 <= elapsed < clients * IO_COST


def test_a_block_cost_stalls_the_loop_as_the_book_warns(arch: str) -> None:
    cost, clients = 0.25, 4
    with ServerProcess("--arch", arch, "--cost", f"{cost}s", "--cost-kind", "block") as server:
        elapsed = _ask_concurrently(server.port, clients)
    assert elapsed >= clients * cost * 0.95


def test_io_cost_keeps_answers_in_order_and_errors_after_them(io_server: ServerProcess) -> None:
    questions = list(pep20_table().items())[:5]
    with connect(io_server.port) as sock:
        for question, _ in questions:  # likely several batches, scheduled apart
            sock.sendall(question)
        sock.sendall(b"Unknown?")
        assert read_answers(sock, 6) == [a for _, a in questions] + [ERROR_UNKNOWN]
    with connect(io_server.port) as sock:
        sock.sendall(QUESTION + b"x" * 5000)
        assert read_until_closed(sock) == ANSWER + ERROR_TOO_LONG
    with connect(io_server.port) as sock:
        sock.sendall(QUESTION * 3)
        sock.shutdown(socket.SHUT_WR)
        assert read_until_closed(sock) == ANSWER * 3


def test_sigterm_waits_for_a_question_in_progress_and_for_io_answers(arch: str) -> None:
    with ServerProcess("--arch", arch, "--cost", "200ms", "--cost-kind", "io") as server:
        with connect(server.port) as waiting, connect(server.port) as halfway:
            waiting.sendall(QUESTION * 3)
            halfway.sendall(QUESTION[:10])
            server.process.send_signal(signal.SIGTERM)
            assert read_answers(waiting, 3) == [ANSWER] * 3
            halfway.sendall(QUESTION[10:])  # finishing the question is still allowed
            assert read_until_closed(halfway) == ANSWER
            assert read_until_closed(waiting) == b""
        assert server.process.wait(timeout=20) == 0


def test_graceful_stop_gives_up_after_the_graceful_timeout_and_sigint_cuts_it_short(
    arch: str,
) -> None:
    with ServerProcess("--arch", arch, "--graceful-timeout", "0.5s") as server, \
            connect(server.port) as stalled:
        stalled.sendall(QUESTION[:10])
        assert ask(server.port) == ANSWER  # the half question has been read
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
        assert time.monotonic() - started >= 0.4
    with ServerProcess("--arch", arch, "--graceful-timeout", "60s") as server, \
            connect(server.port) as stalled, connect(server.port) as idle:
        stalled.sendall(QUESTION[:10])
        idle.sendall(QUESTION)
        assert read_answers(idle, 1) == [ANSWER]
        server.process.send_signal(signal.SIGTERM)
        assert read_until_closed(idle) == b""  # stopping: closed at a request boundary
        server.process.send_signal(signal.SIGINT)
        assert server.process.wait(timeout=20) == 0
