"""Abrupt peers: resets mid-question and mid-answer, half-closes, 10,000 connect-and-close.

No exception escapes (nothing on stderr says Traceback), and the server's
descriptors, threads and processes come back to what they were before.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.adversarial.harness import (
    FORKS_PER_CONNECTION,
    LoggedServer,
    Setup,
    logged_server,
    steady_footprint,
)
from tests.helpers import ANSWER, QUESTION, ask, connect, read_answers, read_until_closed
from zenserve.footprint import Footprint, settle
from zenserve.hostile import reset

STORM = 10_000
# A process per connection pays a fork() for each one: 10,000 forks take
# half a minute or more here, past the suite's budget; the same leak check
# runs on a storm of this size instead.
FORKING_STORM = 1_000
SETTLE_TIMEOUT = 15.0
STORM_DRAIN_TIMEOUT = 45.0  # a loaded machine forks slowly


def warm_up(port: int) -> None:
    """Use every path once (several clients at a time too) before counting."""
    held = [connect(port) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(QUESTION)
        for sock in held:  # closing each in turn lets one-at-a-time servers move on
            assert read_answers(sock, 1) == [ANSWER]
            sock.close()
    finally:
        for sock in held:
            sock.close()
    assert ask(port) == ANSWER


def assert_nothing_leaked(server: LoggedServer, baseline: Footprint) -> None:
    after = settle(server.pid, lambda now: not now.exceeds(baseline), SETTLE_TIMEOUT)
    assert not after.exceeds(baseline), (
        f"leaked: {', '.join(after.exceeds(baseline))} (before {baseline.describe()}; "
        f"after {after.describe()})")
    server.assert_alive()
    server.assert_no_traceback()


@pytest.mark.slow
def test_resets_and_half_closes_leave_nothing_behind(hostile_setup: Setup, tmp_path: Path) -> None:
    with logged_server(hostile_setup, tmp_path, "--idle-timeout", "10s") as server:
        warm_up(server.port)
        baseline = steady_footprint(server.pid)
        for _ in range(50):  # reset in mid-question
            sock = connect(server.port)
            sock.sendall(QUESTION[:10])
            reset(sock)
        for _ in range(20):  # reset in mid-answer: answers still being written
            sock = connect(server.port)
            sock.sendall(QUESTION * 2000)
            reset(sock)
        for _ in range(20):  # half-close after the question: the answer still comes
            with connect(server.port) as sock:
                sock.sendall(QUESTION)
                sock.shutdown(socket.SHUT_WR)
                assert read_until_closed(sock) == ANSWER
        assert ask(server.port) == ANSWER
        assert_nothing_leaked(server, baseline)


@pytest.mark.slow
def test_ten_thousand_connect_and_close_leave_nothing_behind(
    hostile_setup: Setup, tmp_path: Path, report: list[str]
) -> None:
    with logged_server(hostile_setup, tmp_path, "--idle-timeout", "10s") as server:
        warm_up(server.port)
        baseline = steady_footprint(server.pid)
        architecture, _ = hostile_setup
        storm = FORKING_STORM if architecture.name in FORKS_PER_CONNECTION else STORM
        started = time.monotonic()
        for index in range(storm):
            sock = connect(server.port)
            if index % 2:
                reset(sock)  # half of them with an RST, half with a FIN
            else:
                sock.close()
        with connect(server.port) as sock:  # behind every connection of the storm
            sock.settimeout(STORM_DRAIN_TIMEOUT)
            sock.sendall(QUESTION)
            assert read_answers(sock, 1) == [ANSWER]
        report.append(f"storm {' '.join(hostile_setup[1][1:])}: {storm} connect-and-close "
                      f"in {time.monotonic() - started:.1f} s")
        assert_nothing_leaked(server, baseline)
