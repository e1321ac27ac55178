"""The load generator against tiny test servers and a real zenserve server, on loopback."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.bench_servers import Behaviour, TestServer
from tests.helpers import wait_for
from zenserve.cli import main
from zenserve.load import ERROR_KINDS, BenchOptions, Progress, ServerUnreachable, run
from zenserve.process import ServerProcess

# Short runs: these tests check what is counted, never how fast.
SHORT = {"duration": 1.0, "warmup": 0.0, "processes": 1}


def options(port: int, **overrides: object) -> BenchOptions:
    settings: dict[str, object] = {"port": port, "connections": 4, **SHORT}
    settings.update(overrides)
    return BenchOptions(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
def test_requests_counted_equal_answers_the_server_sent(event_loop: str) -> None:
    with TestServer() as server:
        result = run(options(server.port, event_loop=event_loop))
    assert result.event_loop == event_loop
    assert result.requests > 100
    assert result.errors_total == 0
    assert result.unfinished == 0
    assert result.requests == server.answered


def test_requests_are_split_over_processes_and_still_add_up() -> None:
    with TestServer() as server:
        result = run(options(server.port, connections=3, processes=2))
    assert len(result.worker_cpu_percent) == 2
    assert result.requests == server.answered > 0


def test_latency_of_a_server_that_answers_in_10_ms_reads_about_10_ms() -> None:
    with TestServer(Behaviour(delay=0.010)) as server:
        result = run(options(server.port, connections=2))
    assert result.latency.min >= 9.0
    assert 9.5 <= result.latency.p50 <= 40.0
    # Each connection asks one at a time: about 100 answers a second each.
    assert 20 <= result.requests <= 2 * 100
    assert result.service_time is None


def test_open_loop_charges_a_stalled_server_for_every_request_due_during_the_stall() -> None:
    rate = 300.0
    with TestServer(Behaviour(pause_after=int(rate), pause_for=1.0)) as server:
        result = run(options(server.port, connections=2, rate=rate, duration=3.0))
    assert result.service_time is not None
    assert result.latency.p99 >= 500.0
    assert result.service_time.p99 < 500.0
    assert result.service_time.max >= 900.0  # the requests caught by the stall itself
    assert result.errors_total == 0


def test_open_loop_keeps_to_the_rate() -> None:
    with TestServer() as server:
        result = run(options(server.port, rate=400.0, duration=2.0))
    # 400/s for 2 s: exactly 800 due times, every one sent and answered.
    assert result.requests == 800
    assert not result.saturated
    assert result.requests == server.answered


def test_wrong_answers_are_errors_never_successes() -> None:
    with TestServer(Behaviour(wrong_every=3)) as server:
        result = run(options(server.port))
    assert result.errors["wrong_answer"] > 0
    assert result.requests + result.errors["wrong_answer"] == server.answered
    assert result.errors["wrong_answer"] == server.answered // 3


@pytest.mark.parametrize(("behaviour", "kind", "timeout"), [
    (Behaviour(hang_up=True), "short_read", 5.0),
    (Behaviour(reset=True), "reset", 5.0),
    # Only here is a short timeout wanted: elsewhere a busy machine could trip it.
    (Behaviour(silent=True), "timeout", 0.3),
])
def test_failures_are_counted_by_kind(behaviour: Behaviour, kind: str, timeout: float) -> None:
    with TestServer(behaviour) as server:
        result = run(options(server.port, connections=2, timeout=timeout))
    assert result.requests == 0
    assert result.errors[kind] > 0
    assert sum(count for name, count in result.errors.items() if name != kind) == 0


def test_connection_per_request_opens_a_connection_for_every_request() -> None:
    with TestServer() as server:
        result = run(options(server.port, connections=2, connection_per_request=True))
    assert result.requests > 20
    assert result.errors_total == 0
    # One connection per request; at the end each of the 2 may have opened one more, unused.
    assert result.requests <= server.accepted <= result.requests + 2


def test_unknown_and_malformed_traffic_gets_the_answers_the_protocol_promises() -> None:
    with ServerProcess("--arch", "single") as server:
        result = run(options(server.port, connections=1, unknown_ratio=0.2, error_ratio=0.2))
    assert result.requests > 50
    assert result.errors_total == 0, result.errors


def test_progress_is_reported_while_the_run_goes() -> None:
    seen: list[Progress] = []
    with TestServer() as server:
        run(options(server.port, duration=1.0, warmup=0.5), progress=seen.append)
    assert len(seen) >= 3
    assert {"warmup", "measuring"} <= {snapshot.phase for snapshot in seen}
    assert seen[-1].requests >= seen[0].requests


def test_a_server_that_cannot_be_reached_raises() -> None:
    with pytest.raises(ServerUnreachable, match="cannot reach"):
        run(options(_closed_port(), timeout=1.0))


def test_the_command_exits_non_zero_when_the_server_cannot_be_reached() -> None:
    command = [sys.executable, "-m", "zenserve", "bench", "-p", str(_closed_port()),
               "-d", "1s", "--quiet"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode != 0
    assert "cannot reach" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_the_json_has_every_key_of_the_documented_schema(tmp_path: Path) -> None:
    json_path, hgrm_path = tmp_path / "run.json", tmp_path / "run.hgrm"
    with TestServer() as server:
        command = [sys.executable, "-m", "zenserve", "bench", "-p", str(server.port),
                   "-c", "2", "-R", "200", "-d", "2s", "--warmup", "0s", "--processes", "1",
                   "--json", str(json_path), "--hgrm", str(hgrm_path)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    document = json.loads(json_path.read_text())
    assert {"requests", "errors", "duration_s", "throughput_rps", "latency_ms",
            "service_time_ms", "client_cpu_percent", "saturated", "timeline"} <= set(document)
    assert set(document["errors"]) == set(ERROR_KINDS)
    for key in ("latency_ms", "service_time_ms"):
        assert {"p50", "p90", "p99", "p999", "max"} <= set(document[key])
    assert document["requests"] > 0
    assert isinstance(document["saturated"], bool)
    assert len(document["timeline"]) == 2
    assert {"second", "requests", "errors", "throughput_rps", "latency_ms"} <= set(
        document["timeline"][0])
    assert "Percentile" in hgrm_path.read_text()
    assert "latency ms" in completed.stdout


def _closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def sigint_at_default_for_children() -> Iterator[None]:
    """Children started here get SIGINT at its default even if this process ignores it.

    A shell starts background commands with SIGINT ignored (no job control), and
    an ignored signal stays ignored across exec: Python then installs no Ctrl-C
    handler, and bench rightly keeps ignoring it. A handler, unlike an ignore, is
    reset at exec, so the child starts with the default.
    """
    previous = signal.getsignal(signal.SIGINT)
    if previous == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def load_processes(bench: subprocess.Popen[str]) -> list[psutil.Process]:
    """The load processes a running `zenserve bench` spawned."""
    return [child for child in psutil.Process(bench.pid).children()
            if "spawn_main" in " ".join(child.cmdline())]


def test_ctrl_c_stops_the_command_and_its_load_processes() -> None:
    with TestServer() as server:
        command = [sys.executable, "-m", "zenserve", "bench", "-p", str(server.port),
                   "-d", "60s", "--processes", "2", "-c", "2"]
        with sigint_at_default_for_children():
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
        try:
            wait_for(lambda: server.answered > 0, timeout=30)
            workers = load_processes(process)
            assert len(workers) == 2
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=20) == 130
            _, alive = psutil.wait_procs(workers, timeout=10)
            assert not alive
        finally:
            process.kill()
            process.communicate(timeout=10)


def test_a_server_too_slow_for_the_rate_is_a_finding_about_the_server(tmp_path: Path) -> None:
    """10 ms answers on 2 connections: 200/s of 1,000/s, while the generator kept its schedule."""
    json_path = tmp_path / "run.json"
    with TestServer(Behaviour(delay=0.010)) as server:
        command = [sys.executable, "-m", "zenserve", "bench", "-p", str(server.port),
                   "-c", "2", "-R", "1000", "-d", "1s", "--warmup", "0s", "--processes", "1",
                   "--json", str(json_path)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert "the server could not keep up: achieved" in completed.stdout
    assert "of the 1,000 requests/s target" in completed.stdout
    assert "bottleneck" not in completed.stdout + completed.stderr
    document = json.loads(json_path.read_text())
    assert document["saturated"] is False and document["saturation_reasons"] == []
    assert document["server_kept_up"] is False
    assert document["achieved_rps"] < 900


def test_a_generator_that_falls_behind_its_schedule_blames_itself(tmp_path: Path) -> None:
    """The load process is stopped (SIGSTOP) for a second: its sends lag, not the server.

    A slow rate keeps both connections idle between sends almost all the time:
    an answer that was in flight when the process stopped is read late, and
    the generator cannot tell that from a slow server (no arrival timestamps),
    so a connection caught that way blames the server. Either connection alone
    falling behind is enough for the verdict (a third of its sends are late).
    """
    json_path = tmp_path / "run.json"
    with TestServer() as server:
        command = [sys.executable, "-m", "zenserve", "bench", "-p", str(server.port),
                   "-c", "2", "-R", "20", "-d", "3s", "--warmup", "0s", "--processes", "1",
                   "--json", str(json_path)]
        with sigint_at_default_for_children():
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
        try:
            wait_for(lambda: server.answered > 0, timeout=30)
            [worker] = load_processes(process)
            worker.suspend()
            try:
                time.sleep(1.0)  # the stall itself, not a wait for readiness
            finally:
                worker.resume()
            stdout, stderr = process.communicate(timeout=60)
        finally:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, stderr
    assert "warning: the load generator may have been the bottleneck: it fell behind its "\
           "schedule" in stdout, stdout
    assert "the server could not keep up" not in stdout
    document = json.loads(json_path.read_text())
    assert document["saturated"] is True
    # About 20 requests were due during the stall: each was sent late, none was the server's.
    assert document["late_sends"] >= 8
    assert document["max_send_lag_ms"] >= 600


@pytest.mark.parametrize(("arguments", "message"), [
    (("-c", "0"), "-c/--connections must be at least 1"),
    (("--connections", "-3"), "-c/--connections must be at least 1"),
    (("-R", "0"), "-R/--rate must be more than 0 requests/s"),
    (("-d", "0s"), "-d/--duration must be more than 0"),
    (("-d", "soon"), "-d/--duration: bad duration 'soon'"),
    (("--warmup=-1s",), "--warmup: bad duration '-1s'"),
    (("--timeout", "0"), "--timeout must be more than 0"),
    (("--processes", "0"), "--processes must be at least 1"),
    (("--unknown-ratio", "1.5"), "--unknown-ratio must be between 0 and 1"),
    (("--error-ratio", "-0.1"), "--error-ratio must be between 0 and 1"),
    (("--unknown-ratio", "0.6", "--error-ratio", "0.6"),
     "--unknown-ratio plus --error-ratio cannot exceed 1"),
    (("--max-request-bytes", "1"), "--max-request-bytes must be at least 2"),
])
def test_a_bad_option_is_one_line_naming_the_flag(capsys: pytest.CaptureFixture[str],
                                                   arguments: tuple[str, ...],
                                                   message: str) -> None:
    assert main(["bench", "-p", str(_closed_port()), *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"zenserve bench: error: {message}")
    assert captured.err.count("\n") == 1 and captured.out == ""
