"""The question mix: a fixed, seeded cycle of requests, each with the answer that counts as correct.

Three kinds of traffic:

- **known**: a question of the table; correct is the table's answer.
- **unknown** (``unknown_ratio``): a well-formed question not in the table;
  correct is ``Error: unknown aphorism.`` and the conversation goes on.
- **malformed** (``error_ratio``), alternating between two forms:
  - *over-long*: ``max_request_bytes`` bytes with no ``?`` (the server's limit
    reached without a question); correct is ``Error: request too long.``, after
    which the server closes the connection and the client opens a new one.
  - *binary*: bytes 0x00-0xff (no whitespace, no ``?``) ending in ``?``;
    correct is ``Error: unknown aphorism.`` and the conversation goes on.

The cycle is built once; each connection walks it from its own starting
point through ``Request.next``, so choosing the next request allocates nothing.
"""

from __future__ import annotations

import random

from zenserve.protocol import ERROR_TOO_LONG, ERROR_UNKNOWN, QUESTION_END

# Requests in the cycle: ratios are honoured to 0.1 %.
CYCLE_LENGTH = 1000

KNOWN = "known"
UNKNOWN = "unknown"
OVER_LONG = "over-long"
BINARY = "binary"

# The same bytes bytes.lstrip() removes, which a server skips before a question.
_WHITESPACE = frozenset(b" \t\n\r\x0b\x0c")


class Request:
    """One request of the cycle: what to send, what answer is correct, what follows."""

    __slots__ = ("closes", "expected", "kind", "lane_answer", "lane_read_size", "next",
                 "next_question", "next_size", "question", "size")

    def __init__(self, question: bytes, expected: bytes, closes: bool, kind: str) -> None:
        self.question = question
        self.size = len(question)  # kept, so that a hot path checks a write without len()
        self.expected = expected
        # The connection ends after this answer (the server closes it after an
        # over-long request; in connection-per-request mode the client does).
        self.closes = closes
        # What the fast lane (load/fastlane.py) takes as the whole correct
        # answer: None for a request that ends the connection, so that its
        # answer goes to the careful path, which closes. The lane reads one
        # byte more than the answer (extra bytes are seen at once, as wrong);
        # a bytes object that short of its size keeps its memory block.
        self.lane_answer = None if closes else expected
        self.lane_read_size = len(expected) + 1
        self.kind = kind
        self.next: Request = self
        self.next_question = question
        self.next_size = self.size

    def link(self, following: Request) -> None:
        """Make ``following`` the request after this one."""
        self.next = following
        # Its question, kept here too: the fast lane sends it without a step through ``next``.
        self.next_question = following.question
        self.next_size = following.size


def unknown_question(known: set[bytes]) -> bytes:
    """A well-formed question that is not among ``known``."""
    number = 0
    question = b"Is this aphorism unknown?"
    while question in known:
        number += 1
        question = b"Is this aphorism unknown %d?" % number
    return question


def binary_question(max_request_bytes: int) -> bytes:
    """Every byte value but whitespace and ``?``, ending in ``?``, within the limit."""
    body = bytes(code for code in range(256)
                 if code not in _WHITESPACE and code != QUESTION_END[0])
    return body[: max_request_bytes - 1] + QUESTION_END


def over_long_request(max_request_bytes: int) -> bytes:
    """Exactly the server's limit without a ``?``: the server answers and closes.

    Not one byte more: bytes the server has not read when it closes would make
    its kernel reset the connection, and the answer could be lost.
    """
    return b"o" * max_request_bytes


def build_cycle(questions: tuple[tuple[bytes, bytes], ...], unknown_ratio: float,
                error_ratio: float, max_request_bytes: int, connection_per_request: bool,
                seed: int) -> list[Request]:
    """The seeded request cycle; ``cycle[i].next`` is ``cycle[i + 1]``, the last wraps."""
    chooser = random.Random(seed)
    unknown_count = round(CYCLE_LENGTH * unknown_ratio)
    malformed_count = round(CYCLE_LENGTH * error_ratio)
    known_count = max(0, CYCLE_LENGTH - unknown_count - malformed_count)
    closing = connection_per_request
    requests = [Request(question, answer, closing, KNOWN)
                for question, answer in chooser.choices(questions, k=known_count)]
    unknown = unknown_question({question for question, _ in questions})
    requests += [Request(unknown, ERROR_UNKNOWN, closing, UNKNOWN)
                 for _ in range(unknown_count)]
    for number in range(malformed_count):
        if number % 2 == 0:
            requests.append(Request(over_long_request(max_request_bytes), ERROR_TOO_LONG,
                                    True, OVER_LONG))
        else:
            requests.append(Request(binary_question(max_request_bytes), ERROR_UNKNOWN,
                                    closing, BINARY))
    chooser.shuffle(requests)
    for request, following in zip(requests, requests[1:] + requests[:1], strict=True):
        request.link(following)
    return requests


def starting_point(cycle: list[Request], connection_index: int) -> Request:
    """Where connection ``connection_index`` starts, so connections ask different things."""
    # 337 is prime to CYCLE_LENGTH: up to 1000 connections all start apart.
    return cycle[(connection_index * 337) % len(cycle)]
