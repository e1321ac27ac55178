"""The forking server's children: one per client, reaped, counted, and stopped with it.

Each client is served by a child process; these tests watch the children
themselves (psutil), the answers they count for the parent's metrics, and
what becomes of them when the parent dies or is interrupted.
"""

from __future__ import annotations

import signal
import urllib.request

import psutil

from tests.helpers import (
    ANSWER,
    QUESTION,
    SOCKET_TIMEOUT,
    ask,
    is_gone,
    read_answers,
    read_until_closed,
    served_connection,
    wait_for,
)
from zenserve.process import ServerProcess


def children_of(server: ServerProcess) -> list[psutil.Process]:
    return psutil.Process(server.process.pid).children()


def test_forking_reaps_every_child_and_leaves_no_zombie() -> None:
    with ServerProcess("--arch", "forking") as server:
        clients = [served_connection(server.port) for _ in range(3)]
        assert len(children_of(server)) == 3  # one process per client
        for sock in clients:
            sock.close()
        for _ in range(5):
            assert ask(server.port) == ANSWER
        # A zombie is still listed as a child until it is reaped.
        wait_for(lambda: not children_of(server))


def test_forking_counts_what_its_children_answered() -> None:
    with ServerProcess("--arch", "forking", "--metrics-port", "0") as server:
        for _ in range(3):
            with served_connection(server.port) as sock:
                sock.sendall(QUESTION * 2)
                assert read_answers(sock, 2) == [ANSWER, ANSWER]
        assert server.metrics_url is not None
        url = server.metrics_url

        def answered_nine() -> bool:
            text = urllib.request.urlopen(url, timeout=SOCKET_TIMEOUT).read()
            return b'zenserve_requests_total{outcome="answered"} 9.0' in text

        wait_for(answered_nine)


def test_forking_children_die_with_their_parent() -> None:
    with ServerProcess("--arch", "forking") as server, served_connection(server.port) as client:
        [child] = children_of(server)
        server.process.kill()
        server.process.wait()
        # The parent-death signal is SIGTERM: the child ends at a request boundary.
        assert read_until_closed(client) == b""
        wait_for(lambda: is_gone(child))


def test_forking_sigint_stops_children_at_once() -> None:
    with ServerProcess("--arch", "forking", "--graceful-timeout", "30s") as server:
        with served_connection(server.port) as client:
            client.sendall(QUESTION[:10])  # mid-question: a graceful stop would wait
            children = children_of(server)
            assert server.stop(signal.SIGINT, timeout=10) == 0
            assert read_until_closed(client) == b""
        for child in children:
            wait_for(lambda child=child: is_gone(child))
