"""`zenserve soak`: bounded mixed load, a tally, loopback only."""

from __future__ import annotations

import socket
import subprocess
import sys

import psutil
import pytest

from zenserve.process import ServerProcess
from zenserve.servers import ARCHITECTURES

# The first event loop registered: it serves the askers beside 50 slow clients.
EVENT_LOOP = next(name for name, arch in ARCHITECTURES.items() if arch.event_loop)


def soak(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zenserve", "soak", *args],
                          capture_output=True, text=True, timeout=60)


def tally_of(output: str) -> dict[str, str]:
    rows = {}
    for line in output.splitlines()[1:]:
        name, _, value = line.strip().partition("  ")
        rows[name] = value.strip()
    return rows


def test_soak_starts_a_server_and_prints_a_clean_tally() -> None:
    result = soak("--arch", EVENT_LOOP, "--duration", "2s", "--slow", "50")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = tally_of(result.stdout)
    assert int(rows["requests answered"]) > 0
    assert rows["errors"] == "none"
    for kind in ("floods", "half questions", "resets mid-answer", "garbage streams",
                 "slowloris connections opened"):
        assert int(rows[f"hostile: {kind}"]) > 0, rows
    assert "MiB ->" in rows["server memory (RSS)"]
    start_fds, end_fds = map(int, rows["server descriptors"].split(" -> "))
    assert end_fds <= start_fds
    assert rows["server"] == "still running"


def test_soak_targets_a_running_server_with_port() -> None:
    with ServerProcess("--arch", EVENT_LOOP, "--request-timeout", "1s") as server:
        result = soak("-p", str(server.port), "--duration", "1s", "--slow", "10")
        assert result.returncode == 0, result.stdout + result.stderr
        rows = tally_of(result.stdout)
        assert rows["errors"] == "none"
        assert "->" in rows["server descriptors"]  # it found the server's process
        assert server.process.poll() is None


def test_soak_refuses_a_non_loopback_host_in_one_line() -> None:
    result = soak("192.0.2.1", "-p", "1060", "--duration", "1s")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "loopback" in result.stderr


def test_soak_duration_is_bounded() -> None:
    result = soak("--duration", "100000s")
    assert result.returncode == 2
    assert "--duration" in result.stderr


def test_soak_of_a_port_nobody_listens_on_is_one_line_not_a_run_of_refusals() -> None:
    with socket.socket() as placeholder:  # a port that was free a moment ago, and not listening
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
        result = soak("-p", str(port), "--duration", "30s")
    assert result.returncode == 2
    assert result.stdout == ""  # no tally of refusals, no "still running"
    assert result.stderr.count("\n") == 1 and f"127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize("argv", [("--arch", "nosuch"), ("--workers", "-2"),
                                  ("--workers", "65")])
def test_soak_refuses_a_bad_server_option_in_one_line(argv: tuple[str, ...]) -> None:
    result = soak(*argv, "--duration", "1s")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("zenserve soak: error:")


@pytest.mark.parametrize("argv", [("--arch", EVENT_LOOP), ("--workers", "2"),
                                  ("--arch", "single", "--workers", "0")])
def test_soak_refuses_own_server_options_with_a_port(argv: tuple[str, ...]) -> None:
    # Port 1: nothing listens there, so getting past this check would fail differently.
    result = soak("-p", "1", *argv, "--duration", "1s")  # were silently ignored
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("zenserve soak: error: --arch and --workers are for the server "
                             "soak starts; with -p PORT it soaks the server already there: "
                             "give one or the other\n")


def test_soak_says_its_own_server_died_when_it_did() -> None:
    command = [sys.executable, "-m", "zenserve", "soak", "--arch", EVENT_LOOP,
               "--duration", "2s", "--slow", "5"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as soaker:
        try:
            assert soaker.stdout is not None
            assert soaker.stdout.readline().startswith("Soaking")  # its server is ready
            server = psutil.Process(soaker.pid).children()[0]
            server.kill()
            output, errors = soaker.communicate(timeout=40)
        finally:
            soaker.kill()
    # The dead server is soak's unreaped child (a zombie) when soak looks at it.
    assert tally_of("header\n" + output)["server"] == "DIED", output + errors
    assert soaker.returncode == 1
