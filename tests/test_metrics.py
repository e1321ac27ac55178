"""--metrics-port: what Prometheus scrapes equals what the clients did, alone and across workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import connect, read_answers, read_until_closed, wait_for
from zenserve.metrics import StatsCollector
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_TOO_LONG, ERROR_UNKNOWN
from zenserve.servers import ARCHITECTURES
from zenserve.service import pep20_table
from zenserve.shared_stats import SharedStatsTable
from zenserve.stats import Stats

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

MAX_REQUEST_BYTES = 100
KNOWN = list(pep20_table().items())[:7]
UNKNOWN = [b"What is the answer?", b"Is this zen?", b"\x00\xff?"]
SCRAPE_TIMEOUT = 10.0


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


def scrape(url: str) -> Samples:
    """Every sample at ``url``, over real HTTP."""
    with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT) as response:
        assert response.status == 200
        text = response.read().decode()
    return {key(sample.name, **sample.labels): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def settled(url: str, expected: Samples) -> Samples:
    """Scrape until ``expected`` shows (workers publish every half second), then the last scrape."""
    deadline = time.monotonic() + 10.0
    while True:
        samples = scrape(url)
        if all(samples.get(name) == value for name, value in expected.items()):
            return samples
        if time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def make_traffic(port: int, overlap: bool) -> Samples:
    """7 answered, 3 unknown and 1 too long on 2 connections; the samples they must produce.

    With ``overlap`` the first connection stays open while the second talks,
    so under ``--workers 2`` of ``single`` two different workers must count.
    """
    sent = received = 0
    first = connect(port)
    try:
        for question, answer in [*KNOWN, *((q, ERROR_UNKNOWN) for q in UNKNOWN)]:
            first.sendall(question)
            assert read_answers(first, 1) == [answer]
            sent, received = sent + len(question), received + len(answer)
        if not overlap:
            first.close()
        with connect(port) as second:
            oversized = b"x" * (MAX_REQUEST_BYTES + 1)  # all of it is needed to know it is too long
            second.sendall(oversized)
            assert read_until_closed(second) == ERROR_TOO_LONG
            sent, received = sent + len(oversized), received + len(ERROR_TOO_LONG)
    finally:
        first.close()
    return {
        key("zenserve_connections_opened_total"): 2,
        key("zenserve_connections_active"): 0,
        key("zenserve_connections_denied_total"): 0,
        key("zenserve_requests_total", outcome="answered"): len(KNOWN),
        key("zenserve_requests_total", outcome="unknown"): len(UNKNOWN),
        key("zenserve_requests_total", outcome="too_long"): 1,
        key("zenserve_requests_total", outcome="busy"): 0,
        key("zenserve_requests_total", outcome="internal_error"): 0,
        key("zenserve_requests_total", outcome="fault"): 0,
        key("zenserve_bytes_received_total"): sent,
        key("zenserve_bytes_sent_total"): received,
    }


def assert_counts(samples: Samples, expected: Samples) -> None:
    assert {name: samples.get(name) for name in expected} == expected


def metrics_server(*args: str) -> ServerProcess:
    return ServerProcess(*args, "--metrics-port", "0",
                         "--max-request-bytes", str(MAX_REQUEST_BYTES))


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_counts_equal_what_clients_did(architecture: str) -> None:
    with metrics_server("--arch", architecture) as server:
        assert server.metrics_url is not None
        assert urlsplit(server.metrics_url).hostname == "127.0.0.1"  # loopback by default
        one_at_a_time = ARCHITECTURES[architecture].concurrency == "one"
        expected = make_traffic(server.port, overlap=not one_at_a_time)
        samples = settled(server.metrics_url, expected)
        assert_counts(samples, expected)
        info = key("zenserve_server_info", architecture=architecture, generation="",
                   version="0.1.0", workers="0")
        assert samples[info] == 1
        assert server.stop() == 0


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_counts_add_up_across_workers(architecture: str) -> None:
    with metrics_server("--arch", architecture, "--workers", "2") as server:
        assert server.metrics_url is not None
        expected = make_traffic(server.port, overlap=True)
        samples = settled(server.metrics_url, expected)
        assert_counts(samples, expected)
        assert samples[key("zenserve_workers")] == 2
        assert samples[key("zenserve_worker_restarts_total")] == 0
        assert server.stop() == 0


def test_a_dead_workers_counts_are_kept() -> None:
    with metrics_server("--arch", "single", "--workers", "2") as server:
        assert server.metrics_url is not None
        expected = make_traffic(server.port, overlap=True)
        assert_counts(settled(server.metrics_url, expected), expected)
        parent = psutil.Process(server.process.pid)
        victim = parent.children()[0].pid
        os.kill(victim, signal.SIGKILL)
        replaced = {key("zenserve_worker_restarts_total"): 1, key("zenserve_workers"): 2}
        wait_for(lambda: all(scrape(server.metrics_url or "").get(name) == value
                             for name, value in replaced.items()))
        assert_counts(scrape(server.metrics_url), expected)
        assert server.stop() == 0


def test_a_metrics_port_in_use_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "zenserve", "serve", "-p", "0", "--metrics-port", str(port)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"zenserve serve: error: cannot serve metrics on 127.0.0.1:{port}: "
        "Address already in use"
    ]


def test_a_retired_row_keeps_its_counters_but_not_its_gauge() -> None:
    table = SharedStatsTable(2)
    try:
        stats = Stats()
        stats.answered, stats.bytes_out, stats.connections_active = 5, 50, 3
        table.publish(0, stats)
        table.publish(1, stats)
        assert table.totals()["answered"] == 10
        assert table.totals()["connections_active"] == 6
        table.retire(0)
        assert table.read_row(0) == Stats().snapshot()
        totals = table.totals()
        assert (totals["answered"], totals["bytes_out"], totals["connections_active"]) == (
            10, 100, 3)
    finally:
        table.close()


def test_injected_faults_are_their_own_outcome() -> None:
    stats = Stats()
    stats.answered, stats.faults, stats.internal_errors = 7, 3, 1
    collector = StatsCollector(stats.snapshot, {"architecture": "test"})
    requests = {sample.labels["outcome"]: sample.value
                for family in collector.collect() if family.name == "zenserve_requests"
                for sample in family.samples}
    assert requests == {"answered": 7, "unknown": 0, "too_long": 0, "busy": 0,
                        "internal_error": 1, "fault": 3}
