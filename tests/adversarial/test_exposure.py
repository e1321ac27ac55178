"""Access and exposure: loopback by default, a notice when reachable, ``--allow`` enforced."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.adversarial.conftest import HOSTILE_IDS, HOSTILE_SETUPS
from tests.adversarial.harness import Setup, logged_server, read_all_tolerating_reset
from tests.helpers import ANSWER, QUESTION, ask, connect
from zenserve.footprint import process_tree
from zenserve.servers import ARCHITECTURES

NOTICE = "reachable from other hosts"

# The listener is opened before any architecture sees it, by the runner alone
# or by the worker supervisor: one architecture with and without workers covers both.
FIRST = next(iter(ARCHITECTURES))
LISTENER_SETUPS = [(name, extra) for name, extra in HOSTILE_SETUPS if name == FIRST]
LISTENER_IDS = [id_ for id_, (name, _) in zip(HOSTILE_IDS, HOSTILE_SETUPS, strict=True)
                if name == FIRST]


@pytest.fixture(params=LISTENER_SETUPS, ids=LISTENER_IDS)
def listener_setup(request: pytest.FixtureRequest) -> Setup:
    name, extra = request.param
    return ARCHITECTURES[name], ("--arch", name, *extra)


def listening_addresses(pid: int) -> set[str]:
    """The local addresses every process of the server's tree listens on."""
    addresses = set()
    for process in process_tree(pid):
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        addresses |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    return addresses


def test_serve_binds_loopback_by_default_and_says_nothing(
    listener_setup: Setup, tmp_path: Path
) -> None:
    # The metrics endpoint is on too: it must listen on loopback as well.
    with logged_server(listener_setup, tmp_path, "--metrics-port", "0") as server:
        assert server.process.host == "127.0.0.1"
        assert listening_addresses(server.pid) == {"127.0.0.1"}
        assert ask(server.port) == ANSWER
        assert NOTICE not in server.stderr()


def test_binding_every_interface_prints_a_one_line_notice(
    listener_setup: Setup, tmp_path: Path
) -> None:
    # Port 0 on 0.0.0.0 only listens; no traffic leaves this machine.
    with logged_server(listener_setup, tmp_path, "0.0.0.0", "--metrics-port", "0") as server:
        assert server.process.host == "0.0.0.0"
        # Metrics stay on loopback unless --metrics-host says otherwise.
        assert listening_addresses(server.pid) == {"0.0.0.0", "127.0.0.1"}
        notices = [line for line in server.stderr().splitlines() if NOTICE in line]
        assert len(notices) == 1, server.stderr()
        assert "0.0.0.0" in notices[0]


def test_allow_refuses_a_client_outside_the_allowed_networks(
    hostile_setup: Setup, tmp_path: Path
) -> None:
    with logged_server(hostile_setup, tmp_path, "--allow", "10.0.0.0/8",
                       "--metrics-port", "0") as server:
        for _ in range(REFUSED):
            with connect(server.port) as sock:
                with contextlib.suppress(OSError):  # already refused before the question
                    sock.sendall(QUESTION)
                assert read_all_tolerating_reset(sock) == b""
        url = server.process.metrics_url
        assert url is not None
        deadline = time.monotonic() + METRICS_WITHIN  # workers' counts reach the scrape shortly
        while (denied := scrape(url, DENIED)) < REFUSED and time.monotonic() < deadline:
            time.sleep(0.05)
        assert denied == REFUSED, f"metrics count {denied} refused connections of {REFUSED}"
        server.assert_alive()
        server.assert_no_traceback()


REFUSED = 3
DENIED = "zenserve_connections_denied_total"
METRICS_WITHIN = 5.0


def scrape(url: str, metric: str) -> float:
    """The value of one unlabelled metric on the Prometheus page at ``url``."""
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response.read().decode().splitlines():
            name, _, value = line.partition(" ")
            if name == metric:
                return float(value)
    raise AssertionError(f"{metric} is not on {url}")


def test_allow_admits_a_client_inside_an_allowed_network(
    hostile_setup: Setup, tmp_path: Path
) -> None:
    with logged_server(hostile_setup, tmp_path, "--allow", "10.0.0.0/8",
                       "--allow", "127.0.0.0/8") as server:
        for _ in range(3):
            assert ask(server.port) == ANSWER


def test_a_bad_allow_network_is_one_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "serve", "-p", "0", "--allow", "ten/8"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "--allow" in result.stderr
