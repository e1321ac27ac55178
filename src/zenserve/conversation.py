"""One client's conversation: framing from the protocol core, answers from the service.

Every architecture feeds received bytes in and sends back what comes out; none
of them frames or answers on its own. Counting happens here, on plain integers.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from zenserve.config import Limits
from zenserve.protocol import (
    ERROR_FAULT,
    ERROR_INTERNAL,
    ERROR_TOO_LONG,
    ERROR_UNKNOWN,
    request_framer,
)
from zenserve.service import Service
from zenserve.stats import Stats

log = logging.getLogger("zenserve.conversation")


class Conversation:
    """Bytes in, reply bytes out, for one connection.

    After ``receive`` returns, send the reply; if ``closing`` is then true the
    protocol says the connection ends (the request was too long). ``mid_request``
    is true while part of a question has arrived but not its ``?`` (a plain
    attribute, read by every event loop after every read).
    """

    __slots__ = ("_answer", "_count", "_framer", "_ready", "_service", "_stats", "closing",
                 "mid_request", "peer")

    def __init__(self, service: Service, stats: Stats, limits: Limits, peer: str) -> None:
        self._framer = request_framer(limits.max_request_bytes)
        self._service = service
        self._answer = service.answer
        self._ready = service.ready_answers(limits.max_request_bytes)  # shared, not copied
        self._stats = stats
        # Only a service that injects faults pays for telling them apart.
        self._count = self._count_fault_apart if service.fault_rate > 0.0 else self._count_answer
        self.peer = peer
        self.closing = False
        self.mid_request = False

    def receive(self, data: bytes) -> bytes:
        """Take received bytes; return the answers to every question they complete."""
        if not (self.mid_request or self.closing):
            # The common case: one whole known question in one read, at a request
            # boundary. It is a key of the ready table, so it is a valid question
            # within the limit: answered without framing, a call or a copy.
            answer = self._ready.get(data)
            if answer is not None:
                stats = self._stats
                stats.answered += 1
                stats.bytes_in += len(data)
                stats.bytes_out += len(answer)
                return answer
        return self._receive_framed(data)

    def shortcut(self) -> tuple[Mapping[bytes, bytes], Stats]:
        """The table a read loop may answer from by itself, and the stats to count that in.

        At a request boundary (neither ``mid_request`` nor ``closing``) a read
        that is a key of the table is one whole known question: sending its
        value and adding 1 to ``answered``, the read's length to ``bytes_in``
        and the value's to ``bytes_out`` is all that ``receive`` would do. A
        blocking loop that does it saves a call per request. The table is
        empty for a subclass that overrides ``receive``: it sees every read.
        """
        if type(self).receive is not Conversation.receive:
            return {}, self._stats
        return self._ready, self._stats

    def _receive_framed(self, data: bytes) -> bytes:
        stats = self._stats
        stats.bytes_in += len(data)
        framer = self._framer
        if framer.is_whole_message(data):
            reply = self._count(self._answer(data))
            stats.bytes_out += len(reply)
            return reply
        requests = framer.feed(data)
        self.mid_request = bool(framer.pending)
        answer, count = self._answer, self._count
        if len(requests) == 1:
            reply = count(answer(requests[0]))
        else:
            reply = b"".join([count(answer(request)) for request in requests])
        return self._finish(reply)

    def frame(self, data: bytes) -> list[bytes]:
        """The questions ``data`` completes, for architectures that wait before answering."""
        self._stats.bytes_in += len(data)
        questions = self._framer.feed(data)
        self.mid_request = bool(self._framer.pending)
        return questions

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

    def _count_answer(self, answer: bytes) -> bytes:
        stats = self._stats
        if answer == ERROR_UNKNOWN:
            stats.unknown += 1
        elif answer is ERROR_INTERNAL:
            stats.internal_errors += 1
        else:
            stats.answered += 1
        return answer

    def _count_fault_apart(self, answer: bytes) -> bytes:
        if answer is ERROR_FAULT:
            self._stats.faults += 1
            return answer
        return self._count_answer(answer)

    def _finish(self, reply: bytes) -> bytes:
        if self._framer.overflowed and not self.closing:
            self.closing = True
            self._stats.too_long += 1
            log.info("Client %s sent a request over the limit; closing", self.peer)
            reply += ERROR_TOO_LONG
        self._stats.bytes_out += len(reply)
        return reply
