"""Prometheus metrics, read from plain-int counters only when someone scrapes.

Nothing here runs per request: architectures bump ``Stats`` fields, and
``StatsCollector`` turns a snapshot of them into metric families at scrape time.
The endpoint is prometheus_client's HTTP server on a daemon thread, bound to
loopback unless ``--metrics-host`` says otherwise.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from zenserve import __version__
from zenserve.config import ServerConfig
from zenserve.errors import ZenserveError
from zenserve.net import describe_address, is_loopback
from zenserve.process import METRICS_PREFIX
from zenserve.signals import threads_leave_signals_to_main

log = logging.getLogger("zenserve.metrics")

ReadCounters = Callable[[], Mapping[str, int]]
ExtraMetrics = Callable[[], Iterable[Metric]]

# outcome label -> the Stats field that counts it
OUTCOMES = (
    ("answered", "answered"),
    ("unknown", "unknown"),
    ("too_long", "too_long"),
    ("busy", "busy"),
    ("internal_error", "internal_errors"),
    ("fault", "faults"),
)


class StatsCollector:
    """A prometheus_client collector over a counter snapshot taken at scrape time.

    ``read`` returns the counters by ``Stats`` field name (one process's
    ``Stats.snapshot``, or the workers' shared totals); ``info`` labels the
    ``zenserve_server_info`` metric; ``extra`` adds metrics of the caller's own
    (the supervisor's worker count, for example).
    """

    def __init__(self, read: ReadCounters, info: Mapping[str, str],
                 extra: ExtraMetrics | None = None) -> None:
        self._read = read
        self._info = dict(info)
        self._extra = extra

    def collect(self) -> Iterator[Metric]:
        counts = self._read()
        yield InfoMetricFamily("zenserve_server", "What is serving: architecture, version, "
                               "deployment generation.", value=self._info)
        yield CounterMetricFamily("zenserve_connections_opened", "Connections accepted.",
                                  value=counts["connections_opened"])
        yield GaugeMetricFamily("zenserve_connections_active", "Connections open now.",
                                value=counts["connections_active"])
        yield CounterMetricFamily("zenserve_connections_denied",
                                  "Connections refused by --allow.",
                                  value=counts["connections_denied"])
        requests = CounterMetricFamily("zenserve_requests", "Requests by outcome.",
                                       labels=["outcome"])
        for outcome, field in OUTCOMES:
            requests.add_metric([outcome], counts[field])
        yield requests
        yield CounterMetricFamily("zenserve_bytes_received", "Bytes read from clients.",
                                  value=counts["bytes_in"])
        yield CounterMetricFamily("zenserve_bytes_sent", "Bytes of answers sent to clients.",
                                  value=counts["bytes_out"])
        if self._extra is not None:
            yield from self._extra()


def server_info(config: ServerConfig, generation: str = "") -> dict[str, str]:
    """Labels of ``zenserve_server_info``; a deployment fills ``generation``."""
    return {
        "architecture": config.architecture,
        "version": __version__,
        "workers": str(config.workers),
        "generation": generation,
    }


class MetricsServer:
    """``/metrics`` over HTTP from a daemon thread, until ``close``."""

    def __init__(self, host: str, port: int, collector: StatsCollector) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        try:
            with threads_leave_signals_to_main():  # its threads inherit the blocked mask
                self._httpd, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as error:
            raise ZenserveError(f"cannot serve metrics on {host}:{port}: "
                                f"{error.strerror or error}") from None
        if not is_loopback(host):
            log.warning("Notice: metrics on %s, reachable from other hosts", host)
        self.address = describe_address(self._httpd.server_address)

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def fileno(self) -> int:
        """The listening socket, which forked workers close (they must not hold the port)."""
        return self._httpd.fileno()

    def close(self) -> None:
        """Stop serving and release the port (waits up to the server's poll interval)."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def start_metrics(config: ServerConfig, read: ReadCounters, extra: ExtraMetrics | None = None,
                  generation: str = "") -> MetricsServer | None:
    """The metrics endpoint ``config`` asks for (``--metrics-port``), or None."""
    if config.metrics_port is None:
        return None
    if not 0 <= config.metrics_port <= 65535:
        raise ZenserveError(f"--metrics-port {config.metrics_port} is not a TCP port")
    collector = StatsCollector(read, server_info(config, generation), extra)
    return MetricsServer(config.metrics_host, config.metrics_port, collector)


def announce_metrics(server: MetricsServer | None) -> None:
    """Print where the metrics are (port 0 picks one), on the line after the readiness line.

    After it, not before: a reader that stops at ``Listening at`` is not
    disturbed, and the endpoint already serves when either line is read.
    """
    if server is not None:
        sys.stdout.write(f"{METRICS_PREFIX}{server.url}\n")
        sys.stdout.flush()
