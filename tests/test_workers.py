"""--workers N: supervision, replacement, the parent's death, graceful stop, logging."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import psutil
import pytest

from tests.helpers import (
    ANSWER,
    QUESTION,
    ask,
    connect,
    is_gone,
    live_children,
    read_answers,
    read_until_closed,
    wait_for,
)
from zenserve.config import MAX_WORKERS
from zenserve.process import ServerProcess
from zenserve.servers import ARCHITECTURES
from zenserve.worker_pool import (
    FIRST_BACKOFF_SECONDS,
    MAX_BACKOFF_SECONDS,
    MIN_HEALTHY_SECONDS,
    Exit,
    WorkerPool,
)

ALL = list(ARCHITECTURES)


def worker_pids(server: ServerProcess) -> list[int]:
    """The supervisor's children that are still running (zombies are dead workers)."""
    return [child.pid for child in live_children(server.process.pid)]


@pytest.mark.parametrize("architecture", ALL)
def test_a_worker_killed_with_sigkill_is_replaced(architecture: str) -> None:
    with ServerProcess("--arch", architecture, "--workers", "2") as server:
        before = worker_pids(server)
        assert len(before) == 2
        victim, survivor = before
        os.kill(victim, signal.SIGKILL)
        # The shared listener keeps serving through the survivor meanwhile.
        for _ in range(5):
            assert ask(server.port) == ANSWER
        wait_for(lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server))
        assert survivor in worker_pids(server)
        for _ in range(5):
            assert ask(server.port) == ANSWER
        assert server.stop() == 0


@pytest.mark.parametrize("architecture", ALL)
def test_killing_the_parent_takes_the_workers_with_it(architecture: str) -> None:
    with ServerProcess("--arch", architecture, "--workers", "2") as server:
        workers = [psutil.Process(pid) for pid in worker_pids(server)]
        assert len(workers) == 2
        talking = connect(server.port)  # a worker in mid-conversation goes too
        try:
            talking.sendall(QUESTION)
            assert read_answers(talking, 1) == [ANSWER]
            server.process.kill()
            server.process.wait(timeout=10)
            wait_for(lambda: all(is_gone(worker) for worker in workers))
            assert read_until_closed(talking) == b""
        finally:
            talking.close()
            for worker in workers:
                if not is_gone(worker):
                    worker.kill()


@pytest.mark.parametrize("architecture", ALL)
def test_sigterm_during_traffic_with_workers_loses_no_answer(architecture: str) -> None:
    """Clients with answers in flight when SIGTERM comes get every one, and the exit is 0."""
    batch, clients = 20, 2
    stopping = threading.Event()
    progress = [0] * clients
    last_batch_sent = [threading.Event() for _ in range(clients)]

    def client(number: int, port: int) -> bytes:
        with connect(port) as sock:
            while not stopping.is_set() and progress[number] < 500:
                sock.sendall(QUESTION * batch)
                assert read_answers(sock, batch) == [ANSWER] * batch
                progress[number] += 1
            sock.sendall(QUESTION * batch)  # in flight when the signal comes
            last_batch_sent[number].set()
            return read_until_closed(sock)

    # 2 ms per answer keeps each last batch of 20 in flight for about 40 ms.
    args = ("--arch", architecture, "--workers", "2", "--cost", "2ms")
    with ServerProcess(*args) as server, ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, number, server.port) for number in range(clients)]
        wait_for(lambda: min(progress) >= 2 or any(future.done() for future in futures))
        stopping.set()
        for sent in last_batch_sent:
            assert sent.wait(10) or _raise_first_error(futures)
        server.process.send_signal(signal.SIGTERM)
        for future in futures:
            assert future.result(timeout=30) == ANSWER * batch
        assert server.process.wait(timeout=30) == 0


def _raise_first_error(futures: list[Future[bytes]]) -> bool:
    for future in futures:
        if future.done():
            future.result()
    return False


@pytest.mark.slow
def test_a_worker_that_will_not_stop_is_killed_at_the_deadline() -> None:
    args = ("--arch", "single", "--workers", "2", "--graceful-timeout", "0.5s")
    with ServerProcess(*args, stderr=subprocess.PIPE) as server:
        frozen = worker_pids(server)[0]
        os.kill(frozen, signal.SIGSTOP)  # cannot handle SIGTERM; SIGKILL still works
        try:
            assert server.stop(signal.SIGTERM) == 0
            assert not psutil.pid_exists(frozen)  # killed and reaped by the supervisor
        finally:
            if psutil.pid_exists(frozen):
                os.kill(frozen, signal.SIGKILL)
        assert server.process.stderr is not None
        assert "still running at the stop deadline; killing them" in server.process.stderr.read()


def test_by_default_only_errors_are_logged() -> None:
    with ServerProcess("--workers", "2", stderr=subprocess.PIPE) as server:
        for _ in range(3):
            assert ask(server.port) == ANSWER
        victim = worker_pids(server)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(worker_pids(server)) == 2 and victim not in worker_pids(server))
        assert server.stop() == 0
        assert server.process.stderr is not None
        lines = server.process.stderr.read().splitlines()
    assert len(lines) == 1, lines
    assert "WARNING" in lines[0]
    assert f"(pid {victim}) killed by SIGKILL; replacing it" in lines[0]


def test_verbose_logs_name_the_worker_that_served() -> None:
    with ServerProcess("--workers", "2", "-v", stderr=subprocess.PIPE) as server:
        workers = set(worker_pids(server))
        assert ask(server.port) == ANSWER
        assert server.stop() == 0
        assert server.process.stderr is not None
        lines = server.process.stderr.read().splitlines()
    accepted = [line for line in lines if "Accepted connection from" in line]
    assert len(accepted) == 1, lines
    # "DATE TIME PID LEVEL message"
    assert int(accepted[0].split()[2]) in workers


def test_negative_workers_is_a_one_line_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "serve", "-p", "0", "--workers", "-1"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "zenserve serve: error: --workers must be 0 (serve in this process) or more"
    ]


def test_running_out_of_descriptors_while_starting_workers_is_one_line() -> None:
    """A low open-file limit: the parent cannot make an accept turn for every event loop."""
    def low_file_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "serve", "-p", "0", "--arch", "epoll",
         "--workers", str(MAX_WORKERS)],
        capture_output=True, text=True, timeout=30, preexec_fn=low_file_limit,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # never said it was listening
    assert result.stderr.splitlines() == [
        f"zenserve serve: error: cannot start {MAX_WORKERS} workers: Too many open files "
        "(the limit, ulimit -n, is 40)"
    ]


def test_a_crash_looping_worker_is_refilled_with_growing_delays() -> None:
    """Driven with a made-up clock: each quick death doubles the wait, up to a cap."""
    pool = WorkerPool(1, main=lambda index: 3)  # every worker exits at once with status 3
    now, delays = 1000.0, []
    for _ in range(8):
        pool.fill(now)
        assert pool.alive == 1
        assert reap_one(pool, now).status == 3
        refill_at = pool.next_refill()
        assert refill_at is not None
        delays.append(round(refill_at - now, 6))
        pool.fill(refill_at - 0.001)
        assert pool.alive == 0  # not before its time
        now = refill_at
    first = FIRST_BACKOFF_SECONDS
    assert delays == [first, 2 * first, 4 * first, 8 * first, 16 * first, 32 * first,
                      MAX_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS]
    # A worker that lived long enough is replaced at once, and the count restarts.
    pool.fill(now)
    reap_one(pool, now + MIN_HEALTHY_SECONDS)
    assert pool.next_refill() == now + MIN_HEALTHY_SECONDS
    assert pool.restarts == 8


def reap_one(pool: WorkerPool, now: float) -> Exit:
    exits: list[Exit] = []
    wait_for(lambda: bool(exits.extend(pool.reap(now)) or exits))
    assert len(exits) == 1
    return exits[0]


def test_workers_share_a_socket_inherited_from_systemd() -> None:
    """LISTEN_FDS: the supervisor adopts fd 3, and its workers serve it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        env = {**os.environ, "LISTEN_FDS": "1"}
        # As systemd does: the socket as fd 3, then exec the server.
        launcher = ("import os, sys; os.dup2(int(sys.argv[1]), 3); "
                    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")
        command = [sys.executable, "-c", launcher, str(listener.fileno()),
                   "-m", "zenserve", "serve", "--inherit", "--workers", "2"]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env,
                                   pass_fds=(listener.fileno(),))
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == f"Listening at 127.0.0.1:{port}\n"
        for _ in range(4):
            assert ask(port) == ANSWER
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_a_worker_that_cannot_start_is_a_one_line_error() -> None:
    """An architecture whose module is missing (as uvloop would be) fails in the workers."""
    launcher = (
        "import sys; from zenserve.servers import ARCHITECTURES, Architecture; "
        "ARCHITECTURES['missing'] = Architecture('missing', 'absent', 'no_such_module'); "
        "from zenserve.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", launcher, "serve", "-p", "0", "--arch", "missing",
         "--workers", "2"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert result.stdout == ""  # never said it was listening
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("zenserve serve: error: worker ")
    assert lines[0].endswith(" cannot start: architecture 'missing' needs a package that is "
                             "not installed: zenserve.servers.no_such_module")
