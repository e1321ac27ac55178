"""A tiny reference model of the zen protocol, written from the rules, not from the code.

It works one byte at a time, the slowest and plainest way to state the rules,
so that the real core (which searches whole buffers) can be checked against it
in the state-machine tests, the fuzz target and the garbage-input tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from zenserve.protocol import ERROR_TOO_LONG, ERROR_UNKNOWN

WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")  # what bytes.strip() removes


class ReferenceFramer:
    """Messages end with ``terminator``; whitespace before one is skipped; too long is fatal."""

    def __init__(self, terminator: bytes, max_bytes: int) -> None:
        self.terminator = terminator[0]
        self.max_bytes = max_bytes
        self.pending = bytearray()
        self.dead = False

    def feed(self, data: bytes) -> list[bytes]:
        messages: list[bytes] = []
        for byte in data:
            if self.dead:
                break
            if not self.pending and byte in WHITESPACE:
                continue
            self.pending.append(byte)
            if byte == self.terminator:
                if len(self.pending) > self.max_bytes:
                    self._die()
                    break
                messages.append(bytes(self.pending))
                self.pending.clear()
            elif len(self.pending) >= self.max_bytes:
                # max_bytes bytes and still no terminator: it can only end too long.
                self._die()
        return messages

    def _die(self) -> None:
        self.dead = True
        self.pending.clear()


class ReferenceConversation:
    """What a server must send back for each chunk, and whether it then closes."""

    def __init__(self, answer_for: Mapping[bytes, bytes], max_bytes: int) -> None:
        self.framer = ReferenceFramer(b"?", max_bytes)
        self.answer_for = answer_for
        self.closed = False
        self.questions = 0

    def receive(self, data: bytes) -> bytes:
        questions = self.framer.feed(data)
        self.questions += len(questions)
        reply = b"".join(self.answer_for.get(q, ERROR_UNKNOWN) for q in questions)
        if self.framer.dead and not self.closed:
            self.closed = True
            reply += ERROR_TOO_LONG
        return reply


def expected_reply(chunks: Iterable[bytes], answer_for: Mapping[bytes, bytes],
                   max_bytes: int) -> tuple[bytes, bool]:
    """Everything a server sends for ``chunks``, and whether the protocol closes the connection."""
    model = ReferenceConversation(answer_for, max_bytes)
    reply = b"".join(model.receive(chunk) for chunk in chunks)
    return reply, model.closed
