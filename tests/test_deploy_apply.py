"""`zenserve deploy apply`: idempotent, with exit statuses a CD pipeline can use."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from tests.deploy_helpers import deployment, write_release
from tests.deploy_load import LoadClients
from tests.helpers import wait_for

CANARY = 'steps = [20, 100]\npause = "0.2s"\nmin_requests = 20\nmax_error_ratio = 0.05\n'


def test_apply_promotes_rolls_back_and_does_nothing_twice(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1")
    healthy = write_release(tmp_path, "v2", workers=2)
    faulty = write_release(tmp_path, "v3", strategy="canary", fault_rate=0.3,
                           extra_strategy=CANARY)
    with deployment(stable, tmp_path / "control.sock") as running:
        unchanged = running.command("apply", str(stable))
        assert unchanged.returncode == 0
        assert "v1 is already stable: nothing to do" in unchanged.stdout
        promoted = running.command("apply", str(healthy))
        assert promoted.returncode == 0, promoted.stderr
        assert promoted.stdout.splitlines()[-1] == "v2 promoted: generation 2 (v2) is stable"
        again = running.command("apply", str(healthy))
        assert (again.returncode, again.stdout.strip()) == (0, "v2 is already stable: "
                                                               "nothing to do")
        with LoadClients(running.port, threads=2, per_request=True, max_seconds=30):
            rolled_back = running.command("apply", str(faulty))
        assert rolled_back.returncode == 1, rolled_back.stdout + rolled_back.stderr
        assert "v3 rolled back: step 1 (20%) failed: error ratio" in rolled_back.stdout
        assert running.status()["stable"]["version"] == "v2"  # type: ignore[index]


def test_apply_refuses_what_it_cannot_do_with_exit_status_2(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1")
    slow = write_release(tmp_path, "v2", strategy="canary",
                         extra_strategy=CANARY.replace("20\n", "100000\n"))
    other = write_release(tmp_path, "v3")
    with deployment(stable, tmp_path / "control.sock") as running:
        changed = tmp_path / "v1-changed.toml"
        changed.write_text(stable.read_text().replace("workers = 1", "workers = 2"))
        same_version = running.command("apply", str(changed))
        assert same_version.returncode == 2
        assert "version v1 is already stable with different content" in same_version.stderr
        broken = tmp_path / "broken.toml"
        broken.write_text('version = "v9"\narchitecture = "epoll"\nworkers = -1\n')
        bad = running.command("apply", str(broken))
        assert bad.returncode == 2 and "workers: must be between 1 and 64" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
        first = subprocess.Popen(
            [sys.executable, "-m", "zenserve", "deploy", "apply", str(slow), "--control",
             str(running.control_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        try:
            wait_for(lambda: (running.status()["rollout"] or {}).get("followers") == 1)  # type: ignore[union-attr]
            busy = running.command("apply", str(other))
            assert busy.returncode == 2 and "a rollout of v2 is in progress" in busy.stderr
            # Applying the release that is rolling out follows it instead of failing.
            attached: list[subprocess.CompletedProcess[str]] = []
            follower = threading.Thread(
                target=lambda: attached.append(running.command("apply", str(slow))))
            follower.start()
            wait_for(lambda: running.status()["rollout"]["followers"] == 2)  # type: ignore[index]
            assert "error" not in running.client.request({"command": "promote"})
            follower.join(30)
            assert attached[0].returncode == 0 and "(already in progress)" in attached[0].stdout
            assert first.wait(30) == 0
        finally:
            first.kill()
            first.communicate()


def test_apply_without_a_supervisor_says_so(tmp_path: Path) -> None:
    release = write_release(tmp_path, "v1")
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "deploy", "apply", str(release), "--control",
         str(tmp_path / "nobody.sock")], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "no deployment supervisor at" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_release_that_cannot_start_is_rolled_back_with_its_reason(tmp_path: Path) -> None:
    stable = write_release(tmp_path, "v1")
    broken = tmp_path / "v2.toml"
    broken.write_text('version = "v2"\narchitecture = "epoll"\n'
                      '[service]\ncallable = "no_such_module:answer"\n'
                      '[strategy]\nkind = "blue-green"\n')
    with deployment(stable, tmp_path / "control.sock") as running:
        result = running.command("apply", str(broken))
        assert result.returncode == 1
        assert result.stdout.splitlines()[-1].startswith(
            "v2 rolled back: generation 2 (v2) failed to start: cannot import service module "
            "'no_such_module'")
        assert running.status()["stable"]["version"] == "v1"  # type: ignore[index]
