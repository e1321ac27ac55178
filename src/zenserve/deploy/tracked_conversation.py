"""A worker's conversation that knows what it still owes, so a hand-off loses nothing.

``handoff.HandoffSocket`` hands a connection back to the supervisor only at a
request boundary: no question framed and left unanswered, and every reply byte
produced already sent. The architecture's own Conversation cannot say the
last two; this subclass counts them as it frames and answers.
"""

from __future__ import annotations

from zenserve.config import Limits
from zenserve.conversation import Conversation
from zenserve.service import Service
from zenserve.stats import Stats

# Looked up once: it runs for every request.
_receive = Conversation.receive


class TrackedConversation(Conversation):
    """A Conversation that also knows what it still owes: questions pending and reply bytes."""

    __slots__ = ("pending", "replied")

    def __init__(self, service: Service, stats: Stats, limits: Limits, peer: str) -> None:
        super().__init__(service, stats, limits, peer)
        self.pending = 0  # framed by frame() and not yet answered by answer_all()
        self.replied = 0  # reply bytes produced so far

    def receive(self, data: bytes) -> bytes:
        reply = _receive(self, data)
        self.replied += len(reply)
        return reply

    def frame(self, data: bytes) -> list[bytes]:
        questions = super().frame(data)
        self.pending += len(questions)
        return questions

    def answer_all(self, requests: list[bytes]) -> bytes:
        reply = super().answer_all(requests)
        self.pending -= len(requests)
        self.replied += len(reply)
        return reply
