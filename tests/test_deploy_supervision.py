"""The supervisor's duties: heal workers, reload on SIGHUP, drain on SIGTERM, own the socket."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.deploy_helpers import (
    SOCKET_TIMEOUT,
    deployment,
    environment_without_listen_fds,
    version_of,
    write_release,
)
from tests.deploy_load import LoadClients
from tests.helpers import wait_for
from zenserve.deploy.control import default_control_path


def test_the_control_socket_is_for_its_owner_only(tmp_path: Path) -> None:
    with deployment(write_release(tmp_path, "v1"), tmp_path / "control.sock") as running:
        mode = stat.S_IMODE((tmp_path / "control.sock").stat().st_mode)
        assert mode == 0o600
        second = subprocess.run(
            [sys.executable, "-m", "zenserve", "deploy", "run", str(tmp_path / "v1.toml"), "-p",
             "0", "--control", str(running.control_path)],
            capture_output=True, text=True, timeout=30)
        assert second.returncode == 2 and "another supervisor is using" in second.stderr
        assert running.stop() == 0
    assert not (tmp_path / "control.sock").exists()


def test_the_default_control_path_follows_the_port() -> None:
    assert default_control_path(1060) != default_control_path(1061)
    assert str(os.getuid()) in default_control_path(1060).name


def test_with_port_zero_status_finds_the_supervisor_by_the_port_it_printed(
        tmp_path: Path) -> None:
    """The README's workflow with `-p 0`: the control socket is named after the bound port."""
    release = write_release(tmp_path, "v1")
    environment = dict(environment_without_listen_fds(), XDG_RUNTIME_DIR=str(tmp_path))
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "zenserve", "deploy", "run", str(release), "-p", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environment)
    try:
        listening, control_line = first_lines(supervisor, 2, timeout=30)
        assert listening.startswith("Listening at 127.0.0.1:"), listening
        port = int(listening.rsplit(":", 1)[1])
        control = tmp_path / f"zenserve-deploy-{os.getuid()}-{port}.sock"
        assert control_line == f"Control at {control}"
        status = subprocess.run(
            [sys.executable, "-m", "zenserve", "deploy", "status", "-p", str(port)],
            capture_output=True, text=True, timeout=30, env=environment)
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"zenserve deploy at 127.0.0.1:{port} (control {control}")
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(20) == 0
    finally:
        workers = psutil.Process(supervisor.pid).children() if supervisor.poll() is None else []
        supervisor.kill()
        supervisor.communicate()
        for worker in psutil.wait_procs(workers, timeout=10)[1]:
            worker.kill()


def first_lines(process: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    """The first ``count`` lines ``process`` prints, or fewer if it stops or takes too long."""
    assert process.stdout is not None
    output, deadline = b"", time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while output.count(b"\n") < count and (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            if not (data := os.read(process.stdout.fileno(), 4096)):
                break  # it exited
            output += data
    return output.decode().splitlines()[:count]


def test_a_control_path_that_is_not_a_socket_is_refused_and_kept(tmp_path: Path) -> None:
    release = write_release(tmp_path, "v1")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me\n")  # a stale-socket clean-up used to unlink any file here
    for control, what in ((tmp_path, "a directory"), (notes, "a file that is not a socket")):
        result = subprocess.run(
            [sys.executable, "-m", "zenserve", "deploy", "run", str(release), "-p", "0",
             "--control", str(control)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr == (f"zenserve deploy: error: --control {control} is {what}; "
                                 "give the path of a socket to create\n")
    assert notes.read_text() == "keep me\n"


def test_a_dead_worker_is_replaced(tmp_path: Path) -> None:
    with deployment(write_release(tmp_path, "v1", workers=2), tmp_path / "c.sock") as running:
        with LoadClients(running.port, threads=2, per_request=True, max_seconds=30) as load:
            victim = running.worker_pids("v1")[0]
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: victim not in running.worker_pids("v1")
                     and running.status()["generations"][0]["ready"] == 2)  # type: ignore[index]
            healed = time.monotonic()
            time.sleep(0.3)
        after = [record for record in load.ledger.records if record.sent > healed]
        assert after and not [record for record in after if record.error]
        assert running.status()["generations"][0]["restarts"] == 1  # type: ignore[index]
        events = [event["text"] for event in running.status()["events"]]  # type: ignore[union-attr]
        assert any(f"worker {victim} exited with status -9; replacing it" in text
                   for text in events), events


def test_a_worker_that_stops_answering_its_heartbeat_is_replaced(tmp_path: Path) -> None:
    release = write_release(tmp_path, "v1", workers=2)
    release.write_text(release.read_text().replace('interval = "0.2s"',
                                                   'interval = "0.1s"\ntimeout = "0.5s"'))
    with deployment(release, tmp_path / "c.sock") as running:
        frozen = running.worker_pids("v1")[0]
        os.kill(frozen, signal.SIGSTOP)
        try:
            wait_for(lambda: frozen not in running.worker_pids("v1"), timeout=10)
            wait_for(lambda: len(running.worker_pids("v1")) == 2)
        finally:
            if os.path.exists(f"/proc/{frozen}"):
                os.kill(frozen, signal.SIGKILL)
        events = [event["text"] for event in running.status()["events"]]  # type: ignore[union-attr]
        assert any(f"worker {frozen} killed: no answer to its health check within 0.5s; "
                   "replacing it" in text for text in events), events


def test_sighup_replaces_every_worker_without_a_lost_request(tmp_path: Path) -> None:
    with deployment(write_release(tmp_path, "v1", workers=2), tmp_path / "c.sock") as running:
        before = set(running.worker_pids("v1"))
        with LoadClients(running.port, threads=2, think=0.001, max_seconds=30) as load:
            time.sleep(0.1)
            running.process.send_signal(signal.SIGHUP)
            wait_for(lambda: running.status()["last_result"] is not None, timeout=20)
        assert running.status()["last_result"]["result"] == "promoted"  # type: ignore[index]
        after = set(running.worker_pids("v1"))
        assert len(after) == 2 and not before & after
        assert load.ledger.errors() == [] and len(load.ledger.records) > 50


def test_sigterm_drains_and_exits_zero(tmp_path: Path) -> None:
    with deployment(write_release(tmp_path, "v1", workers=2), tmp_path / "c.sock") as running:
        address = ("127.0.0.1", running.port)
        with socket.create_connection(address, timeout=SOCKET_TIMEOUT) as client:
            client.sendall(b"Beautiful is better than?")
            assert client.recv(100) == b"Ugly in v1."
            client.sendall(b"Explicit is better")  # half a question when SIGTERM arrives
            time.sleep(0.1)
            running.process.send_signal(signal.SIGTERM)
            client.sendall(b" than?")
            assert client.recv(100) == b"Implicit in v1."
            assert client.recv(100) == b""  # then closed at the request boundary
        assert running.process.wait(20) == 0
        with socket.socket() as late:
            late.settimeout(SOCKET_TIMEOUT)
            assert late.connect_ex(("127.0.0.1", running.port)) != 0


def test_a_socket_from_systemd_is_adopted(tmp_path: Path) -> None:
    release = write_release(tmp_path, "v1")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    # systemd passes sockets from fd 3 on; the shell puts ours there.
    command = (f"exec 3<&0 0</dev/null; exec {sys.executable} -m zenserve deploy run "
               f"{release} --inherit --control {tmp_path / 'c.sock'}")
    environment = dict(environment_without_listen_fds(), LISTEN_FDS="1")
    supervisor = subprocess.Popen(["sh", "-c", command], stdin=listener.fileno(),
                                  stdout=subprocess.PIPE, text=True, env=environment)
    listener.close()
    try:
        assert supervisor.stdout is not None
        assert supervisor.stdout.readline().strip() == f"Listening at 127.0.0.1:{port}"
        with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as client:
            client.sendall(b"Beautiful is better than?")
            assert version_of(client.recv(100)) == "v1"
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(20) == 0
    finally:
        supervisor.kill()
        supervisor.communicate()


def test_bad_control_requests_get_an_error_and_change_nothing(tmp_path: Path) -> None:
    with deployment(write_release(tmp_path, "v1"), tmp_path / "c.sock") as running:
        for request in ({"command": "launch"}, {"command": "release", "path": 7},
                        {"command": "release", "path": str(tmp_path / "missing.toml")},
                        {"command": "wait", "deployment": "latest"}, {"command": None}):
            answer = running.client.request(request)  # type: ignore[arg-type]
            assert set(answer) == {"error"}, (request, answer)
        with socket.socket(socket.AF_UNIX) as raw:
            raw.settimeout(SOCKET_TIMEOUT)
            raw.connect(str(running.control_path))
            raw.sendall(b"not json\n")
            assert b"bad request" in raw.recv(1000)
        assert running.status()["stable"]["version"] == "v1"  # type: ignore[index]
        assert running.stop() == 0


def test_workers_follow_a_supervisor_killed_with_sigkill(tmp_path: Path) -> None:
    release = write_release(tmp_path, "v1", workers=2)
    with deployment(release, tmp_path / "c.sock") as running, \
            LoadClients(running.port, threads=2, per_request=True, max_seconds=20):
        time.sleep(0.2)
        assert len(running.children()) >= 2
        running.kill()  # asserts that every worker (spares too) exits by itself
