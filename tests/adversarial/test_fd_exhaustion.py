"""Descriptor exhaustion: more connections than the server has descriptors.

The server runs with a low RLIMIT_NOFILE (set on the running process tree,
as `prlimit` does); accept() then fails with EMFILE while connections wait in
the backlog. The accept loop must back off, not spin, not crash, and serve
again once the connections close.
"""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import psutil
import pytest

from tests.adversarial.harness import Setup, logged_server
from tests.helpers import ANSWER, QUESTION, ask, connect
from zenserve.footprint import process_tree

SPARE_DESCRIPTORS = 16  # what the server may open beyond what it holds when ready
CONNECTIONS = 120  # well past the limit
CPU_WINDOW = 1.0
CPU_LIMIT = 0.3  # of one core, for the whole tree; a spinning accept loop takes ~1.0 per process
MAX_LOG_LINES = 200  # backing off must not mean logging every retry


def limit_descriptors(pid: int) -> None:
    """Lower RLIMIT_NOFILE of every process in the tree to what it holds plus a few."""
    for process in process_tree(pid):
        limit = process.num_fds() + SPARE_DESCRIPTORS
        process.rlimit(resource.RLIMIT_NOFILE, (limit, limit))


def got_an_answer(sock: socket.socket) -> bool:
    sock.settimeout(0.0)  # look, do not wait
    try:
        return bool(sock.recv(64))
    except (BlockingIOError, InterruptedError):
        return False


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for process in process_tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@pytest.mark.slow
def test_running_out_of_descriptors_backs_off_and_recovers(
    hostile_setup: Setup, tmp_path: Path, report: list[str]
) -> None:
    with logged_server(hostile_setup, tmp_path, "--idle-timeout", "30s") as server:
        assert ask(server.port) == ANSWER
        limit_descriptors(server.pid)
        clients = []
        try:
            for _ in range(CONNECTIONS):  # the kernel completes them; the server cannot accept
                sock = connect(server.port)
                sock.sendall(QUESTION)
                clients.append(sock)
            cpu_before = tree_cpu_seconds(server.pid)
            time.sleep(CPU_WINDOW)  # a measurement window, not a wait for readiness
            usage = (tree_cpu_seconds(server.pid) - cpu_before) / CPU_WINDOW
            report.append(f"fd exhaustion {' '.join(hostile_setup[1][1:])}: "
                          f"{usage:.0%} of a core while out of descriptors")
            server.assert_alive()
            assert usage < CPU_LIMIT, f"the server used {usage:.0%} of a core: spinning"
            answered = sum(got_an_answer(sock) for sock in clients)
            assert answered < CONNECTIONS, "every client was served: the limit was never reached"
        finally:
            for sock in clients:
                sock.close()
        assert ask(server.port) == ANSWER  # recovered once the connections closed
        server.assert_alive()
        log_lines = server.stderr().count("\n")
        assert log_lines < MAX_LOG_LINES, f"{log_lines} lines of log while backing off"
