"""One client's conversation: framing from the protocol core, answers from the service.

Every architecture feeds received bytes in and sends back what comes out; none
of them frames or answers on its own. Counting happens here, on plain integers.
"""

from __future__ import annotations

import logging

from zenserve.config import Limits
from zenserve.protocol import ERROR_INTERNAL, ERROR_TOO_LONG, ERROR_UNKNOWN, request_framer
from zenserve.service import Service
from zenserve.stats import Stats

log = logging.getLogger("zenserve.conversation")


class Conversation:
    """Bytes in, reply bytes out, for one connection.

    After ``receive`` returns, send the reply; if ``closing`` is then true the
    protocol says the connection ends (the request was too long).
    """

    __slots__ = ("_answer", "_framer", "_service", "_stats", "closing", "peer")

    def __init__(self, service: Service, stats: Stats, limits: Limits, peer: str) -> None:
        self._framer = request_framer(limits.max_request_bytes)
        self._service = service
        self._answer = service.answer
        self._stats = stats
        self.peer = peer
        self.closing = False

    @property
    def mid_request(self) -> bool:
        """True while part of a question has arrived but not its ``?``."""
        return bool(self._framer.pending)

    def receive(self, data: bytes) -> bytes:
        """Take received bytes; return the answers to every question they complete."""
        stats = self._stats
        stats.bytes_in += len(data)
        if self._framer.is_whole_message(data):
            reply = self._count(self._answer(data))
            stats.bytes_out += len(reply)
            return reply
        requests = self._framer.feed(data)
        answer, count = self._answer, self._count
        if len(requests) == 1:
            reply = count(answer(requests[0]))
        else:
            reply = b"".join([count(answer(request)) for request in requests])
        return self._finish(reply)

    def frame(self, data: bytes) -> list[bytes]:
        """The questions ``data`` completes, for architectures that wait before answering."""
        self._stats.bytes_in += len(data)
        return self._framer.feed(data)

    def answer_all(self, requests: list[bytes]) -> bytes:
        """Answers to framed questions without the cost (already awaited), plus any error."""
        lookup, count = self._service.lookup, self._count
        return self._finish(b"".join([count(lookup(request)) for request in requests]))

    def end_of_stream(self) -> None:
        """The client closed its side; log it the way listing 7-6 does."""
        partial = self._framer.pending
        if partial:
            log.info("Client %s sent %r but then closed", self.peer, partial)
        else:
            log.info("Client %s closed socket normally", self.peer)

    def _count(self, answer: bytes) -> bytes:
        stats = self._stats
        if answer == ERROR_UNKNOWN:
            stats.unknown += 1
        elif answer is ERROR_INTERNAL:
            stats.internal_errors += 1
        else:
            stats.answered += 1
        return answer

    def _finish(self, reply: bytes) -> bytes:
        if self._framer.overflowed and not self.closing:
            self.closing = True
            self._stats.too_long += 1
            log.info("Client %s sent a request over the limit; closing", self.peer)
            reply += ERROR_TOO_LONG
        self._stats.bytes_out += len(reply)
        return reply
