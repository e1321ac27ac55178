"""The health check: a real protocol round trip with one worker, through its own architecture.

The supervisor makes a socketpair, routes one end to the worker exactly like a
client connection (marked as a probe, so it is neither counted nor faulted),
asks the release's health question on the other end, and checks the answer.
Everything is non-blocking: the supervisor's loop calls ``on_readable``.
"""

from __future__ import annotations

import socket

from zenserve.deploy import channel
from zenserve.protocol import answer_framer


class Probe:
    """One question to one worker; ``outcome`` is None until answered, then (ok, detail)."""

    def __init__(self, connection_channel: socket.socket, question: bytes,
                 expected: bytes | None, deadline: float, answers_before: int) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            channel.send_connection(connection_channel, theirs.fileno(), channel.PROBE)
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        ours.send(question)  # a few bytes into an empty buffer: never blocks
        self.sock = ours
        self.expected = expected
        self.deadline = deadline
        self.answers_before = answers_before  # the worker's count when sent: progress check
        self.outcome: tuple[bool, str] | None = None
        self._framer = answer_framer()

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as error:
            self._finish(False, f"probe connection failed: {error.strerror}")
            return
        if not data:
            self._finish(False, "closed the probe connection without answering")
            return
        answers = self._framer.feed(data)
        if answers:
            self._judge(answers[0])
        elif self._framer.overflowed:
            self._finish(False, "answered more than 64 KiB without a '.'")

    def _judge(self, answer: bytes) -> None:
        if self.expected is None:
            if answer.startswith(b"Error:"):
                self._finish(False, f"answered {answer.decode(errors='replace')!r}")
            else:
                self._finish(True, "ok")
        elif answer == self.expected:
            self._finish(True, "ok")
        else:
            self._finish(False, f"answered {answer.decode(errors='replace')!r} instead of "
                                f"{self.expected.decode(errors='replace')!r}")

    def _finish(self, ok: bool, detail: str) -> None:
        self.outcome = (ok, detail)
        self.close()

    def close(self) -> None:
        self.sock.close()
