"""`zenserve serve --inherit`: inetd's nowait and wait modes, and systemd socket activation.

Each test plays the part of inetd or systemd for real: it binds (and for
nowait accepts) a socket itself and starts the server with it as fd 0 or fd 3.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.helpers import ANSWER, QUESTION, SOCKET_TIMEOUT, ask, connect, read_until_closed
from zenserve.process import READY_PREFIX

SERVE = (sys.executable, "-m", "zenserve", "serve", "--inherit")
# As systemd starts a service: the socket moved to fd 3, LISTEN_FDS=1, and
# LISTEN_PID naming the very process that will serve (exec keeps the pid).
SYSTEMD_LAUNCHER = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.close(int(sys.argv[1])); "
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=sys.argv[2] or str(os.getpid())); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[3:]])"
)


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(SOCKET_TIMEOUT)
        yield listener


@contextmanager
def started(command: list[str], **popen: object) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, text=True, **popen)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def accepted_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """A client connection and the server side of it, as inetd would accept it."""
    client = connect(listener.getsockname()[1])
    server_side, _ = listener.accept()
    return client, server_side


def test_nowait_mode_converses_once_over_fd_0_and_exits_zero() -> None:
    with listening_socket() as listener:
        client, server_side = accepted_pair(listener)
    with client, server_side, started([*SERVE], stdin=server_side.fileno(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        server_side.close()  # inetd closes its copy: the server holds the only one
        client.sendall(QUESTION * 3)
        client.shutdown(socket.SHUT_WR)
        assert read_until_closed(client) == ANSWER * 3
        assert process.wait(timeout=20) == 0
        assert process.stdout is not None
        assert process.stdout.read() == ""  # no readiness line: nothing is listening


def test_nowait_mode_keeps_logs_out_of_the_conversation() -> None:
    """Classic inetd passes the connection as stdin, stdout and stderr alike."""
    with listening_socket() as listener:
        client, server_side = accepted_pair(listener)
    fd = server_side.fileno()
    with client, server_side, started([*SERVE, "-v"], stdin=fd, stdout=fd, stderr=fd) as process:
        server_side.close()
        client.sendall(QUESTION + b"Unknown?")
        client.shutdown(socket.SHUT_WR)
        assert read_until_closed(client) == ANSWER + b"Error: unknown aphorism."
        assert process.wait(timeout=20) == 0


def test_nowait_mode_stops_at_a_request_boundary_on_sigterm() -> None:
    with listening_socket() as listener:
        client, server_side = accepted_pair(listener)
    with client, server_side, started([*SERVE], stdin=server_side.fileno(),
                                      stdout=subprocess.DEVNULL) as process:
        server_side.close()
        assert ask_on(client) == ANSWER  # the conversation is under way
        process.send_signal(signal.SIGTERM)
        assert read_until_closed(client) == b""
        assert process.wait(timeout=20) == 0


def ask_on(sock: socket.socket) -> bytes:
    sock.sendall(QUESTION)
    data = b""
    while not data.endswith(b"."):
        chunk = sock.recv(100)
        assert chunk, "closed before the answer"
        data += chunk
    return data


@pytest.mark.parametrize("arch", ["inetd", "single", "threaded", "forking"])
def test_wait_mode_serves_the_listening_socket_on_fd_0(arch: str) -> None:
    with listening_socket() as listener:
        port = listener.getsockname()[1]
        with started([*SERVE, "--arch", arch], stdin=listener.fileno(),
                     stdout=subprocess.PIPE) as process:
            listener.close()
            assert process.stdout is not None
            assert process.stdout.readline() == f"{READY_PREFIX}127.0.0.1:{port}\n"
            for _ in range(3):
                assert ask(port) == ANSWER
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0


def systemd_command(sock: socket.socket, *serve: str, listen_pid: str = "") -> list[str]:
    return [sys.executable, "-c", SYSTEMD_LAUNCHER, str(sock.fileno()), listen_pid,
            *SERVE[1:], *serve]


def test_systemd_socket_activation_serves_fd_3() -> None:
    with listening_socket() as listener:
        port = listener.getsockname()[1]
        with started(systemd_command(listener, "--arch", "threaded"),
                     pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
                     stdout=subprocess.PIPE) as process:
            listener.close()
            assert process.stdout is not None
            assert process.stdout.readline() == f"{READY_PREFIX}127.0.0.1:{port}\n"
            with connect(port) as first, connect(port) as second:
                assert ask_on(first) == ANSWER
                assert ask_on(second) == ANSWER  # threaded: both at once
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0


def test_systemd_accept_yes_passes_one_connection_on_fd_3() -> None:
    with listening_socket() as listener:
        client, server_side = accepted_pair(listener)
    with client, server_side, started(systemd_command(server_side),
                                      pass_fds=(server_side.fileno(),),
                                      stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL) as process:
        server_side.close()
        client.sendall(QUESTION)
        client.shutdown(socket.SHUT_WR)
        assert read_until_closed(client) == ANSWER
        assert process.wait(timeout=20) == 0


def test_listen_fds_for_another_process_is_not_taken() -> None:
    """LISTEN_PID names someone else: fall back to fd 0, which is no socket here."""
    with listening_socket() as listener:
        result = subprocess.run(systemd_command(listener, listen_pid="1"),
                                pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "zenserve serve: error: --inherit: standard input is not a socket")


def test_nowait_cannot_be_shared_by_workers() -> None:
    with listening_socket() as listener:
        client, server_side = accepted_pair(listener)
    with client, server_side:
        result = subprocess.run([*SERVE, "--workers", "2"], stdin=server_side.fileno(),
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "one client's (inetd nowait)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
