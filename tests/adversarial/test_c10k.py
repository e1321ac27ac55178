"""C10K: 10,000 concurrent idle connections on every event-loop architecture.

The test process holds the client sockets itself, so it raises its own soft
descriptor limit (the server inherits it). The server's resident memory per
idle connection is reported in the session summary; a normal client must
still be served while all 10,000 are open.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.adversarial.conftest import HOSTILE_IDS, HOSTILE_SETUPS
from tests.adversarial.harness import logged_server, steady_footprint
from tests.helpers import ANSWER, ask
from zenserve.footprint import footprint, settle
from zenserve.hostile import open_idle
from zenserve.servers import ARCHITECTURES

IDLE_CONNECTIONS = 10_000
DESCRIPTORS_NEEDED = IDLE_CONNECTIONS + 1000  # plus what pytest and the server already hold
ACCEPT_TIMEOUT = 30.0
# Not a speed target (benchmarks/ records those): only "no per-connection
# buffers of tens of KiB", which would cost hundreds of MB at this scale.
RSS_PER_CONNECTION_LIMIT = 64 * 1024

EVENT_LOOP_SETUPS = [(name, extra) for name, extra in HOSTILE_SETUPS
                     if ARCHITECTURES[name].event_loop and not extra]
EVENT_LOOP_IDS = [id_ for id_, (name, extra) in zip(HOSTILE_IDS, HOSTILE_SETUPS, strict=True)
                  if ARCHITECTURES[name].event_loop and not extra]


@pytest.fixture
def many_descriptors() -> Iterator[None]:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it); restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < DESCRIPTORS_NEEDED:
        raise AssertionError(f"the hard descriptor limit {hard} is below {DESCRIPTORS_NEEDED}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, DESCRIPTORS_NEEDED), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.slow
@pytest.mark.usefixtures("many_descriptors")
@pytest.mark.parametrize("event_loop_setup", EVENT_LOOP_SETUPS, ids=EVENT_LOOP_IDS)
def test_ten_thousand_idle_connections_and_a_normal_client_is_served(
    event_loop_setup: tuple[str, tuple[str, ...]], tmp_path: Path, report: list[str]
) -> None:
    name, _ = event_loop_setup
    setup = (ARCHITECTURES[name], ("--arch", name))
    with logged_server(setup, tmp_path, "--idle-timeout", "120s") as server:
        assert ask(server.port) == ANSWER
        before = steady_footprint(server.pid)  # that client's socket closed too
        started = time.monotonic()
        idle = open_idle("127.0.0.1", server.port, IDLE_CONNECTIONS,
                         accepted=lambda: footprint(server.pid).fds - before.fds)
        try:
            held = settle(server.pid, lambda now: now.fds >= before.fds + IDLE_CONNECTIONS,
                          ACCEPT_TIMEOUT)
            assert held.fds >= before.fds + IDLE_CONNECTIONS, (
                f"the server holds {held.fds - before.fds} of {IDLE_CONNECTIONS} connections")
            assert ask(server.port) == ANSWER
            per_connection = (held.rss_bytes - before.rss_bytes) / IDLE_CONNECTIONS
            report.append(f"C10K {name}: {per_connection / 1024:.1f} KiB of server RSS per idle "
                          f"connection ({held.describe()}; opened in "
                          f"{time.monotonic() - started:.1f} s)")
            assert per_connection < RSS_PER_CONNECTION_LIMIT
        finally:
            for sock in idle:
                sock.close()
        assert ask(server.port) == ANSWER
        server.assert_alive()
        server.assert_no_traceback()
