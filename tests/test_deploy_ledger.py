"""The ledger: under continuous load, releases lose nothing and switch every client.

Persistent closed-loop clients and connection-per-request clients ask without
pause through 20 blue/green switches and 20 rolling restarts. Every request
must be answered exactly once (the supervisor's count of answers equals the
clients' count), with no reset, refusal, timeout or short read; and once a
switch is over, only the new generation answers, persistent connections
included (they are handed over at a request boundary, not closed).

The negative control runs the same clients against the naive way: a second
server on the same port with SO_REUSEPORT, then the first one stopped. It
must lose requests, or the harness could not see a loss.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.deploy_helpers import (
    deployment,
    environment_without_listen_fds,
    version_of,
    write_release,
)
from tests.deploy_load import LoadClients
from tests.helpers import read_answers, wait_for
from zenserve.deploy.release import deployable_architectures

SWITCHES = 40  # 20 blue/green switches and 20 rolling restarts, alternating


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_forty_switches_lose_nothing_and_move_every_client(tmp_path: Path) -> None:
    # Rolling restarts replace two workers one at a time; blue/green switches start one.
    releases = [write_release(tmp_path, f"v{index}", "epoll", workers=1 + index % 2)
                for index in range(SWITCHES + 1)]
    switches: list[tuple[float, float, str]] = []
    with deployment(releases[0], tmp_path / "control.sock") as running:
        with LoadClients(running.port, threads=3, max_seconds=100, think=0.001) as persistent, \
                LoadClients(running.port, threads=2, per_request=True,
                            max_seconds=100) as fresh:
            time.sleep(0.2)
            for index, release in enumerate(releases[1:]):
                strategy = "blue-green" if index % 2 == 0 else "rolling"
                started = time.monotonic()
                result = running.release(release, strategy)
                assert result["result"] == "promoted", result
                switches.append((started, time.monotonic(), release.stem))
            time.sleep(0.2)
        records = persistent.ledger.records + fresh.ledger.records
        assert [record for record in records if record.error] == []
        assert len(persistent.ledger.records) > SWITCHES * 10
        assert len(fresh.ledger.records) > SWITCHES * 5
        # Exactly once: the supervisor counted as many answers as the clients received.
        wait_for(lambda: running.status()["answers"] == len(records), timeout=5)
        for (_, ended, version), (next_started, _, _) in zip(
                switches, [*switches[1:], (time.monotonic(), 0.0, "")], strict=True):
            between = {version_of(record.answer) for record in records
                       if ended < record.sent and record.ended < next_started}
            assert between <= {version}, f"after the switch to {version}: {between}"
        assert running.stop() == 0


def test_one_connection_is_handed_across_every_architecture(tmp_path: Path) -> None:
    """Each release runs another architecture; the client's connection moves through all.

    With an io cost, event loops hold framed questions while they wait: a
    connection must not move while any of its questions is unanswered.
    """
    architectures = deployable_architectures()
    releases = [write_release(tmp_path, f"v{index}", architecture,
                              extra_service='cost = "5ms"\ncost_kind = "io"')
                for index, architecture in enumerate(architectures)]
    with deployment(releases[0], tmp_path / "control.sock") as running:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as client:
            for index, release in enumerate(releases):
                if index:
                    result = running.release(release)
                    assert result["result"] == "promoted", (architectures[index], result)
                client.sendall(b"Beautiful is better than?Explicit is better than?")
                answers = read_answers(client, 2)
                assert {version_of(answer) for answer in answers} == {f"v{index}"}, (
                    architectures[index], answers)
        assert running.stop() == 0


def serve_on_shared_port(port: int) -> tuple[subprocess.Popen[str], socket.socket]:
    """`zenserve serve --inherit` on a new SO_REUSEPORT listener bound to ``port``."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
    server = subprocess.Popen(
        [sys.executable, "-m", "zenserve", "serve", "--inherit", "--arch", "epoll"],
        stdin=listener.fileno(), stdout=subprocess.PIPE, text=True,
        env=environment_without_listen_fds())
    assert server.stdout is not None
    assert server.stdout.readline().startswith("Listening at")
    return server, listener


def test_negative_control_naive_reuseport_replacement_loses_requests() -> None:
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    servers = []
    try:
        old, old_listener = serve_on_shared_port(port)
        servers.append(old)
        probe.close()
        with LoadClients(port, threads=3, max_seconds=30) as persistent, \
                LoadClients(port, threads=2, per_request=True, max_seconds=30) as fresh:
            time.sleep(0.2)
            for _ in range(2):
                new, new_listener = serve_on_shared_port(port)
                servers.append(new)
                old_listener.close()
                old.send_signal(signal.SIGTERM)  # stops accepting and closes its listener
                assert old.wait(20) == 0
                old, old_listener = new, new_listener
                time.sleep(0.2)
        old_listener.close()
        lost = persistent.ledger.errors() + fresh.ledger.errors()
        # Each persistent connection of a stopped server loses its next request at least.
        assert len(lost) >= 3, "the harness saw no loss: it cannot prove the deploy tests"
        assert {record.error.split(":")[0] for record in lost} <= {"short read", "reset",
                                                                   "refused", "timeout"}
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()
