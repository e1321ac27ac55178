"""The closed loop's fast lane: used in steady state, counting what the protocol path counts."""

from __future__ import annotations

import asyncio

import pytest

from tests.bench_servers import Behaviour, TestServer
from zenserve.load import BenchOptions, run
from zenserve.load.connection import Shared
from zenserve.load.eventloop import new_event_loop
from zenserve.load.fastlane import FastLane, lane_available
from zenserve.load.loops import ClosedLoopConnection
from zenserve.load.mix import build_cycle, starting_point
from zenserve.service import pep20_table

pytestmark = pytest.mark.skipif(not lane_available(), reason="the fast lane needs select.epoll")

SHORT = {"duration": 1.0, "warmup": 0.0, "processes": 1, "connections": 4}
# Answers per connection before the server misbehaves: by then the connection is in the lane.
ANSWERS_BEFORE_TROUBLE = 20


def options(port: int, **overrides: object) -> BenchOptions:
    settings: dict[str, object] = {"port": port, **SHORT}
    settings.update(overrides)
    return BenchOptions(**settings)  # type: ignore[arg-type]


def test_connections_in_steady_state_are_served_by_the_lane() -> None:
    loop = new_event_loop("auto")
    shared = Shared(loop, "127.0.0.1", 0, 2.0, False)
    lane = FastLane(loop, shared.latency)
    shared.lane = lane
    cycle = build_cycle(tuple(pep20_table().items()), 0.0, 0.0, 4096, False, 1060)
    largest_lane = 0

    async def converse(port: int) -> None:
        nonlocal largest_lane
        shared.port = port
        connections = [ClosedLoopConnection(shared, starting_point(cycle, index))
                       for index in range(3)]
        shared.started = True
        for connection in connections:
            connection.advance()
        for _ in range(40):
            await asyncio.sleep(0.005)
            largest_lane = max(largest_lane, lane.size)
        shared.stopping = True
        for connection in connections:
            connection.abandon()
        await asyncio.sleep(0.05)  # connection_lost callbacks

    try:
        with TestServer() as server:
            loop.run_until_complete(asyncio.wait_for(converse(server.port), timeout=10))
    finally:
        lane.close()
        loop.close()
    assert largest_lane == 3
    assert lane.size == 0  # every connection left before it closed
    assert shared.latency.count() > 100
    assert sum(shared.errors) == 0


@pytest.mark.parametrize("fast_lane", [True, False])
def test_answers_split_over_two_reads_are_counted_once_and_correct(fast_lane: bool) -> None:
    with TestServer(Behaviour(split=True)) as server:
        result = run(options(server.port, fast_lane=fast_lane))
    assert result.requests > 50
    assert result.errors_total == 0
    assert result.requests == server.answered


@pytest.mark.parametrize("fast_lane", [True, False])
@pytest.mark.parametrize(("behaviour", "kind", "timeout"), [
    (Behaviour(hang_up=True, misbehave_after=ANSWERS_BEFORE_TROUBLE), "short_read", 5.0),
    (Behaviour(reset=True, misbehave_after=ANSWERS_BEFORE_TROUBLE), "reset", 5.0),
    (Behaviour(silent=True, misbehave_after=ANSWERS_BEFORE_TROUBLE), "timeout", 0.3),
])
def test_failures_in_steady_state_are_counted_by_kind(behaviour: Behaviour, kind: str,
                                                      timeout: float, fast_lane: bool) -> None:
    with TestServer(behaviour) as server:
        result = run(options(server.port, timeout=timeout, fast_lane=fast_lane))
    assert result.requests >= ANSWERS_BEFORE_TROUBLE
    assert result.requests == server.answered
    assert result.errors[kind] > 0
    assert sum(count for name, count in result.errors.items() if name != kind) == 0


def test_wrong_answers_count_the_same_with_and_without_the_lane() -> None:
    for fast_lane in (True, False):
        with TestServer(Behaviour(wrong_every=3)) as server:
            result = run(options(server.port, fast_lane=fast_lane))
        assert result.errors["wrong_answer"] == server.answered // 3 > 0
        assert result.requests + result.errors["wrong_answer"] == server.answered
