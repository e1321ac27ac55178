"""Through a real HAProxy: a canary and a blue/green switch with zero lost requests.

Five `zenserve serve` instances (two run v1, two v2, one v3) sit behind an
HAProxy whose configuration is rendered by `zenserve deploy render haproxy`;
`zenserve deploy run --traffic haproxy` moves the weights through HAProxy's
Runtime API while clients keep asking through HAProxy's port.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.deploy_helpers import deployment, free_port, version_of, versioned_table
from tests.deploy_load import LoadClients
from tests.helpers import wait_for
from zenserve.deploy.haproxy import SCRAPE_SECONDS, RuntimeApi
from zenserve.deploy.release import load_release
from zenserve.deploy.render import haproxy_config
from zenserve.process import ServerProcess

HAPROXY = shutil.which("haproxy")
pytestmark = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed "
                                "(.ci/run installs it)")


def table_file(directory: Path, version: str) -> Path:
    path = directory / f"aphorisms-{version}.toml"
    path.write_text("".join(f'"{question.decode()}" = "{answer.decode()}"\n'
                            for question, answer in versioned_table(version).items()))
    return path


def haproxy_release(directory: Path, version: str, servers: dict[str, int],
                    strategy: str, metrics: dict[str, int]) -> Path:
    names = ", ".join(f'"{name}"' for name in servers)
    addresses = ", ".join(f'"127.0.0.1:{port}"' for port in servers.values())
    urls = ", ".join(f'"http://127.0.0.1:{metrics[name]}/metrics"' for name in servers)
    path = directory / f"{version}.toml"
    path.write_text(
        f'version = "{version}"\narchitecture = "epoll"\n'
        f'[service]\naphorisms = "aphorisms-{version}.toml"\n'
        f'[limits]\ngraceful_timeout = "5s"\n'
        f'[health]\nstart_timeout = "10s"\n'
        f'[haproxy]\nbackend = "zen"\nservers = [{names}]\naddresses = [{addresses}]\n'
        f"metrics = [{urls}]\n"
        f'[strategy]\nkind = "{strategy}"\nsteps = [25, 100]\npause = "0.5s"\n'
        f"min_requests = 20\nmax_error_ratio = 0.05\n")
    return path


@contextlib.contextmanager
def running_haproxy(config_for: Callable[[int], str],
                    directory: Path) -> Iterator[tuple[int, Path]]:
    """HAProxy in the foreground on a free port (retried if another process takes it)."""
    socket_path = directory / "haproxy.sock"
    for _ in range(5):
        port = free_port()
        config = directory / "haproxy.cfg"
        config.write_text(config_for(port))
        assert HAPROXY is not None
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(config)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: socket_path.exists() or process.poll() is not None)  # noqa: B023
            if process.poll() is None:
                yield port, socket_path
                return
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate()
    raise AssertionError("HAProxy did not start on a free port in five attempts")


def test_canary_and_blue_green_through_haproxy_lose_nothing(tmp_path: Path) -> None:
    for version in ("v1", "v2", "v3"):
        table_file(tmp_path, version)
    layout = {"v1": ["blue1", "blue2"], "v2": ["green1", "green2"], "v3": ["cyan1"]}
    with contextlib.ExitStack() as stack:
        ports, metrics = {}, {}
        for version, names in layout.items():
            for name in names:
                metrics[name] = free_port()
                server = stack.enter_context(ServerProcess(
                    "--arch", "epoll", "--aphorisms", str(tmp_path / f"aphorisms-{version}.toml"),
                    "--metrics-port", str(metrics[name])))
                ports[name] = server.port
        releases = [haproxy_release(tmp_path, version, {name: ports[name] for name in names},
                                    "canary" if version == "v2" else "blue-green", metrics)
                    for version, names in layout.items()]
        loaded = [load_release(path) for path in releases]
        port, socket_path = stack.enter_context(running_haproxy(
            lambda port: haproxy_config(loaded, f"127.0.0.1:{port}",
                                        str(tmp_path / "haproxy.sock"), check_interval=0.1),
            tmp_path))
        api = RuntimeApi(socket_path)
        wait_for(lambda: all(api.stats("zen")[("zen", name)]["status"] == "UP"
                             for name in ports))
        running = stack.enter_context(deployment(
            releases[0], tmp_path / "control.sock", "--traffic", "haproxy", "--haproxy-socket",
            str(socket_path), ready_prefix="Driving "))
        with LoadClients(port, threads=2, per_request=True, max_seconds=60) as fresh, \
                LoadClients(port, threads=2, per_connection=20, max_seconds=60) as reused:
            time.sleep(0.3)
            canary = running.release(releases[1])
            after_canary = time.monotonic()
            time.sleep(2 * SCRAPE_SECONDS + 0.1)  # the metrics read after after_canary
            counted_by_v2 = next(generation["answers"] for generation in
                                 running.status()["generations"]  # type: ignore[union-attr]
                                 if generation["version"] == "v2")
            before_switch = time.monotonic()
            switch = running.release(releases[2])
            after_switch = time.monotonic()
            time.sleep(0.3)
        assert canary["result"] == "promoted", canary
        assert switch["result"] == "promoted", switch
        records = fresh.ledger.records + reused.ledger.records
        assert [record for record in records if record.error] == []
        versions = [version_of(record.answer) for record in records]
        assert set(versions) == {"v1", "v2", "v3"}
        # The canary was judged on zenserve's own counts of requests (HAProxy's health
        # checks add a few), not on sessions: most clients ask 20 questions per session.
        answered_by_v2 = sum(record.ended < after_canary for record, version in
                             zip(records, versions, strict=True) if version == "v2")
        assert counted_by_v2 >= answered_by_v2 > 0
        assert {version_of(record.answer) for record in records
                if after_canary < record.sent and record.ended < before_switch} == {"v2"}
        assert {version_of(record.answer) for record in records
                if record.sent > after_switch} == {"v3"}
        stats = api.stats("zen")
        assert {name: stats[("zen", name)]["status"] for name in ports} == {
            "blue1": "MAINT", "blue2": "MAINT", "green1": "MAINT", "green2": "MAINT",
            "cyan1": "UP"}
        status = running.status()
        assert status["stable"]["version"] == "v3"  # type: ignore[index]
        assert running.stop() == 0
