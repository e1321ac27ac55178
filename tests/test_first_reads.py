"""How servers read a request: FIRST_READ_BYTES first, more once a read fills it; the shortcut.

A request is read into FIRST_READ_BYTES (cheap to allocate, see first_read);
a read that fills it is followed by bigger ones (the blocking loop: one that
does not wait; poll, epoll and gevent: the connection's reads grow). None of
it may show to a client: a burst past the first read is answered whole, in
order, and counted, and a full first read that ends in the middle of a
question is answered as far as it goes at once. Known questions are answered
by the loops themselves from Conversation.shortcut(). (The asyncio transports'
read sizes are tested in test_aio_connection.py.)
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ANSWER, QUESTION, SOCKET_TIMEOUT, connect, read_answers, wait_for
from zenserve.config import Limits
from zenserve.conversation import Conversation
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_UNKNOWN
from zenserve.servers.first_read import FIRST_READ_BYTES
from zenserve.service import Service, pep20_table
from zenserve.stats import Stats

BLOCKING = ["single", "threaded", "socketserver", "forking"]
LOOPS = ["poll", "epoll", "gevent"]
UNKNOWN = b"Nobody is better than?"


def _burst_straddling_the_first_read() -> tuple[bytes, list[bytes]]:
    """Known questions past FIRST_READ_BYTES, one of them cut by its end, plus an unknown one."""
    table = list(pep20_table().items())
    burst, answers = b"", []
    while len(burst) <= FIRST_READ_BYTES or len(burst) - len(table[0][0]) < FIRST_READ_BYTES:
        question, answer = table[len(answers) % len(table)]
        burst += question
        answers.append(answer)
    return burst + UNKNOWN, [*answers, ERROR_UNKNOWN]


def _counter(server: ServerProcess, name: str) -> float:
    assert server.metrics_url is not None
    metrics = urllib.request.urlopen(server.metrics_url, timeout=SOCKET_TIMEOUT).read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.MULTILINE)
    assert match is not None, f"{name} not in the metrics"
    return float(match.group(1))


@pytest.mark.parametrize("arch", BLOCKING + LOOPS)
def test_bursts_past_the_first_read_are_answered_in_order_and_counted(arch: str) -> None:
    burst, answers = _burst_straddling_the_first_read()
    assert burst.find(b"?", FIRST_READ_BYTES - 1) > FIRST_READ_BYTES  # a question is cut
    with ServerProcess("--arch", arch, "--metrics-port", "0") as server:
        with connect(server.port) as client:
            client.sendall(QUESTION)
            assert read_answers(client, 1) == [ANSWER]
            for _ in range(2):  # an event loop: the first burst while reads are small
                client.sendall(burst)
                assert read_answers(client, len(answers)) == answers
        bytes_in = len(QUESTION) + 2 * len(burst)
        # A forked child reports when its conversation ends, so wait for the count.
        wait_for(lambda: _counter(server, "zenserve_bytes_received_total") == bytes_in)
        bytes_out = len(ANSWER) + 2 * sum(len(answer) for answer in answers)
        assert _counter(server, "zenserve_bytes_sent_total") == bytes_out
        answered = 'zenserve_requests_total{outcome="answered"}'
        assert _counter(server, answered) == 1 + 2 * (len(answers) - 1)
        assert _counter(server, 'zenserve_requests_total{outcome="unknown"}') == 2


@pytest.mark.parametrize("arch", ["single", "forking", *LOOPS])
def test_a_full_first_read_ending_mid_question_is_answered_as_far_as_it_goes(arch: str) -> None:
    table = list(pep20_table().items())
    head, answers = b"", []
    while len(head) + len(table[len(answers) % len(table)][0]) < FIRST_READ_BYTES:
        question, answer = table[len(answers) % len(table)]
        head += question
        answers.append(answer)
    cut, last_answer = table[len(answers) % len(table)]
    split = FIRST_READ_BYTES - len(head)
    with ServerProcess("--arch", arch) as server, connect(server.port) as client:
        client.sendall(head + cut[:split])  # exactly FIRST_READ_BYTES, the last question cut
        assert read_answers(client, len(answers)) == answers  # before the rest is sent
        client.sendall(cut[split:] + QUESTION)
        assert read_answers(client, 2) == [last_answer, ANSWER]


def test_a_known_question_longer_than_the_first_read_is_answered(tmp_path: Path) -> None:
    long_question = "Is " + "very " * (FIRST_READ_BYTES // 4) + "long better than short?"
    table = tmp_path / "long.json"
    table.write_text(json.dumps({long_question: "Sometimes.", "Short?": "Yes."}))
    with (ServerProcess("--arch", "single", "--aphorisms", str(table)) as server,
          connect(server.port) as client):
        for _ in range(3):
            client.sendall(long_question.encode() + b"Short?")
            assert read_answers(client, 2) == [b"Sometimes.", b"Yes."]


def test_the_shortcut_is_the_ready_table_and_the_conversations_stats() -> None:
    service, stats = Service(), Stats()
    conversation = Conversation(service, stats, Limits(), "test")
    ready, counted_in = conversation.shortcut()
    assert ready is service.ready_answers(Limits().max_request_bytes)
    assert ready[QUESTION] == ANSWER
    assert counted_in is stats


def test_a_conversation_that_watches_receive_offers_no_shortcut() -> None:
    class Watching(Conversation):
        __slots__ = ("seen",)

        def receive(self, data: bytes) -> bytes:
            self.seen = data
            return super().receive(data)

    ready, _ = Watching(Service(), Stats(), Limits(), "test").shortcut()
    assert ready == {}


@pytest.mark.parametrize("arch", ["single", "threaded"])
def test_a_known_question_after_an_unfinished_one_is_part_of_it(arch: str) -> None:
    with (ServerProcess("--arch", arch, "--metrics-port", "0") as server,
          connect(server.port) as client):
        client.sendall(QUESTION[:-1])  # unfinished: no "?" yet
        # Read by the server, so the known question below arrives in a read of its own.
        wait_for(lambda: _counter(server, "zenserve_bytes_received_total") == len(QUESTION) - 1)
        client.sendall(QUESTION)  # a known question, but it ends the unfinished one
        assert read_answers(client, 1) == [ERROR_UNKNOWN]
        client.sendall(QUESTION)  # back at a boundary
        assert read_answers(client, 1) == [ANSWER]
