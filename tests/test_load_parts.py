"""The load generator's parts in memory: the mix, the recorder, the options, the fast path."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zenserve.errors import ZenserveError
from zenserve.load import ERROR_KINDS, BenchOptions, BenchResult, questions_from_table
from zenserve.load.coordinator import plans_for
from zenserve.load.mix import (
    BINARY,
    CYCLE_LENGTH,
    KNOWN,
    OVER_LONG,
    UNKNOWN,
    binary_question,
    build_cycle,
    starting_point,
)
from zenserve.load.recorder import (
    FINE_LIMIT_US,
    LatencyBins,
    LatencySummary,
    encode,
    histogram_from,
    merge,
)
from zenserve.load.result import assemble
from zenserve.load.worker import Interval, WorkerReport
from zenserve.protocol import (
    ERROR_TOO_LONG,
    ERROR_UNKNOWN,
    answer_framer,
    is_valid_question,
    request_framer,
)
from zenserve.service import pep20_table

TABLE = pep20_table()
PAIRS = tuple(TABLE.items())


def test_the_cycle_honours_the_ratios_and_links_every_request() -> None:
    cycle = build_cycle(PAIRS, 0.1, 0.2, 1024, False, seed=1)
    kinds = Counter(request.kind for request in cycle)
    assert kinds == {KNOWN: 700, UNKNOWN: 100, OVER_LONG: 100, BINARY: 100}
    walked, request = set(), cycle[0]
    for _ in range(CYCLE_LENGTH):
        walked.add(id(request))
        request = request.next
    assert len(walked) == CYCLE_LENGTH and request is cycle[0]


def test_every_request_holds_what_the_fast_lane_needs_of_it_and_of_the_next() -> None:
    for request in build_cycle(PAIRS, 0.2, 0.2, 1024, False, seed=5):
        assert request.next_question == request.next.question
        assert request.next_size == len(request.next.question)
        # A request that ends the connection is answered on the careful path, which closes.
        assert request.lane_answer == (None if request.closes else request.expected)
        # One byte more than the answer: an extra byte shows in the same read.
        assert request.lane_read_size == len(request.expected) + 1


def test_every_request_expects_what_a_zen_server_answers() -> None:
    server_framer = request_framer(1024)
    for request in build_cycle(PAIRS, 0.3, 0.3, 1024, False, seed=2):
        if request.kind == KNOWN:
            assert TABLE[request.question] == request.expected and not request.closes
        elif request.kind in (UNKNOWN, BINARY):
            assert request.question not in TABLE and is_valid_question(request.question)
            assert request.expected == ERROR_UNKNOWN and not request.closes
        else:
            framer = request_framer(1024)
            assert framer.feed(request.question) == [] and framer.overflowed
            assert request.expected == ERROR_TOO_LONG and request.closes
        assert not server_framer.overflowed


def test_binary_questions_hold_every_byte_but_whitespace_and_the_question_mark() -> None:
    question = binary_question(1024)
    assert question.endswith(b"?") and question.count(b"?") == 1
    assert b"\x00" in question and b"\xff" in question and not question[:1].isspace()
    assert len(binary_question(10)) == 10


def test_connection_per_request_closes_after_every_request() -> None:
    assert all(request.closes for request in build_cycle(PAIRS, 0.5, 0.0, 1024, True, seed=3))


def test_connections_start_at_different_points() -> None:
    cycle = build_cycle(PAIRS, 0.0, 0.0, 1024, False, seed=4)
    assert len({id(starting_point(cycle, index)) for index in range(100)}) == 100


@given(st.sampled_from([*TABLE.values(), ERROR_UNKNOWN, ERROR_TOO_LONG]), st.binary(max_size=40))
def test_the_fast_path_accepts_exactly_what_the_framer_would(expected: bytes, data: bytes) -> None:
    # The connection's fast path: nothing pending and data == expected.
    framer = answer_framer()
    framed = framer.feed(data)
    framer_says_correct = framed == [expected] and not framer.pending
    if data == expected:
        assert framer_says_correct
    fresh = answer_framer()
    assert fresh.feed(expected) == [expected] and not fresh.pending


def test_bins_cut_into_sorted_sparse_counts_and_start_again() -> None:
    bins = LatencyBins()
    for value in (5, 5, 100, FINE_LIMIT_US - 1, FINE_LIMIT_US + 7, 10**12):
        bins.record(value)
    interval = bins.cut()
    interval.scan_step()  # part of the scan now, the rest on demand
    values, counts = interval.sparse()
    assert values[:4] == [5, 100, FINE_LIMIT_US - 1, FINE_LIMIT_US + 7]
    assert counts == [2, 1, 1, 1, 1]
    assert bins.cut().sparse() == ([], [])
    assert bins.count() == 6


def test_histograms_merge_through_the_encoded_format() -> None:
    first = encode(histogram_from(([1000], [99])))
    second = encode(histogram_from(([50_000], [1])))
    empty = encode(histogram_from(([], [])))
    summary = LatencySummary.of(merge([empty, first, second, empty]))
    assert summary.count == 100
    assert summary.min == pytest.approx(1.0, rel=0.001)
    assert summary.p50 == pytest.approx(1.0, rel=0.001)
    assert summary.max == pytest.approx(50.0, rel=0.001)


def test_an_empty_histogram_summarises_to_zeros() -> None:
    assert LatencySummary.of(merge([])).to_json()["p99"] == 0.0


@pytest.mark.parametrize(("bad", "message"), [
    ({"connections": 0}, "connections must be at least 1"),
    ({"rate": 0.0}, "rate must be more than 0 requests/s"),
    ({"duration": 0.0}, "duration must be more than 0"),
    ({"warmup": -1.0}, "warmup cannot be negative"),
    ({"timeout": 0.0}, "timeout must be more than 0"),
    ({"unknown_ratio": -0.5}, "unknown_ratio must be between 0 and 1"),
    ({"unknown_ratio": 0.6, "error_ratio": 0.6}, "unknown_ratio plus error_ratio cannot exceed 1"),
    ({"max_request_bytes": 1}, "max_request_bytes must be at least 2"),
    ({"processes": 0}, "processes must be at least 1"),
    ({"questions": ()}, "questions must hold at least one known question"),
    ({"event_loop": "tornado"}, "event_loop must be one of auto, uvloop, asyncio"),
])
def test_bad_options_are_one_clear_error_naming_the_setting(bad: dict[str, object],
                                                            message: str) -> None:
    """The library names its own fields (the command line words them as flags)."""
    with pytest.raises(ZenserveError) as refused:
        BenchOptions(**bad)  # type: ignore[arg-type]
    assert str(refused.value) == message


def test_questions_can_be_restricted_to_some_of_the_table() -> None:
    chosen = questions_from_table(TABLE, [b"Beautiful is better than?"])
    assert chosen == ((b"Beautiful is better than?", b"Ugly."),)
    with pytest.raises(ZenserveError, match="not in the table"):
        questions_from_table(TABLE, [b"Tea is better than?"])


def test_connections_are_split_evenly_over_processes() -> None:
    plans = plans_for(BenchOptions(connections=10, processes=3))
    assert [plan.connections for plan in plans] == [4, 3, 3]
    assert [plan.first_connection for plan in plans] == [0, 4, 7]
    assert len(plans_for(BenchOptions(connections=2, processes=8))) == 2


def _measured(options: BenchOptions, cpu_seconds: float, late_sends: int) -> BenchResult:
    """A one-second, one-process result: 100 answers of 1 ms each."""
    latency = encode(histogram_from(([1000], [100])))
    interval = Interval(1.0, 100, (0,) * len(ERROR_KINDS), latency, latency)
    report = WorkerReport((interval,), cpu_seconds, 0.0, 0, "uvloop", late_sends, 0.5)
    return assemble(options, [report], coordinator_cpu_percent=1.0)


def test_a_rate_shortfall_blames_the_server_unless_the_generator_fell_behind() -> None:
    open_loop = BenchOptions(connections=2, rate=1000.0, duration=1.0)
    server_short = _measured(open_loop, cpu_seconds=0.05, late_sends=0)
    assert server_short.saturation_reasons == ()
    assert server_short.server_kept_up is False
    assert server_short.rate_line == "achieved 100 of the 1,000 requests/s target"
    lagging = _measured(open_loop, cpu_seconds=0.05, late_sends=10)  # 10 of 100 sent late
    assert lagging.saturation_reasons == (
        "it fell behind its schedule: 10 of 100 requests sent over 2 ms late while their "
        "connection was free (up to 500 ms)",)
    assert lagging.server_kept_up is None  # the shortfall may be the generator's own
    busy = _measured(open_loop, cpu_seconds=0.95, late_sends=0)
    assert busy.saturation_reasons == ("load process 0 used 95% of a core",)
    assert busy.server_kept_up is None
    kept_up = _measured(BenchOptions(connections=2, rate=100.0, duration=1.0), 0.05, 9)
    assert kept_up.saturation_reasons == () and kept_up.server_kept_up is True
    closed = _measured(BenchOptions(connections=2, duration=1.0), 0.05, 0)
    assert closed.server_kept_up is None and closed.to_json()["achieved_rps"] is None
