"""The sans-I/O core, in memory: byte-at-a-time, pipelined, limits, any chunking."""

from __future__ import annotations

import ast
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

import zenserve.protocol
from zenserve.protocol import Framer, answer_framer, request_framer

QUESTION = b"Beautiful is better than?"


def feed_in_pieces(framer: Framer, data: bytes, cuts: list[int]) -> list[bytes]:
    messages: list[bytes] = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        messages += framer.feed(data[start:cut])
        start = cut
    return messages


def test_one_byte_at_a_time_equals_whole() -> None:
    stream = QUESTION + b"Simple is better than?"
    framer = request_framer()
    messages = [m for i in range(len(stream)) for m in framer.feed(stream[i : i + 1])]
    assert messages == [QUESTION, b"Simple is better than?"]
    assert framer.pending == b""


def test_pipelined_requests_come_out_in_order_with_the_remainder_pending() -> None:
    framer = request_framer()
    assert framer.feed(QUESTION * 3 + b"Expl") == [QUESTION] * 3
    assert framer.pending == b"Expl"
    assert framer.feed(b"icit is better than?") == [b"Explicit is better than?"]


def test_leading_whitespace_is_skipped_but_not_inner_whitespace() -> None:
    framer = request_framer()
    assert framer.feed(b"\r\n \t" + QUESTION + b"\n") == [QUESTION]
    assert framer.pending == b""
    assert framer.feed(b"  a b ?") == [b"a b ?"]


def test_whitespace_alone_is_never_buffered() -> None:
    framer = request_framer(max_request_bytes=8)
    for _ in range(1000):
        assert framer.feed(b"\r\n" * 50) == []
    assert not framer.overflowed
    assert framer.pending == b""


def test_request_over_the_limit_overflows_whole_or_split() -> None:
    whole = request_framer(max_request_bytes=10)
    assert whole.feed(b"x" * 10 + b"?") == []
    assert whole.overflowed

    split = request_framer(max_request_bytes=10)
    assert split.feed(b"x" * 9) == []
    assert not split.overflowed
    assert split.feed(b"x") == []
    assert split.overflowed
    assert split.feed(QUESTION) == []  # the stream is dead after an overflow


def test_request_exactly_at_the_limit_is_accepted() -> None:
    framer = request_framer(max_request_bytes=10)
    assert framer.feed(b"x" * 9 + b"?") == [b"x" * 9 + b"?"]


def test_requests_before_an_overflow_are_still_returned() -> None:
    framer = request_framer(max_request_bytes=30)
    assert framer.feed(QUESTION + b"y" * 100) == [QUESTION]
    assert framer.overflowed


def test_binary_and_lone_question_mark_are_requests() -> None:
    framer = request_framer()
    assert framer.feed(b"\x00\xff\xfe?" + b"?") == [b"\x00\xff\xfe?", b"?"]


def test_answer_framer_frames_up_to_the_dot() -> None:
    framer = answer_framer()
    assert framer.feed(b"Ugly.Impl") == [b"Ugly."]
    assert framer.feed(b"icit.") == [b"Implicit."]


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"?", b"") + b"?"), max_size=8),
    st.binary(max_size=20).map(lambda b: b.replace(b"?", b"")),
    st.lists(st.integers(min_value=0, max_value=400), max_size=30),
)
def test_any_chunking_gives_the_same_requests(
    requests: list[bytes], tail: bytes, cuts: list[int]
) -> None:
    stream = b"".join(requests) + tail
    whole = request_framer(max_request_bytes=64)
    expected = whole.feed(stream)
    pieces = request_framer(max_request_bytes=64)
    assert feed_in_pieces(pieces, stream, [c for c in cuts if c <= len(stream)]) == expected
    assert pieces.overflowed == whole.overflowed
    if not whole.overflowed:
        assert pieces.pending == whole.pending
        assert expected == [r.lstrip() for r in requests]


def test_protocol_core_imports_no_io() -> None:
    forbidden = {"socket", "select", "selectors", "asyncio", "threading", "ssl"}
    tree = ast.parse(Path(zenserve.protocol.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & forbidden


def test_whole_message_fast_path_agrees_with_feed() -> None:
    cases = [QUESTION, b"?", b" " + QUESTION, QUESTION + QUESTION, b"abc", b"", b"x" * 30 + b"?"]
    for data in cases:
        framer = request_framer(max_request_bytes=26)
        whole = framer.is_whole_message(data)
        assert whole == (request_framer(26).feed(data) == [data]), data
    pending = request_framer()
    pending.feed(b"Beau")
    assert not pending.is_whole_message(QUESTION)
