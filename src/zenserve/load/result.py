"""A load run's result: merged from the workers' reports, with the stable JSON schema."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zenserve.load.connection import LATE_LIMIT
from zenserve.load.options import BenchOptions
from zenserve.load.outcomes import ERROR_KINDS
from zenserve.load.recorder import LatencySummary, encode, merge
from zenserve.load.worker import WorkerReport

SCHEMA = "zenserve.bench/1"
# A load process busier than this share of one core was a bottleneck itself.
CPU_SATURATION_PERCENT = 90.0
# Open loop: when at least this share of the requests were sent more than
# LATE_LIMIT behind their ideal schedule, the generator fell behind it.
LATE_SHARE = 0.1
# Open loop: finishing less than this share of the target rate, while the
# generator kept its schedule, means the server could not keep up (its slow
# answers kept the connections busy).
RATE_SHORTFALL = 0.9


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One second of the measurement (the last row may be shorter)."""

    second: int
    seconds: float
    requests: int
    errors: int
    latency: LatencySummary

    @property
    def throughput_rps(self) -> float:
        """Correct answers per second in this row."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """One ``timeline`` row of the JSON."""
        return {
            "second": self.second,
            "duration_s": round(self.seconds, 6),
            "requests": self.requests,
            "errors": self.errors,
            "throughput_rps": round(self.throughput_rps, 1),
            "latency_ms": {"p50": self.latency.p50, "p99": self.latency.p99,
                           "max": self.latency.max},
        }


@dataclass(frozen=True)
class BenchResult:
    """What a run measured. ``to_json()`` is the stable schema documented in the README."""

    options: BenchOptions
    requests: int
    errors: Mapping[str, int]
    latency: LatencySummary
    service_time: LatencySummary | None
    worker_cpu_percent: tuple[float, ...]
    coordinator_cpu_percent: float
    worker_cpu_seconds: tuple[float, float]  # user, kernel: all load processes together
    timeline: tuple[TimelineRow, ...]
    unfinished: int
    latency_histogram: str
    service_histogram: str | None
    event_loop: str
    late_sends: int = 0  # open loop: requests sent more than LATE_LIMIT behind the schedule
    max_send_lag: float = 0.0  # open loop: the largest of those lags, in seconds

    @property
    def duration_s(self) -> float:
        """The measured time (the warmup excluded)."""
        return self.options.duration

    @property
    def throughput_rps(self) -> float:
        """Correct answers per second."""
        return self.requests / self.duration_s

    @property
    def errors_total(self) -> int:
        """Requests that did not get their correct answer, of every kind."""
        return sum(self.errors.values())

    @property
    def client_cpu_percent(self) -> float:
        """CPU used by the generator's processes, in percent of one core."""
        return sum(self.worker_cpu_percent) + self.coordinator_cpu_percent

    @property
    def achieved_rps(self) -> float:
        """Requests finished per second, answered or failed (what a schedule is held to)."""
        return (self.requests + self.errors_total) / self.duration_s

    @property
    def saturation_reasons(self) -> tuple[str, ...]:
        """Evidence that the generator itself was the bottleneck: a full core, or a late schedule.

        A rate below the target is not such evidence by itself: a slow server
        keeps the connections waiting for answers (see ``server_kept_up``).
        """
        reasons = [f"load process {index} used {percent:.0f}% of a core"
                   for index, percent in enumerate(self.worker_cpu_percent)
                   if percent >= CPU_SATURATION_PERCENT]
        sent = self.requests + self.errors_total + self.unfinished
        if self.options.open_loop and sent and self.late_sends >= LATE_SHARE * sent:
            reasons.append(f"it fell behind its schedule: {self.late_sends:,} of {sent:,} "
                           f"requests sent over {LATE_LIMIT * 1000:g} ms late while their "
                           f"connection was free (up to {self.max_send_lag * 1000:,.0f} ms)")
        return tuple(reasons)

    @property
    def saturated(self) -> bool:
        """True when the generator was (or may have been) the bottleneck."""
        return bool(self.saturation_reasons)

    @property
    def server_kept_up(self) -> bool | None:
        """Open loop: did the server finish the target rate (90 % of it)? None if not known.

        False is a finding about the server: the generator kept its schedule,
        but requests waited for answers. None in closed loop, and when the
        generator was saturated itself (then a shortfall may be its own).
        """
        rate = self.options.rate
        if rate is None:
            return None
        if self.achieved_rps >= RATE_SHORTFALL * rate:
            return True
        return None if self.saturated else False

    @property
    def rate_line(self) -> str | None:
        """Open loop: the achieved rate against the target, in words."""
        rate = self.options.rate
        if rate is None:
            return None
        return f"achieved {self.achieved_rps:,.0f} of the {rate:,.0f} requests/s target"

    def to_json(self) -> dict[str, Any]:
        """The stable JSON document (``schema`` names its version)."""
        options = self.options
        return {
            "schema": SCHEMA,
            "host": options.host,
            "port": options.port,
            "mode": "open" if options.open_loop else "closed",
            "connections": options.connections,
            "processes": len(self.worker_cpu_percent),
            "connection_per_request": options.connection_per_request,
            "event_loop": self.event_loop,
            "target_rps": options.rate,
            "warmup_s": options.warmup,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "errors": dict(self.errors),
            "errors_total": self.errors_total,
            "unfinished": self.unfinished,
            "throughput_rps": round(self.throughput_rps, 1),
            "latency_ms": self.latency.to_json(),
            "service_time_ms": self.service_time.to_json() if self.service_time else None,
            "client_cpu_percent": round(self.client_cpu_percent, 1),
            "client_cpu_seconds": {"user": round(self.worker_cpu_seconds[0], 3),
                                   "system": round(self.worker_cpu_seconds[1], 3)},
            "saturated": self.saturated,
            "saturation_reasons": list(self.saturation_reasons),
            "achieved_rps": round(self.achieved_rps, 1) if options.open_loop else None,
            "server_kept_up": self.server_kept_up,
            "late_sends": self.late_sends,
            "max_send_lag_ms": round(self.max_send_lag * 1000, 3),
            "mix": {"questions": len(options.questions), "unknown_ratio": options.unknown_ratio,
                    "error_ratio": options.error_ratio},
            "timeline": [row.to_json() for row in self.timeline],
            "latency_hdr": self.latency_histogram,
            "service_time_hdr": self.service_histogram,
        }

    def write_json(self, path: Path) -> None:
        """Write ``to_json()`` to ``path``."""
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    def hgrm(self) -> str:
        """The latency percentile spectrum in HdrHistogram's .hgrm text format (milliseconds)."""
        output = io.BytesIO()
        merge([self.latency_histogram]).output_percentile_distribution(output, 1000)
        return output.getvalue().decode("ascii")


def assemble(options: BenchOptions, reports: list[WorkerReport],
             coordinator_cpu_percent: float) -> BenchResult:
    """Merge the workers' reports: add up counts, add histograms second by second."""
    rows: list[TimelineRow] = []
    latency_parts: list[str] = []
    service_parts: list[str] = []
    errors = dict.fromkeys(ERROR_KINDS, 0)
    for second, intervals in enumerate(zip(*(r.intervals for r in reports), strict=True), 1):
        latency = [interval.latency for interval in intervals]
        latency_parts += latency
        service_parts += [interval.service for interval in intervals if interval.service]
        for interval in intervals:
            for kind, count in zip(ERROR_KINDS, interval.errors, strict=True):
                errors[kind] += count
        rows.append(TimelineRow(
            second=second,
            seconds=intervals[0].seconds,
            requests=sum(interval.answered for interval in intervals),
            errors=sum(sum(interval.errors) for interval in intervals),
            latency=LatencySummary.of(merge(latency)),
        ))
    latency_total = merge(latency_parts)
    service_total = merge(service_parts) if options.open_loop else None
    return BenchResult(
        options=options,
        requests=sum(row.requests for row in rows),
        errors=errors,
        latency=LatencySummary.of(latency_total),
        service_time=LatencySummary.of(service_total) if service_total is not None else None,
        worker_cpu_percent=tuple(100 * r.cpu_seconds / options.duration for r in reports),
        coordinator_cpu_percent=coordinator_cpu_percent,
        worker_cpu_seconds=(sum(r.user_seconds for r in reports),
                            sum(r.system_seconds for r in reports)),
        timeline=tuple(rows),
        unfinished=sum(report.unfinished for report in reports),
        latency_histogram=encode(latency_total),
        service_histogram=encode(service_total) if service_total is not None else None,
        event_loop=reports[0].event_loop if reports else "",
        late_sends=sum(report.late_sends for report in reports),
        max_send_lag=max((report.max_lag for report in reports), default=0.0),
    )
