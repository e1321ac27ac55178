"""Connection-per-request open loop: a request's clock starts at its own connect, not before.

Every load connection is opened before the run, to check the server can be
reached. In connection-per-request mode the connect is part of a request, but
the first request of such a pre-opened connection must not be charged for the
time the connection waited for that request to be due (up to a whole slot
interval: here up to 1.5 s).
"""

from __future__ import annotations

import pytest

from zenserve.load import BenchOptions, run
from zenserve.process import ServerProcess

pytestmark = pytest.mark.timeout(60)


def test_the_first_request_of_a_pre_opened_connection_is_not_charged_for_waiting() -> None:
    # 4 connections at 2 req/s in all: connection i's first request is due i/2 s in.
    with ServerProcess("--arch", "epoll") as server:
        result = run(BenchOptions(port=server.port, connections=4, rate=2.0, duration=2.0,
                                  warmup=0.0, connection_per_request=True, processes=1))
    assert result.requests >= 3 and result.errors_total == 0
    assert result.service_time is not None
    # Charged from the connect made before the run, the late ones would take 0.5-1.5 s.
    assert result.service_time.max < 0.4 * 1000
    assert result.latency.max < 0.4 * 1000
