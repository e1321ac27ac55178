"""The request hot path: answers straight from a ready table, counted as framing would count."""

from __future__ import annotations

import pytest

from zenserve.config import Limits
from zenserve.conversation import Conversation
from zenserve.cost import Cost, CostKind
from zenserve.protocol import ERROR_FAULT, ERROR_TOO_LONG, ERROR_UNKNOWN
from zenserve.service import Service
from zenserve.stats import Stats

QUESTION = b"Beautiful is better than?"
ANSWER = b"Ugly."


def _conversation(service: Service, max_bytes: int = 1024) -> tuple[Conversation, Stats]:
    stats = Stats()
    return Conversation(service, stats, Limits(max_request_bytes=max_bytes), "test"), stats


def test_a_free_table_is_ready_and_shared_by_every_connection() -> None:
    service = Service()
    ready = service.ready_answers(1024)
    assert ready[QUESTION] == ANSWER
    assert ready == service.table
    assert service.ready_answers(1024) is ready  # built once, not per connection


@pytest.mark.parametrize("service", [
    Service(cost=Cost(0.001, CostKind.CPU)),
    Service(cost=Cost(0.001, CostKind.IO)),
    Service(fault_rate=0.5),
    Service(handler=lambda question: ANSWER),
], ids=["cpu-cost", "io-cost", "faults", "callable"])
def test_nothing_is_ready_when_answering_is_more_than_a_lookup(service: Service) -> None:
    assert service.ready_answers(1024) == {}


def test_questions_over_the_limit_and_error_lookalikes_are_not_ready() -> None:
    service = Service(table={QUESTION: ANSWER, b"Short?": ERROR_UNKNOWN, b"a?b?": b"Odd."})
    assert service.ready_answers(10) == {}
    assert service.ready_answers(1024) == {QUESTION: ANSWER}


def test_a_ready_answer_counts_exactly_as_a_framed_one() -> None:
    fast, fast_stats = _conversation(Service())
    framed, framed_stats = _conversation(Service(handler=Service().lookup))
    for conversation in (fast, framed):
        assert conversation.receive(QUESTION) == ANSWER
        assert conversation.receive(b"Nobody is better than?") == ERROR_UNKNOWN
    assert fast_stats.snapshot() == framed_stats.snapshot()
    assert fast_stats.answered == 1 and fast_stats.unknown == 1
    assert fast_stats.bytes_in == len(QUESTION) + len(b"Nobody is better than?")
    assert fast_stats.bytes_out == len(ANSWER) + len(ERROR_UNKNOWN)


def test_a_known_question_after_an_unfinished_one_is_framed_with_it() -> None:
    conversation, stats = _conversation(Service())
    assert conversation.receive(b"Explicit") == b""
    assert conversation.mid_request
    # The bytes complete "ExplicitBeautiful is better than?", which is unknown.
    assert conversation.receive(QUESTION) == ERROR_UNKNOWN
    assert not conversation.mid_request
    assert conversation.receive(QUESTION) == ANSWER
    assert stats.unknown == 1 and stats.answered == 1


def test_no_ready_answer_once_the_stream_is_dead() -> None:
    conversation, stats = _conversation(Service(), max_bytes=len(QUESTION))
    assert conversation.receive(b"x" * (len(QUESTION) + 1)) == ERROR_TOO_LONG
    assert conversation.closing
    assert conversation.receive(QUESTION) == b""
    assert stats.answered == 0 and stats.too_long == 1


def test_injected_faults_are_counted_apart_from_answers() -> None:
    conversation, stats = _conversation(Service(fault_rate=1.0))
    assert conversation.receive(QUESTION) == ERROR_FAULT
    assert conversation.receive(QUESTION + QUESTION) == ERROR_FAULT * 2
    assert conversation.answer_all(conversation.frame(QUESTION)) == ERROR_FAULT
    assert (stats.faults, stats.answered, stats.unknown, stats.internal_errors) == (4, 0, 0, 0)


def test_with_some_faults_every_request_is_counted_once() -> None:
    conversation, stats = _conversation(Service(fault_rate=0.5))
    replies = [conversation.receive(QUESTION) for _ in range(200)]
    assert stats.faults == replies.count(ERROR_FAULT) > 0
    assert stats.answered == replies.count(ANSWER) > 0
    assert stats.faults + stats.answered == 200
