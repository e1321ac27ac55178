"""The blocking architectures (single, threaded, socketserver, forking), past conformance.

Pool size, --max-connections, the limits, graceful stop inside a question,
running out of descriptors, and where server signals land. The forking
server's children are test_forking_children.py's.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import (
    ANSWER,
    QUESTION,
    SOCKET_TIMEOUT,
    ask,
    connect,
    read_answers,
    read_until_closed,
    served_connection,
    wait_for,
)
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_BUSY, ERROR_TOO_LONG

BLOCKING = ["single", "threaded", "socketserver", "forking"]
CONCURRENT = ["threaded", "socketserver", "forking"]
# Long enough to tell "not answered" from "answered" on a busy machine.
NOT_ANSWERED_SECONDS = 0.5


def is_served(port: int) -> bool:
    """True when a new client is answered, False when it is told the server is busy."""
    with connect(port) as sock:
        sock.sendall(QUESTION)
        reply = read_until_closed_or_answer(sock)
    assert reply in (ANSWER, ERROR_BUSY)
    return reply == ANSWER


def read_until_closed_or_answer(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b".") and (chunk := sock.recv(100)):
        data += chunk
    return data


def assert_not_answered(sock: socket.socket) -> None:
    sock.settimeout(NOT_ANSWERED_SECONDS)
    with pytest.raises(TimeoutError):
        sock.recv(100)
    sock.settimeout(SOCKET_TIMEOUT)


@pytest.mark.parametrize("threads", [2, 4])
def test_a_pool_of_n_threads_serves_exactly_n_clients_at_once(threads: int) -> None:
    with ServerProcess("--arch", "threaded", "--threads", str(threads)) as server:
        clients = [served_connection(server.port) for _ in range(threads)]
        try:
            with connect(server.port) as waiting:
                waiting.sendall(QUESTION)
                assert_not_answered(waiting)
                clients.pop().close()  # frees one thread, which takes the waiting client
                assert read_answers(waiting, 1) == [ANSWER]
        finally:
            for client in clients:
                client.close()


@pytest.mark.parametrize("arch", CONCURRENT)
def test_past_max_connections_a_client_is_told_busy_and_closed(arch: str) -> None:
    with ServerProcess("--arch", arch, "--max-connections", "2", "--metrics-port", "0") as server:
        first, second = served_connection(server.port), served_connection(server.port)
        try:
            with connect(server.port) as third:
                third.sendall(QUESTION)
                assert read_until_closed(third) == ERROR_BUSY
            first.close()
            wait_for(lambda: is_served(server.port))  # its slot is given back
        finally:
            first.close()
            second.close()
        assert server.metrics_url is not None
        metrics = urllib.request.urlopen(server.metrics_url, timeout=SOCKET_TIMEOUT).read()
        assert b'zenserve_requests_total{outcome="busy"} ' in metrics
        assert b'zenserve_requests_total{outcome="busy"} 0.0' not in metrics


@pytest.mark.parametrize("arch", BLOCKING)
def test_too_long_is_read_even_while_the_client_keeps_sending(arch: str) -> None:
    """Closing with unread bytes would reset the connection and destroy the error."""
    with ServerProcess("--arch", arch) as server:
        for _ in range(3):
            with connect(server.port) as client:
                client.sendall(QUESTION + b"x" * 300_000)
                assert read_until_closed(client) == ANSWER + ERROR_TOO_LONG


@pytest.mark.parametrize("arch", BLOCKING)
def test_an_idle_client_is_closed_after_the_idle_timeout(arch: str) -> None:
    with ServerProcess("--arch", arch, "--idle-timeout", "0.2s") as server:
        with served_connection(server.port) as idle:
            assert read_until_closed(idle) == b""
        assert ask(server.port) == ANSWER


@pytest.mark.parametrize("arch", BLOCKING)
def test_a_question_trickling_in_is_cut_off_by_the_request_timeout(arch: str) -> None:
    with ServerProcess("--arch", arch, "--idle-timeout", "20s",
                       "--request-timeout", "0.3s") as server:
        with served_connection(server.port) as slow:
            slow.sendall(QUESTION[:5])
            assert read_until_closed(slow) == b""
        assert ask(server.port) == ANSWER


@pytest.mark.parametrize("arch", BLOCKING)
def test_sigterm_inside_a_question_answers_it_then_closes(arch: str) -> None:
    with ServerProcess("--arch", arch) as server, served_connection(server.port) as client:
        client.sendall(QUESTION[:10])
        server.process.send_signal(signal.SIGTERM)
        # The stop reaches the conversation mid-question: it waits for the rest.
        assert_not_answered(client)
        client.sendall(QUESTION[10:])
        assert read_until_closed(client) == ANSWER
        assert server.process.wait(timeout=20) == 0


@pytest.mark.parametrize("arch", BLOCKING)
def test_an_unfinished_question_is_closed_at_the_graceful_timeout(arch: str) -> None:
    with ServerProcess("--arch", arch, "--graceful-timeout", "0.3s") as server, \
            served_connection(server.port) as client:
        client.sendall(QUESTION[:10])
        server.process.send_signal(signal.SIGTERM)
        assert read_until_closed(client) == b""
        assert server.process.wait(timeout=20) == 0


@pytest.mark.parametrize("arch", CONCURRENT)
def test_sigterm_closes_idle_clients_at_once_and_exits_zero(arch: str) -> None:
    with ServerProcess("--arch", arch) as server:
        idle = [served_connection(server.port) for _ in range(3)]
        try:
            server.process.send_signal(signal.SIGTERM)
            for sock in idle:
                assert read_until_closed(sock) == b""
            assert server.process.wait(timeout=20) == 0
        finally:
            for sock in idle:
                sock.close()


@pytest.mark.parametrize("arch", ["threaded", "socketserver"])
@pytest.mark.parametrize("kind", ["block", "cpu"])
def test_the_cost_knob_is_spent_in_each_clients_thread(arch: str, kind: str) -> None:
    with ServerProcess("--arch", arch, "--cost", "20ms", "--cost-kind", kind) as server:
        clients = [connect(server.port) for _ in range(3)]
        try:
            for sock in clients:
                sock.sendall(QUESTION * 2)
            for sock in clients:
                assert read_answers(sock, 2) == [ANSWER, ANSWER]
        finally:
            for sock in clients:
                sock.close()


@pytest.mark.parametrize("arch", BLOCKING)
def test_a_client_that_never_reads_is_closed_at_the_graceful_timeout(
    arch: str, tmp_path: Path
) -> None:
    table = tmp_path / "long_answers.json"
    table.write_text(json.dumps({"Q?": "a" * 10_000 + "."}))
    with ServerProcess("--arch", arch, "--aphorisms", str(table),
                       "--graceful-timeout", "0.3s") as server, connect(server.port) as client:
        client.sendall(b"Q?")
        assert read_answers(client, 1) == [b"a" * 10_000 + b"."]  # it is conversing
        client.sendall(b"Q?" * 1000)  # 10 MB of answers that are never read
        server.process.send_signal(signal.SIGTERM)
        # Stuck sending, it would be freed by the idle timeout (60 s), far later.
        assert server.process.wait(timeout=10) == 0


# Start the server with few file descriptors: a few dozen clients exhaust them.
FEW_FDS_LAUNCHER = (
    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32)); "
    "os.execv(sys.executable, [sys.executable, '-m', 'zenserve', 'serve', *sys.argv[1:]])"
)


@pytest.mark.parametrize("arch", BLOCKING)
def test_running_out_of_file_descriptors_is_survived(arch: str) -> None:
    command = [sys.executable, "-c", FEW_FDS_LAUNCHER, "-p", "0", "--arch", arch]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            port = int(process.stdout.readline().rpartition(":")[2])
            crowd = [connect(port) for _ in range(40)]
            for sock in crowd:
                sock.sendall(QUESTION)
            for sock in crowd:
                sock.close()
            wait_for(lambda: is_served(port))
            assert process.poll() is None
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            process.kill()


def threads_taking(pid: int, signum: int) -> list[int]:
    """The threads of ``pid`` other than the main one that do not block ``signum``."""
    takers = []
    for name in sorted(os.listdir(f"/proc/{pid}/task")):
        try:
            status = Path(f"/proc/{pid}/task/{name}/status").read_text()
        except FileNotFoundError:
            continue  # the thread ended meanwhile (a finished scrape)
        blocked = int(status.split("SigBlk:")[1].split()[0], 16)
        if int(name) != pid and not blocked & (1 << (signum - 1)):
            takers.append(int(name))
    return takers


@pytest.mark.parametrize("arch", BLOCKING)
def test_server_signals_reach_the_main_thread_even_with_metrics_threads(arch: str) -> None:
    """Every other thread blocks SIGTERM, so the kernel hands it to the main thread,
    which is interrupted even while blocked in recv() on an idle client."""
    with ServerProcess("--arch", arch, "--metrics-port", "0") as server, \
            connect(server.port) as idle:
        idle.sendall(QUESTION)
        assert read_answers(idle, 1) == [ANSWER]
        assert server.metrics_url is not None
        with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
            assert response.status == 200  # the scrape threads exist now
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            assert threads_taking(server.process.pid, signum) == []
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) == 0
