"""A blocking zen client, like listing 7-2, framing answers with the protocol core."""

from __future__ import annotations

import socket
from types import TracebackType

from zenserve.protocol import answer_framer


class ZenClient:
    """One connection to a zen server; ``ask`` sends a question and returns its answer."""

    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._framer = answer_framer()
        self._answers: list[bytes] = []

    def send(self, data: bytes) -> None:
        """Send raw bytes (a question, several, or half of one)."""
        self._sock.sendall(data)

    def receive_answer(self) -> bytes:
        """The next whole answer; ``ConnectionError`` if the server closes first."""
        while not self._answers:
            data = self._sock.recv(65536)
            if not data:
                partial = self._framer.pending
                raise ConnectionError(
                    f"server closed the connection after {partial!r}" if partial
                    else "server closed the connection"
                )
            self._answers.extend(self._framer.feed(data))
            if self._framer.overflowed:
                raise ConnectionError("server sent an answer over 64 KiB without a '.'")
        return self._answers.pop(0)

    def ask(self, question: bytes) -> bytes:
        """Send one question and wait for its answer."""
        self.send(question)
        return self.receive_answer()

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> ZenClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
