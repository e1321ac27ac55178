"""Load for the deployment tests: client threads that record every request in a ledger.

Each request's record says when it was sent and ended and what came back (an
answer, whose version tells the generation, or an error kind), so a test can
show that a release lost nothing. Bounded in count and in time.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from tests.deploy_helpers import SOCKET_TIMEOUT, version_of
from zenserve.protocol import Framer, answer_framer
from zenserve.service import pep20_table

QUESTIONS = list(pep20_table())


@dataclass
class Record:
    """One request: when it was sent, when it ended, and its answer or error kind."""

    sent: float
    ended: float
    answer: bytes = b""
    error: str = ""


@dataclass
class Ledger:
    """Every request of a load run, from every client thread."""

    records: list[Record] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, records: list[Record]) -> None:
        with self.lock:
            self.records.extend(records)

    def errors(self) -> list[Record]:
        return [record for record in self.records if record.error]

    def versions_after(self, moment: float) -> set[str | None]:
        return {version_of(record.answer) for record in self.records
                if record.sent > moment and not record.error}


class LoadClients:
    """N threads asking questions until stopped (or a request/time bound), recording each one."""

    def __init__(self, port: int, threads: int = 4, per_request: bool = False,
                 max_seconds: float = 60.0, max_requests: int = 200_000,
                 think: float = 0.0, per_connection: int = 0) -> None:
        self.port = port
        self.per_request = per_request
        self.per_connection = per_connection  # reconnect after this many (0: never)
        self.think = think  # seconds between an answer and the next question
        self.ledger = Ledger()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + max_seconds
        self._max_requests = max_requests // threads
        self._threads = [threading.Thread(target=self._run, args=(index,), daemon=True)
                         for index in range(threads)]

    def __enter__(self) -> LoadClients:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> Ledger:
        self._stop.set()
        for thread in self._threads:
            thread.join(SOCKET_TIMEOUT * 2)
        assert not any(thread.is_alive() for thread in self._threads), "a load thread hung"
        return self.ledger

    def _run(self, index: int) -> None:
        records: list[Record] = []
        sock: socket.socket | None = None
        framer = answer_framer()
        try:
            for count in range(self._max_requests):
                if self._stop.is_set() or time.monotonic() > self._deadline:
                    break
                question = QUESTIONS[(index + count) % len(QUESTIONS)]
                if sock is None:
                    sock, framer = self._connect(records)
                    if sock is None:
                        continue
                record = _ask(sock, framer, question)
                records.append(record)
                asked_here = count + 1
                if record.error or self.per_request or (
                        self.per_connection and asked_here % self.per_connection == 0):
                    sock.close()
                    sock = None
                if self.think:
                    self._stop.wait(self.think)
        finally:
            if sock is not None:
                sock.close()
            self.ledger.add(records)

    def _connect(self, records: list[Record]) -> tuple[socket.socket | None, Framer]:
        started = time.monotonic()
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=SOCKET_TIMEOUT)
        except OSError as error:
            records.append(Record(started, time.monotonic(), error=f"refused: {error}"))
            time.sleep(0.01)
            return None, answer_framer()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, answer_framer()


def _ask(sock: socket.socket, framer: Framer, question: bytes) -> Record:
    record = Record(time.monotonic(), 0.0)
    try:
        sock.sendall(question)
        answers: list[bytes] = []
        while not answers:
            data = sock.recv(4096)
            if not data:
                record.error = "short read"
                break
            answers = framer.feed(data)
        if answers:
            record.answer = answers[0]
            if len(answers) > 1:
                record.error = f"extra answers: {answers[1:]!r}"
    except TimeoutError:
        record.error = "timeout"
    except OSError as error:
        record.error = f"reset: {error}"
    record.ended = time.monotonic()
    return record
