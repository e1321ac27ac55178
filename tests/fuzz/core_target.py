"""The fuzz target for the protocol core, shared by hypothesis (in CI) and atheris (by hand).

Any bytes, cut into chunks any way, with any request limit: the core must not
raise, must answer exactly as the reference model does, must close exactly when
the protocol says so, and a client framing the reply must get whole answers.
"""

from __future__ import annotations

from tests.zen_model import expected_reply
from zenserve.config import Limits
from zenserve.conversation import Conversation
from zenserve.protocol import answer_framer, is_valid_answer
from zenserve.service import Service, pep20_table
from zenserve.stats import Stats

TABLE = pep20_table()
SERVICE = Service()


def split_input(data: bytes) -> tuple[int, list[bytes]]:
    """Read a request limit and chunk sizes from the first two bytes; the rest is the stream."""
    if len(data) < 2:
        return 1024, [data] if data else []
    max_bytes = 1 + data[0] * 4  # 1 .. 1021: small limits are reached often
    sizes = 1 + data[1] % 17  # chunk sizes cycle through 1 .. sizes
    stream = data[2:]
    chunks, start, size = [], 0, 1
    while start < len(stream):
        chunks.append(stream[start : start + size])
        start += size
        size = size % sizes + 1
    return max_bytes, chunks


def check_core(data: bytes) -> None:
    """Raise AssertionError when the core disagrees with the reference model on ``data``."""
    max_bytes, chunks = split_input(data)
    stats = Stats()
    conversation = Conversation(SERVICE, stats, Limits(max_request_bytes=max_bytes), "fuzz")
    replies = []
    for chunk in chunks:
        if conversation.closing:
            break  # every architecture stops reading here
        replies.append(conversation.receive(chunk))
    reply = b"".join(replies)
    expected, closes = expected_reply(chunks, TABLE, max_bytes)
    assert reply == expected, (reply, expected)
    assert conversation.closing == closes
    assert stats.bytes_out == len(reply)
    client = answer_framer()
    answers = client.feed(reply)
    assert all(is_valid_answer(answer) for answer in answers)
    assert not client.pending and not client.overflowed
