"""Workers share new connections: the table, its effect on real workers; --workers auto."""

from __future__ import annotations

import argparse
import os
import select
import socket
from collections.abc import Iterator

import psutil
import pytest

from tests.helpers import ANSWER, QUESTION, SOCKET_TIMEOUT, connect, read_answers
from zenserve.accept_share import AcceptShares
from zenserve.commands.serve import worker_count
from zenserve.process import ServerProcess
from zenserve.worker_pool import usable_cores


@pytest.fixture
def shares() -> Iterator[AcceptShares]:
    table = AcceptShares(3)
    try:
        yield table
    finally:
        table.close()


def woken(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_a_worker_watches_unless_a_peer_holds_fewer(shares: AcceptShares) -> None:
    first, second = shares.for_worker(0), shares.for_worker(1)
    first.watch(0)
    second.watch(0)
    assert first.should_watch() and second.should_watch()  # a tie: both watch
    first.hold(1)
    assert not first.should_watch()
    assert second.should_watch()
    second.hold(1)
    assert first.should_watch()


def test_absent_and_vacated_workers_are_not_waited_for(shares: AcceptShares) -> None:
    first, second = shares.for_worker(0), shares.for_worker(1)
    first.watch(5)
    assert first.should_watch()  # slots 1 and 2 have no worker yet
    second.watch(0)
    assert not first.should_watch()
    shares.vacate(1)  # the supervisor reaped it
    assert first.should_watch()
    second.watch(0)
    second.withdraw()  # backing off or stopping
    assert first.should_watch()


def test_pausing_hands_the_turn_to_a_paused_peer_holding_fewer(shares: AcceptShares) -> None:
    first, second = shares.for_worker(0), shares.for_worker(1)
    first.watch(0)
    second.watch(3)
    second.pause()
    assert not woken(first.fileno())  # first holds fewer and is not paused: nothing to hand
    first.hold(4)  # first took connections while second was paused
    assert woken(second.fileno())
    second.take_turn()
    assert not woken(second.fileno())
    first.pause()
    assert not woken(first.fileno())


def test_a_withdrawing_worker_wakes_the_paused_ones(shares: AcceptShares) -> None:
    first, second = shares.for_worker(0), shares.for_worker(1)
    first.watch(0)
    second.watch(1)
    second.pause()
    first.withdraw()
    assert woken(second.fileno())
    os.eventfd_read(second.fileno())


def connect_at_once(port: int, count: int) -> list[socket.socket]:
    """``count`` connections begun before any of them completes."""
    clients = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    for client in clients:
        client.setblocking(False)
        client.connect_ex(("127.0.0.1", port))
    for client in clients:
        assert select.select([], [client], [], SOCKET_TIMEOUT)[1], "connect timed out"
        client.setblocking(True)
        client.settimeout(SOCKET_TIMEOUT)
    return clients


@pytest.mark.parametrize("burst", [False, True], ids=["one-by-one", "burst"])
@pytest.mark.parametrize("architecture", ["asyncio-callbacks", "asyncio-coroutines", "uvloop",
                                          "gevent", "poll", "epoll"])
def test_two_workers_share_ten_long_connections(architecture: str, burst: bool) -> None:
    with ServerProcess("--arch", architecture, "--workers", "2") as server:
        clients: list[socket.socket] = []
        try:
            if burst:  # as a load generator's event loop opens them: all at once
                clients = connect_at_once(server.port, 10)
            for _ in range(0 if burst else 10):
                clients.append(connect(server.port))
                clients[-1].sendall(QUESTION)
                assert read_answers(clients[-1], 1) == [ANSWER]
            if burst:
                for client in clients:
                    client.sendall(QUESTION)
                for client in clients:
                    assert read_answers(client, 1) == [ANSWER]
            held = [sum(1 for connection in psutil.Process(pid).net_connections("tcp")
                        if connection.status == psutil.CONN_ESTABLISHED)
                    for pid in (child.pid for child in
                                psutil.Process(server.process.pid).children())]
        finally:
            for client in clients:
                client.close()
        # 5 and 5 as a rule; a worker descheduled past PAUSE_SECONDS may lose one or two.
        assert min(held) >= 3, held
        assert server.stop() == 0


def test_workers_auto_is_one_per_usable_core() -> None:
    assert worker_count("auto") == usable_cores() == len(os.sched_getaffinity(0))
    assert worker_count("3") == 3
    with pytest.raises(argparse.ArgumentTypeError, match="not a number or auto"):
        worker_count("many")


def test_serve_workers_auto_starts_a_worker_per_core() -> None:
    with ServerProcess("--arch", "uvloop", "--workers", "auto") as server:
        workers = psutil.Process(server.process.pid).children()
        assert len(workers) == usable_cores()
        client = connect(server.port)
        with client:
            client.sendall(QUESTION)
            assert read_answers(client, 1) == [ANSWER]
        assert server.stop() == 0
