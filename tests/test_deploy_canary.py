"""Canary releases: a faulty one is aborted at its first step, a healthy one promoted.

The faulty candidate answers 20% of its questions with ``Error: injected
fault.``; at a 10% step the clients must see about 10% x 20% = 2% of errors
while it runs, then none once it is rolled back. Without traffic nothing is
judged good: the step holds, and is aborted after its hold timeout.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.deploy_helpers import Deployment, deployment, version_of, write_release
from tests.deploy_load import LoadClients, Record
from tests.helpers import wait_for
from zenserve.protocol import ERROR_FAULT

CANARY = 'steps = [10, 50, 100]\npause = "{pause}"\nmin_requests = {minimum}\n' \
         'max_error_ratio = 0.05\nhold_timeout = "{hold}"\n'


def canary(pause: str = "0.3s", minimum: int = 40, hold: str = "20s") -> str:
    return CANARY.format(pause=pause, minimum=minimum, hold=hold)


def event_clock(result: dict[str, object], text: str) -> float:
    """When the first event containing ``text`` happened (monotonic clock)."""
    events = result["events"]
    assert isinstance(events, list)
    return next(clock for event, clock in events if text in event)


def faults(records: list[Record]) -> int:
    return sum(record.answer == ERROR_FAULT for record in records)


def test_a_faulty_canary_is_aborted_at_its_first_step(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1", workers=2)
    faulty = write_release(tmp_path, "v2", workers=2, strategy="canary", fault_rate=0.2,
                           extra_strategy=canary())
    with deployment(stable, tmp_path / "control.sock") as running:
        with LoadClients(running.port, threads=3, per_request=True, max_seconds=40) as load:
            time.sleep(0.2)
            result = running.release(faulty)
            time.sleep(0.3)
        assert result["result"] == "rolled back", result
        assert "step 1 (10%) failed: error ratio" in str(result["reason"])
        records = load.ledger.records
        assert [record for record in records if record.error] == []
        step_started = event_clock(result, "step 1 of 3")
        rolled_back = event_clock(result, "rolled back")
        during = [record for record in records if step_started <= record.sent <= rolled_back]
        # Errors only while the candidate had its share; about 10% x 20% of the requests.
        assert faults(records) == faults(during) > 0
        assert 0.005 <= faults(during) / len(during) <= 0.05, (faults(during), len(during))
        # The candidate's own count of failures is exactly what the clients saw.
        generations = running.status()["generations"]
        assert isinstance(generations, list)
        assert [generation["version"] for generation in generations] == ["v1"]
        assert running.status()["failures"] == faults(records)
        after = [record for record in records if record.sent > rolled_back]
        assert after and {version_of(record.answer) for record in after} == {"v1"}
        assert running.stop() == 0


def test_a_healthy_canary_is_promoted_through_every_step(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1")
    healthy = write_release(tmp_path, "v2", workers=2, strategy="canary",
                            extra_strategy=canary(minimum=20))
    with deployment(stable, tmp_path / "control.sock") as running:
        with LoadClients(running.port, threads=3, per_request=True, max_seconds=40) as load:
            time.sleep(0.2)
            result = running.release(healthy)
            time.sleep(0.2)
        assert result["result"] == "promoted", result
        for step in ("step 1 passed", "step 2 passed", "step 3 passed"):
            event_clock(result, step)
        records = load.ledger.records
        assert [record for record in records if record.error] == []
        # While at 10%, about one request in ten went to the canary.
        first, second = event_clock(result, "step 1 of 3"), event_clock(result, "step 2 of 3")
        at_ten = [version_of(record.answer) for record in records
                  if first < record.sent and record.ended < second]
        assert 0.04 <= at_ten.count("v2") / len(at_ten) <= 0.2
        assert running.status()["stable"] == {
            "version": "v2", "generation": 2, "fingerprint": running.status()["stable"][
                "fingerprint"]}  # type: ignore[index]


def test_without_traffic_nothing_is_promoted(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1")
    idle = write_release(tmp_path, "v2", strategy="canary",
                         extra_strategy=canary(pause="0.1s", minimum=20, hold="1s"))
    with deployment(stable, tmp_path / "control.sock") as running:
        deployment_id = running.begin(idle)
        wait_for(lambda: (running.status()["rollout"] or {}).get("verdict") == "hold")  # type: ignore[union-attr]
        rollout = running.status()["rollout"]
        assert isinstance(rollout, dict)
        assert rollout["step"] == 1 and rollout["verdict_reason"] == "0 of 20 answers needed"
        result = running.wait(deployment_id)
        assert result["result"] == "rolled back"
        assert "held too long: 0 of 20 answers needed" in str(result["reason"])
        assert running.status()["stable"]["version"] == "v1"  # type: ignore[index]


def test_promote_and_abort_by_hand(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1")
    second = write_release(tmp_path, "v2", strategy="canary",
                           extra_strategy=canary(minimum=1000))
    third = write_release(tmp_path, "v3", strategy="canary", extra_strategy=canary(minimum=1000))
    with deployment(stable, tmp_path / "control.sock") as running:
        first_id = running.begin(second)
        wait_for(lambda: (running.status()["rollout"] or {}).get("phase") == "step")  # type: ignore[union-attr]
        busy = running.client.request({"command": "release", "path": str(third)})
        assert "a rollout of v2 is in progress" in str(busy["error"])
        aborted = running.command("abort")
        assert (aborted.returncode, aborted.stdout.strip()) == (0, "deployment 1: v2 aborting")
        assert running.wait(first_id)["result"] == "rolled back"
        again = running.client.request({"command": "abort"})
        assert again == {"error": "no rollout in progress"}
        second_id = running.begin(third)
        wait_for(lambda: (running.status()["rollout"] or {}).get("phase") == "step")  # type: ignore[union-attr]
        assert running.command("promote").returncode == 0
        assert running.wait(second_id)["result"] == "promoted"
        status = running.command("status")
        assert status.returncode == 0 and "stable: v3" in status.stdout
        assert "last rollout: v3 promoted" in status.stdout


def test_a_killed_worker_does_not_change_the_verdict(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1", workers=2)
    healthy = write_release(tmp_path, "v2", workers=2, strategy="canary",
                            extra_strategy=canary(pause="1s", minimum=20))
    faulty = write_release(tmp_path, "v3", workers=2, strategy="canary", fault_rate=0.2,
                           extra_strategy=canary(pause="1s", minimum=200))
    with deployment(stable, tmp_path / "control.sock") as running:
        with LoadClients(running.port, threads=3, per_request=True, max_seconds=40):
            for release, verdict in ((healthy, "promoted"), (faulty, "rolled back")):
                deployment_id = running.begin(release)
                ready: list[int] = []
                wait_for(lambda: bool(ready.extend(candidates_in_step(running)) or ready))  # noqa: B023
                os.kill(ready[0], signal.SIGKILL)
                result = running.wait(deployment_id)
                assert result["result"] == verdict, result
                assert ready[0] not in running.worker_pids(release.stem)
        status = running.status()
        generations = status["generations"]
        assert isinstance(generations, list)
        assert [(generation["version"], generation["ready"]) for generation in generations] == [
            ("v2", 2)]
        events = [event["text"] for event in status["events"]]  # type: ignore[union-attr]
        assert any(f"worker {ready[0]} exited with status -9; replacing it" in text
                   for text in events)


def candidates_in_step(running: Deployment) -> list[int]:
    """The candidate's ready workers, while its rollout is at a step (else nothing)."""
    status = running.status()
    rollout = status["rollout"]
    if not isinstance(rollout, dict) or rollout["phase"] != "step":
        return []
    generations = status["generations"]
    assert isinstance(generations, list)
    return [worker["pid"] for generation in generations if generation["role"] == "candidate"
            for worker in generation["workers"] if worker["state"] == "ready"]


def test_a_ten_percent_step_gets_ten_percent_of_new_connections(tmp_path: Path) -> None:
    """Routed by the supervisor itself, the share is exact, not right on average."""
    stable = write_release(tmp_path, "v1", workers=2)
    held = write_release(tmp_path, "v2", workers=2, strategy="canary",
                         extra_strategy=canary(pause="0.1s", minimum=10**6))
    with deployment(stable, tmp_path / "control.sock") as running:
        with LoadClients(running.port, threads=3, per_request=True, max_seconds=30):
            running.begin(held)
            wait_for(lambda: (running.status()["rollout"] or {}).get("phase") == "step")  # type: ignore[union-attr]
            before = routed(running)
            wait_for(lambda: sum(routed(running).values()) - sum(before.values()) >= 300)
            after = routed(running)
        sent = {version: after[version] - before[version] for version in after}
        share = sent["v2"] / (sent["v1"] + sent["v2"])
        assert abs(share - 0.10) <= 0.02, sent  # SWRR: within a connection or two of 10%


def routed(running: Deployment) -> dict[str, int]:
    generations = running.status()["generations"]
    assert isinstance(generations, list)
    return {generation["version"]: generation["routed"] for generation in generations}
