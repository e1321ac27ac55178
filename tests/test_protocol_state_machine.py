"""Hypothesis state machines: the protocol core against the tiny reference model.

Each run drives a real ``Framer`` or ``Conversation`` and ``tests.zen_model``
with the same sequence of operations and checks they never disagree.
"""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.zen_model import WHITESPACE, ReferenceConversation, ReferenceFramer
from zenserve.config import Limits
from zenserve.conversation import Conversation
from zenserve.protocol import ERROR_INTERNAL, Framer
from zenserve.service import Service, pep20_table
from zenserve.stats import Stats

TABLE = pep20_table()
# Pieces that exercise every rule: terminators, whitespace, known questions cut
# anywhere, binary, long runs that reach small limits.
PIECES = st.sampled_from([
    b"?", b".", b" ", b"\r\n", b"\t", b"\x0b\x0c", b"x", b"\x00", b"\xff\xfe",
    b"Beautiful is better than?", b"Beautiful is", b" better than", b"Raise?", b"y" * 40,
])
CHUNKS = st.one_of(
    st.lists(PIECES, max_size=8).map(b"".join),
    st.binary(max_size=64),
)
STATE_MACHINE_SETTINGS = settings(max_examples=150, stateful_step_count=30, deadline=None,
                                  suppress_health_check=[HealthCheck.too_slow])


class FramerMachine(RuleBasedStateMachine):
    """Any terminator, any small limit, any chunking: the framer agrees with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.framer = Framer(b"?")
        self.model = ReferenceFramer(b"?", 1024)

    @initialize(terminator=st.sampled_from([b"?", b"."]), max_bytes=st.integers(1, 48))
    def start(self, terminator: bytes, max_bytes: int) -> None:
        self.framer = Framer(terminator, max_bytes)
        self.model = ReferenceFramer(terminator, max_bytes)

    @rule(data=CHUNKS)
    def feed(self, data: bytes) -> None:
        assert self.framer.feed(data) == self.model.feed(data)

    @rule(data=CHUNKS)
    def feed_one_byte_at_a_time(self, data: bytes) -> None:
        for index in range(len(data)):
            piece = data[index : index + 1]
            assert self.framer.feed(piece) == self.model.feed(piece)

    @invariant()
    def same_state(self) -> None:
        assert self.framer.pending == bytes(self.model.pending)
        assert self.framer.overflowed == self.model.dead

    @invariant()
    def pending_is_bounded_and_never_starts_with_whitespace(self) -> None:
        pending = self.framer.pending
        assert len(pending) < self.model.max_bytes
        assert not pending or pending[0] not in WHITESPACE


def _raising_handler(question: bytes) -> bytes:
    if question.startswith(b"Raise"):
        raise RuntimeError("raised on purpose by the state machine")
    return TABLE.get(question, b"Other.")


class ConversationMachine(RuleBasedStateMachine):
    """Replies, closing, ``mid_request`` and every counter agree with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.start_with(TABLE, Service(), 1024)

    def start_with(self, answer_for: dict[bytes, bytes], service: Service,
                   max_bytes: int) -> None:
        self.stats = Stats()
        self.conversation = Conversation(service, self.stats, Limits(max_request_bytes=max_bytes),
                                         "127.0.0.1:9")
        self.model = ReferenceConversation(answer_for, max_bytes)
        self.sent = self.replied = 0

    @initialize(max_bytes=st.integers(1, 64), raising=st.booleans())
    def start(self, max_bytes: int, raising: bool) -> None:
        if raising:
            self.start_with(_HandlerAnswers(), Service(handler=_raising_handler), max_bytes)
        else:
            self.start_with(TABLE, Service(), max_bytes)

    @rule(data=CHUNKS)
    def receive(self, data: bytes) -> None:
        self._check_reply(data, self.conversation.receive(data))

    @rule(data=CHUNKS)
    def frame_then_answer(self, data: bytes) -> None:
        """The path io-cost event loops take: frame, await, then answer."""
        reply = self.conversation.answer_all(self.conversation.frame(data))
        self._check_reply(data, reply)

    @precondition(lambda self: not self.model.closed)
    @rule()
    def end_of_stream(self) -> None:
        logging.disable(logging.INFO)  # only the book-style log line; nothing may raise
        try:
            self.conversation.end_of_stream()
        finally:
            logging.disable(logging.NOTSET)

    def _check_reply(self, data: bytes, reply: bytes) -> None:
        self.sent += len(data)
        self.replied += len(reply)
        assert reply == self.model.receive(data)

    @invariant()
    def same_state(self) -> None:
        assert self.conversation.closing == self.model.closed
        assert self.conversation.mid_request == bool(self.model.framer.pending)

    @invariant()
    def counters_add_up(self) -> None:
        stats = self.stats
        assert stats.bytes_in == self.sent
        assert stats.bytes_out == self.replied
        assert stats.too_long == int(self.model.closed)
        assert stats.answered + stats.unknown + stats.internal_errors == self.model.questions


class _HandlerAnswers(dict[bytes, bytes]):
    """What the service must answer for ``_raising_handler``, stated independently."""

    def get(self, key: bytes, default: object = None) -> bytes:  # type: ignore[override]
        return ERROR_INTERNAL if key.startswith(b"Raise") else TABLE.get(key, b"Other.")


FramerMachine.TestCase.settings = STATE_MACHINE_SETTINGS
ConversationMachine.TestCase.settings = STATE_MACHINE_SETTINGS
TestFramerMachine = FramerMachine.TestCase
TestConversationMachine = ConversationMachine.TestCase
