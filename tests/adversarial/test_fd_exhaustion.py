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

from tests.adversarial.harness import FORKS_PER_CONNECTION, Setup, logged_server, steady_footprint
from tests.helpers import ANSWER, QUESTION, ask, connect
from zenserve.footprint import process_tree

SPARE_DESCRIPTORS = 16  # what the server may open beyond what it holds when ready
# A process per connection hands each client's descriptor to its child and
# closes its own copy, so its accepting process never fills up: it gets no
# spare at all (every accept() fails with EMFILE), and its recovery is tested
# by giving the limit back.
CONNECTIONS = 120  # well past the limit
CPU_WINDOW = 1.0
CPU_LIMIT = 0.3  # of one core, for the whole tree; a spinning accept loop takes ~1.0 per process
MAX_LOG_LINES = 200  # backing off must not mean logging every retry


def limit_descriptors(pid: int, spare: int) -> dict[int, tuple[int, int]]:
    """Lower the soft RLIMIT_NOFILE of the tree to what each holds plus ``spare``.

    Returns every process's limits before, for ``restore_descriptors``.
    """
    before = {}
    for process in process_tree(pid):
        soft, hard = process.rlimit(resource.RLIMIT_NOFILE)
        before[process.pid] = (soft, hard)
        process.rlimit(resource.RLIMIT_NOFILE, (process.num_fds() + spare, hard))
    return before


def restore_descriptors(limits: dict[int, tuple[int, int]]) -> None:
    for pid, limit in limits.items():
        psutil.Process(pid).rlimit(resource.RLIMIT_NOFILE, limit)


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
    forks = hostile_setup[0].name in FORKS_PER_CONNECTION
    with logged_server(hostile_setup, tmp_path, "--idle-timeout", "30s") as server:
        assert ask(server.port) == ANSWER
        # The warm-up client's socket is closed before the limit is counted from.
        steady_footprint(server.pid)
        original_limits = limit_descriptors(server.pid, 0 if forks else SPARE_DESCRIPTORS)
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
        if forks:
            restore_descriptors(original_limits)
        assert ask(server.port) == ANSWER  # recovered once descriptors are free again
        server.assert_alive()
        log_lines = server.stderr().count("\n")
        assert log_lines < MAX_LOG_LINES, f"{log_lines} lines of log while backing off"
