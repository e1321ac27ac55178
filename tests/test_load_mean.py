"""The fast mean of a latency histogram equals hdrh's own, bucket for bucket."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from zenserve.load.recorder import HIGHEST_US, encode, mean_of, merge, new_histogram


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, HIGHEST_US), st.integers(1, 1000)), max_size=60))
def test_mean_of_equals_hdrh_mean(values: list[tuple[int, int]]) -> None:
    histogram = new_histogram()
    for value, count in values:
        histogram.record_value(value, count)
    merged = merge([encode(histogram)])  # as the bench summarises: decoded, then added
    assert mean_of(merged) == merged.get_mean_value()
    assert mean_of(histogram) == histogram.get_mean_value()
