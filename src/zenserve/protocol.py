"""Sans-I/O framing of the zen protocol.

A question is the bytes up to and including the first ``?``; an answer is the
bytes up to and including the first ``.``. This module never touches a socket:
it turns received bytes into complete messages, and nothing else does. Every
server and every client (the load generator included) frames through it.
"""

from __future__ import annotations

QUESTION_END = b"?"
ANSWER_END = b"."

# Listing 7-1 reads 4096 bytes at a time and the longest PEP 20 question is 31
# bytes; 1 KiB leaves room for users' own tables while bounding every buffer.
DEFAULT_MAX_REQUEST_BYTES = 1024

ERROR_UNKNOWN = b"Error: unknown aphorism."
ERROR_TOO_LONG = b"Error: request too long."
ERROR_BUSY = b"Error: server busy."
ERROR_INTERNAL = b"Error: internal error."
ERROR_FAULT = b"Error: injected fault."

# The bytes that bytes.lstrip() removes: ASCII space, \t, \n, \r, \v, \f.
_WHITESPACE_CODES = frozenset(b" \t\n\r\x0b\x0c")


class Framer:
    """Split a byte stream into messages that end with ``terminator``.

    ``feed`` returns every message completed by the new bytes, in order, with
    leading ASCII whitespace removed. A message (or an unfinished one) longer
    than ``max_bytes`` sets ``overflowed``; from then on the stream is dead and
    ``feed`` returns nothing more, so nothing is ever buffered without bound.
    """

    __slots__ = ("_max_bytes", "_pending", "_terminator", "overflowed")

    def __init__(self, terminator: bytes, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
        if len(terminator) != 1:
            raise ValueError("the terminator is a single byte")
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self._terminator = terminator
        self._max_bytes = max_bytes
        self._pending = b""
        self.overflowed = False

    @property
    def pending(self) -> bytes:
        """Bytes of an unfinished message (empty at a message boundary)."""
        return self._pending

    def is_whole_message(self, data: bytes) -> bool:
        """True when ``data`` is exactly one message starting at a boundary.

        The common case (one question per segment) then needs no framing at
        all: callers use ``data`` itself as the message, with no copy or list.
        """
        return (
            not self._pending
            and 0 < len(data) <= self._max_bytes
            and data.find(self._terminator) == len(data) - 1
            and data[0] not in _WHITESPACE_CODES
            and not self.overflowed
        )

    def feed(self, data: bytes) -> list[bytes]:
        """Take newly received bytes; return the messages they complete."""
        if self.overflowed:
            return []
        buffer = self._pending + data if self._pending else data
        messages: list[bytes] = []
        start = 0
        while (end := buffer.find(self._terminator, start)) >= 0:
            message = buffer[start : end + 1]
            if message[0] in _WHITESPACE_CODES:
                message = message.lstrip()
            start = end + 1
            if len(message) > self._max_bytes:
                return self._overflow(messages)
            messages.append(message)
        rest = buffer[start:] if start else buffer
        if rest and rest[0] in _WHITESPACE_CODES:
            rest = rest.lstrip()
        # An unfinished message of max_bytes already exceeds the limit once its
        # terminator arrives, so stop buffering it now.
        if len(rest) >= self._max_bytes:
            return self._overflow(messages)
        self._pending = rest
        return messages

    def _overflow(self, messages: list[bytes]) -> list[bytes]:
        self.overflowed = True
        self._pending = b""
        return messages


def request_framer(max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> Framer:
    """A server's framer: questions end with ``?``."""
    return Framer(QUESTION_END, max_request_bytes)


def answer_framer(max_answer_bytes: int = 64 * 1024) -> Framer:
    """A client's framer: answers end with ``.``."""
    return Framer(ANSWER_END, max_answer_bytes)


def is_valid_question(question: bytes) -> bool:
    """True for one whole question: non-empty, exactly one ``?``, at its end."""
    return (
        len(question) > 0
        and question.find(QUESTION_END) == len(question) - 1
        and not question[:1].isspace()
    )


def is_valid_answer(answer: bytes) -> bool:
    """True for one whole answer: exactly one ``.``, at its end."""
    return len(answer) > 0 and answer.find(ANSWER_END) == len(answer) - 1
