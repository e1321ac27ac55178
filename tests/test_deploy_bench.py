"""Switches under the project's own load generator: `zenserve bench` sees no error at all.

Bench checks every answer against the table, so the releases here share PEP
20's table and differ in their version and worker count. Its ledger is held
against the supervisor's: every answer bench counted was counted once by a
worker (the server may also have answered the few requests still in flight
when bench stopped counting).
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.deploy_helpers import Deployment, deployment
from tests.helpers import wait_for
from zenserve.load import BenchOptions, BenchResult, run


def release(directory: Path, version: str, workers: int) -> Path:
    path = directory / f"{version}.toml"
    path.write_text(f'version = "{version}"\narchitecture = "asyncio-callbacks"\n'
                    f"workers = {workers}\n"
                    '[health]\ninterval = "0.2s"\n[limits]\ngraceful_timeout = "5s"\n')
    return path


def test_bench_sees_no_error_through_switches(tmp_path: Path) -> None:
    """Closed loop on persistent connections: each is handed over at every switch."""
    releases = [release(tmp_path, f"v{index}", 1 + index % 2) for index in range(13)]
    with deployment(releases[0], tmp_path / "control.sock") as running:
        options = BenchOptions(port=running.port, connections=8, duration=4.0, warmup=0.0,
                               processes=1)
        results: list[BenchResult] = []
        measuring = threading.Event()
        load = threading.Thread(target=lambda: results.append(
            run(options, progress=lambda _: measuring.set())))
        load.start()
        switches = 0
        try:
            assert measuring.wait(30), "bench did not start"
            # Switch, blue/green and rolling in turn, for as long as bench measures.
            for path in releases[1:]:
                strategy = "blue-green" if switches % 2 == 0 else "rolling"
                assert running.release(path, strategy)["result"] == "promoted"
                if not load.is_alive():
                    break
                switches += 1
        finally:
            load.join(30)
        assert switches >= 2
        [result] = results
        assert dict(result.errors) == dict.fromkeys(result.errors, 0)
        assert result.requests > 100
        # Workers report their counts every REPORT_SECONDS: let the last report arrive.
        wait_for(lambda: answers(running) >= result.requests, timeout=10)
        assert 0 <= answers(running) - result.requests <= options.connections
        assert running.stop() == 0


def answers(running: Deployment) -> int:
    """The supervisor's count of answers, as its workers last reported them."""
    answered = running.status()["answers"]
    assert isinstance(answered, int)
    return answered
