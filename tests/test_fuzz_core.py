"""The core's fuzz target under hypothesis, with a fixed budget so CI time stays bounded."""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fuzz.core_target import check_core, split_input

# Protocol-shaped bytes find more than uniform noise: terminators, whitespace
# and real questions, mixed with arbitrary binary.
FRAGMENTS = st.sampled_from([b"?", b".", b" ", b"\r\n", b"\x00", b"Beautiful is better than?",
                             b"Simple is better than", b"z" * 300])
STREAMS = st.one_of(st.binary(max_size=2048),
                    st.lists(st.one_of(FRAGMENTS, st.binary(max_size=16)), max_size=40)
                    .map(b"".join))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(limit=st.integers(0, 255), cuts=st.integers(0, 255), stream=STREAMS)
@example(limit=6, cuts=0, stream=b"Beautiful is better than?" * 3 + b"x" * 5000)
@example(limit=255, cuts=16, stream=b"\r\n" * 2000 + b"?")
def test_core_agrees_with_the_reference_on_any_input(limit: int, cuts: int, stream: bytes) -> None:
    check_core(bytes([limit, cuts]) + stream)


def test_split_input_keeps_every_byte_in_order() -> None:
    data = bytes([3, 5]) + bytes(range(256)) * 3
    max_bytes, chunks = split_input(data)
    assert max_bytes == 13
    assert b"".join(chunks) == data[2:]
    assert {len(chunk) for chunk in chunks[:-1]} == {1, 2, 3, 4, 5, 6}
