"""Exact weights, the latency histogram, and the verdict at a canary step (all in memory)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zenserve.deploy import histogram
from zenserve.deploy.analysis import Sample, judge
from zenserve.deploy.release import Strategy
from zenserve.deploy.router import SmoothWeighted


@pytest.mark.parametrize("share", [1, 10, 20, 25, 50, 90])
def test_every_hundred_connections_split_exactly(share: int) -> None:
    chooser = SmoothWeighted()
    choices = [chooser.choose({1: 100 - share, 2: share}) for _ in range(1000)]
    for start in range(0, 1000, 100):
        assert choices[start:start + 100].count(2) == share


def test_a_small_share_is_spread_out_not_bunched() -> None:
    chooser = SmoothWeighted()
    picks = [index for index in range(100) if chooser.choose({1: 90, 2: 10}) == 2]
    gaps = [later - earlier for earlier, later in itertools.pairwise(picks)]
    assert set(gaps) == {10}


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=5),
       st.integers(min_value=1, max_value=300))
def test_any_window_is_within_one_of_its_share(weights: list[int], length: int) -> None:
    chooser = SmoothWeighted()
    table = dict(enumerate(weights))
    total = sum(weights)
    choices = [chooser.choose(table) for _ in range(length)]
    if total == 0:
        assert set(choices) == {None}
        return
    for key, weight in table.items():
        expected = length * weight / total
        assert abs(choices.count(key) - expected) <= len(weights)


def test_zero_weights_choose_nothing_and_changes_take_effect() -> None:
    chooser = SmoothWeighted()
    assert chooser.choose({1: 0, 2: 0}) is None
    assert {chooser.choose({1: 100, 2: 0}) for _ in range(50)} == {1}
    assert {chooser.choose({1: 0, 2: 100}) for _ in range(50)} == {2}


def test_percentiles_are_never_low_and_at_most_a_bucket_high() -> None:
    recorded = histogram.LatencyHistogram()
    values = [random.Random(seed).uniform(1e-4, 0.2) for seed in range(1000)]
    for value in values:
        recorded.record(value)
    true_p99 = sorted(values)[989]
    p99 = histogram.percentile(recorded.counts, 0.99)
    assert p99 is not None and true_p99 <= p99 <= true_p99 * 1.26
    assert histogram.percentile([0] * histogram.SIZE, 0.99) is None


def test_a_window_is_the_difference_of_two_snapshots() -> None:
    first = histogram.LatencyHistogram()
    first.record(0.001)
    before = Sample(10, 1, tuple(first.counts))
    first.record(0.5)
    after = Sample(30, 5, tuple(first.counts))
    window = after - before
    assert (window.answers, window.failures) == (20, 4)
    assert window.p99 == pytest.approx(0.5, rel=0.26)


STRATEGY = Strategy("canary", (10, 100), 1.0, max_error_ratio=0.05, max_p99=0.010,
                    min_requests=100)


def latencies(seconds: float, count: int) -> tuple[int, ...]:
    recorded = histogram.LatencyHistogram()
    for _ in range(count):
        recorded.record(seconds)
    return tuple(recorded.counts)


def test_too_few_answers_hold_even_when_all_failed() -> None:
    verdict = judge(Sample(99, 99, latencies(0.001, 99)), STRATEGY)
    assert verdict.outcome == "hold" and "99 of 100" in verdict.reason


def test_errors_over_the_threshold_fail() -> None:
    verdict = judge(Sample(200, 40, latencies(0.001, 200)), STRATEGY)
    assert verdict.outcome == "fail" and "20.00%" in verdict.reason


def test_slow_answers_fail_on_p99() -> None:
    verdict = judge(Sample(200, 0, latencies(0.050, 200)), STRATEGY)
    assert verdict.outcome == "fail" and "p99" in verdict.reason


def test_enough_good_answers_pass() -> None:
    assert judge(Sample(200, 5, latencies(0.001, 200)), STRATEGY).outcome == "pass"


def test_zenserve_metrics_give_requests_and_server_side_failures() -> None:
    from zenserve.deploy.scrape import parse_requests

    text = ('# TYPE zenserve_requests_total counter\n'
            'zenserve_requests_total{outcome="answered"} 120.0\n'
            'zenserve_requests_total{outcome="unknown"} 5.0\n'
            'zenserve_requests_total{outcome="too_long"} 1.0\n'
            'zenserve_requests_total{outcome="busy"} 2.0\n'
            'zenserve_requests_total{outcome="internal_error"} 3.0\n'
            'zenserve_requests_total{outcome="fault"} 4.0\n'
            'zenserve_bytes_sent_total 1.2e+04\n')
    assert parse_requests(text) == (135, 9)
    assert parse_requests("zenserve_bytes_sent_total 10.0\n") is None


def test_a_worker_reports_faults_internal_errors_and_busy_as_failures() -> None:
    from zenserve.deploy.worker import answers_and_failures
    from zenserve.stats import Stats

    stats = Stats()
    stats.answered, stats.unknown, stats.too_long = 100, 5, 1
    stats.faults, stats.internal_errors, stats.busy = 4, 3, 2
    assert answers_and_failures(stats) == (115, 9)
