"""How the event loops and gevent read: a small first read, big reads once one comes back full.

A connection's reads start at FIRST_RECV_BYTES (a bytes object CPython takes
from its small-object pools); a read that fills it switches the connection to
big reads. Nothing of this may show to a client: a burst past the first read
is answered whole, in order, and counted, and a full first read that ends in
the middle of a question is answered as far as it goes at once.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from tests.helpers import ANSWER, QUESTION, SOCKET_TIMEOUT, connect, read_answers, wait_for
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_UNKNOWN
from zenserve.servers.eventloop_connection import FIRST_RECV_BYTES
from zenserve.service import pep20_table

LOOPS = ["poll", "epoll", "gevent"]
UNKNOWN = b"Nobody is better than?"


def _burst_straddling_the_first_read() -> tuple[bytes, list[bytes]]:
    """Known questions past FIRST_RECV_BYTES, one of them cut by its end, plus an unknown one."""
    table = list(pep20_table().items())
    burst, answers = b"", []
    while len(burst) <= FIRST_RECV_BYTES or len(burst) - len(table[0][0]) < FIRST_RECV_BYTES:
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


@pytest.mark.parametrize("arch", LOOPS)
def test_bursts_past_the_first_read_are_answered_in_order_and_counted(arch: str) -> None:
    burst, answers = _burst_straddling_the_first_read()
    assert burst.find(b"?", FIRST_RECV_BYTES - 1) > FIRST_RECV_BYTES  # a question is cut
    with ServerProcess("--arch", arch, "--metrics-port", "0") as server:
        with connect(server.port) as client:
            client.sendall(QUESTION)
            assert read_answers(client, 1) == [ANSWER]
            for _ in range(2):  # the first burst while reads are small, then with big ones
                client.sendall(burst)
                assert read_answers(client, len(answers)) == answers
        bytes_in = len(QUESTION) + 2 * len(burst)
        wait_for(lambda: _counter(server, "zenserve_bytes_received_total") == bytes_in)
        bytes_out = len(ANSWER) + 2 * sum(len(answer) for answer in answers)
        assert _counter(server, "zenserve_bytes_sent_total") == bytes_out
        answered = 'zenserve_requests_total{outcome="answered"}'
        assert _counter(server, answered) == 1 + 2 * (len(answers) - 1)
        assert _counter(server, 'zenserve_requests_total{outcome="unknown"}') == 2


@pytest.mark.parametrize("arch", LOOPS)
def test_a_full_first_read_ending_mid_question_is_answered_as_far_as_it_goes(arch: str) -> None:
    table = list(pep20_table().items())
    head, answers = b"", []
    while len(head) + len(table[len(answers) % len(table)][0]) < FIRST_RECV_BYTES:
        question, answer = table[len(answers) % len(table)]
        head += question
        answers.append(answer)
    cut, last_answer = table[len(answers) % len(table)]
    split = FIRST_RECV_BYTES - len(head)
    with ServerProcess("--arch", arch) as server, connect(server.port) as client:
        client.sendall(head + cut[:split])  # exactly FIRST_RECV_BYTES, the last question cut
        assert read_answers(client, len(answers)) == answers  # before the rest is sent
        client.sendall(cut[split:] + QUESTION)
        assert read_answers(client, 2) == [last_answer, ANSWER]
