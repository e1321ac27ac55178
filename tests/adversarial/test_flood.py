"""Pipelined flood: 100,000 questions from a client that does not read its answers.

The questions are 200 bytes and their answers 600, so a server without
backpressure (one that keeps reading and buffers the answers) would hold about
60 MB of answers and fail the 50 MiB bound; one that stops reading from the
flooder holds a few of its reads' worth.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tests.adversarial.harness import Setup, logged_server, with_workers
from tests.helpers import connect, read_answers
from zenserve.footprint import proportional_memory
from zenserve.hostile import Flood

FLOOD_QUESTIONS = 100_000
MEMORY_GROWTH_LIMIT = 50 * 2**20  # the bound on the server's growth
STALL_WINDOW = 0.5  # how long the flooder does not read, while others are served
OTHER_CLIENT_ASKS = 10
SAMPLE_INTERVAL = 0.02


def flood_table() -> dict[bytes, bytes]:
    """Ten questions of 200 bytes whose answers are 600 bytes, all different."""
    table = {}
    for index in range(10):
        question = f"Flood question {index} ".encode().ljust(199, b"q") + b"?"
        table[question] = f"Flood answer {index} ".encode().ljust(599, b"a") + b"."
    return table


class MemorySampler:
    """The server tree's proportional memory, sampled in a thread; keeps the peak."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = proportional_memory(pid)
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.peak = max(self.peak, proportional_memory(self.pid))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.peak = max(self.peak, proportional_memory(self.pid))


@pytest.mark.slow
def test_a_flood_is_backpressured_and_fully_answered_in_order(
    hostile_setup: Setup, tmp_path: Path, report: list[str]
) -> None:
    table = flood_table()
    table_path = tmp_path / "flood.json"
    table_path.write_text(json.dumps({q.decode(): a.decode() for q, a in table.items()}))
    questions = list(table)
    with logged_server(hostile_setup, tmp_path, "--aphorisms", str(table_path),
                       "--idle-timeout", "30s") as server:
        for question in questions:  # warm up: every answer once, before the baseline
            assert ask_once(server.port, question) == table[question]
        with MemorySampler(server.pid) as memory:
            flood = Flood("127.0.0.1", server.port, questions, FLOOD_QUESTIONS)
            try:
                flood.start()
                others_served_during = others_can_ask(hostile_setup, server.port, table)
                received, first_wrong = flood.read_answers(table)
            finally:
                flood.close()
        growth = memory.peak - memory.baseline
        report.append(f"flood {' '.join(hostile_setup[1][1:])}: peak memory growth "
                      f"{growth / 2**20:.1f} MiB for {FLOOD_QUESTIONS} unread questions")
        assert received == FLOOD_QUESTIONS
        assert first_wrong == -1, f"answer {first_wrong} does not answer question {first_wrong}"
        assert flood.send_error is None, f"the flooder could not send: {flood.send_error}"
        assert growth < MEMORY_GROWTH_LIMIT, f"server memory grew {growth / 2**20:.1f} MiB"
        if not others_served_during:  # one at a time: served once the flooder is done
            assert others_can_ask(hostile_setup, server.port, table, during_flood=False)
        server.assert_alive()
        server.assert_no_traceback()


def ask_once(port: int, question: bytes) -> bytes:
    with connect(port) as sock:
        sock.sendall(question)
        return read_answers(sock, 1)[0]


def others_can_ask(setup: Setup, port: int, table: dict[bytes, bytes],
                   during_flood: bool = True) -> bool:
    """Other clients ask while the flooder stalls (one-at-a-time servers: after it)."""
    architecture, _ = setup
    if during_flood and architecture.concurrency == "one" and not with_workers(setup):
        time.sleep(STALL_WINDOW)  # let the flood stall the server before the flooder reads
        return False
    questions = list(table)
    pace = STALL_WINDOW / OTHER_CLIENT_ASKS
    for index in range(OTHER_CLIENT_ASKS):
        question = questions[index % len(questions)]
        assert ask_once(port, question) == table[question]
        time.sleep(pace)
    return True
