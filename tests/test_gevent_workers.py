"""gevent's worker pool: the greenlets that take a request that must wait (gevent_connection.py).

The server's side of it (io costs, slow readers, stops) runs in
test_framework_loops.py and the adversarial suite; here the pool itself, on a
real hub: jobs that wait, jobs that fail, workers reused, and a worker killed
while idle (as a stop does) replaced rather than handed a job.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gevent

from tests.helpers import ANSWER, QUESTION, connect, read_answers
from zenserve.process import ServerProcess
from zenserve.servers.gevent_connection import WorkerPool

REPO_ROOT = Path(__file__).resolve().parents[1]

WAIT_SECONDS = 0.01


class PoolRecord:
    """What the jobs did and what the pool reported, in order."""

    def __init__(self) -> None:
        self.done: list[tuple[Any, Any, Any]] = []
        self.failed: list[tuple[Any, str]] = []

    def job(self, connection: Any, arg: Any, worker: Any) -> None:
        gevent.sleep(WAIT_SECONDS)  # a job may wait: the hub goes on meanwhile
        if arg == "fail":
            raise OSError("the client went away")
        self.done.append((connection, arg, worker))

    def report_failure(self, connection: Any, error: BaseException) -> None:
        self.failed.append((connection, type(error).__name__))


def hand_over_from_hub(pool: WorkerPool, record: PoolRecord, connection: str, arg: str) -> None:
    """As the server does: from a hub callback, then let it finish."""
    gevent.get_hub().loop.run_callback(pool.hand_over, record.job, connection, arg)
    gevent.sleep(WAIT_SECONDS * 10)


def test_jobs_run_failures_are_reported_and_workers_are_reused() -> None:
    record = PoolRecord()
    pool = WorkerPool(record.report_failure)
    hand_over_from_hub(pool, record, "first", "a")
    hand_over_from_hub(pool, record, "second", "fail")
    hand_over_from_hub(pool, record, "third", "b")
    assert [(connection, arg) for connection, arg, _ in record.done] == [("first", "a"),
                                                                        ("third", "b")]
    assert record.failed == [("second", "OSError")]
    assert record.done[0][2] is record.done[1][2]  # one worker served all three in turn


def test_a_worker_killed_while_idle_is_replaced() -> None:
    record = PoolRecord()
    pool = WorkerPool(record.report_failure)
    hand_over_from_hub(pool, record, "first", "a")
    first_worker = record.done[0][2]
    gevent.kill(first_worker)
    gevent.sleep(0)
    assert first_worker.dead
    hand_over_from_hub(pool, record, "second", "b")
    assert [(connection, arg) for connection, arg, _ in record.done] == [("first", "a"),
                                                                        ("second", "b")]
    assert record.done[1][2] is not first_worker
    assert record.failed == []


def test_a_user_service_that_waits_cooperatively_is_answered_under_gevent() -> None:
    # The hub answers the built-in table in its callbacks; user code may switch
    # (gevent.sleep, gevent sockets), which only a greenlet may do.
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    with ServerProcess("--arch", "gevent", "--service", "tests.services.cooperative:answer",
                       env=env) as server:
        clients = [connect(server.port) for _ in range(3)]
        try:
            for client in clients:
                client.sendall(QUESTION * 2)
            for client in clients:
                assert read_answers(client, 2) == [ANSWER, ANSWER]
        finally:
            for client in clients:
                client.close()
