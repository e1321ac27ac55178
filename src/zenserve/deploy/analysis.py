"""The verdict at a canary step: pass, hold (too few answers to tell) or fail.

Only the candidate's own answers in the step's window are judged: its
success ratio (answers that are not an injected fault or an internal error)
and its p99 latency, each against the release's thresholds. Too few answers
is never a pass: the step holds until enough traffic has been seen.
"""

from __future__ import annotations

from dataclasses import dataclass

from zenserve.deploy import histogram
from zenserve.deploy.release import Strategy


@dataclass(frozen=True, slots=True)
class Sample:
    """Cumulative counts for one generation (or the difference of two snapshots)."""

    answers: int = 0
    failures: int = 0
    latency: tuple[int, ...] = ()  # histogram bucket counts; empty when not measured

    def __add__(self, other: Sample) -> Sample:
        return Sample(self.answers + other.answers, self.failures + other.failures,
                      histogram.add(self.latency, other.latency))

    def __sub__(self, other: Sample) -> Sample:
        return Sample(self.answers - other.answers, self.failures - other.failures,
                      histogram.subtract(self.latency, other.latency))

    @property
    def success_ratio(self) -> float | None:
        return None if not self.answers else 1.0 - self.failures / self.answers

    @property
    def error_ratio(self) -> float:
        return self.failures / self.answers if self.answers else 0.0

    @property
    def p99(self) -> float | None:
        return histogram.percentile(self.latency, 0.99) if self.latency else None


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: str  # "pass", "hold" or "fail"
    reason: str


def judge(window: Sample, strategy: Strategy) -> Verdict:
    """Judge a step's window against the strategy's thresholds."""
    if window.answers < strategy.min_requests:
        return Verdict("hold", f"{window.answers} of {strategy.min_requests} answers needed")
    if window.error_ratio > strategy.max_error_ratio:
        return Verdict("fail", f"error ratio {window.error_ratio:.2%} over "
                               f"{strategy.max_error_ratio:.2%} ({window.failures} of "
                               f"{window.answers} answers failed)")
    p99 = window.p99
    if strategy.max_p99 is not None and p99 is not None and p99 > strategy.max_p99:
        return Verdict("fail", f"p99 {format_seconds(p99)} over {format_seconds(strategy.max_p99)}")
    return Verdict("pass", f"{window.answers} answers, error ratio {window.error_ratio:.2%}"
                           + (f", p99 {format_seconds(p99)}" if p99 is not None else ""))


def format_seconds(seconds: float) -> str:
    """``1.2ms``, ``340us``, ``2.5s``: short and readable."""
    if seconds == float("inf"):
        return "inf"
    if seconds >= 1:
        return f"{seconds:.3g}s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g}ms"
    return f"{seconds * 1e6:.3g}us"
