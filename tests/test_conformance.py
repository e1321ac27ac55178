"""One conformance suite, run over loopback against every architecture setup."""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    ANSWER,
    QUESTION,
    SOCKET_TIMEOUT,
    ask,
    connect,
    read_answers,
    read_until_closed,
)
from zenserve.book import write_listings
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_TOO_LONG, ERROR_UNKNOWN
from zenserve.servers import Architecture
from zenserve.service import pep20_table

Setup = tuple[Architecture, tuple[str, ...]]


def test_answers_known_questions(zen_server: ServerProcess) -> None:
    table = pep20_table()
    with connect(zen_server.port) as sock:
        for question, answer in table.items():
            sock.sendall(question)
            assert read_answers(sock, 1) == [answer]


def test_the_books_client_gets_three_right_answers(
    zen_server: ServerProcess, tmp_path: Path
) -> None:
    client = write_listings(tmp_path)["client.py"]
    result = subprocess.run(
        [sys.executable, str(client), "127.0.0.1", "-p", str(zen_server.port)],
        capture_output=True, text=True, timeout=30, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    book_answers = {"b'Beautiful is better than?' b'Ugly.'",
                    "b'Explicit is better than?' b'Implicit.'",
                    "b'Simple is better than?' b'Complex.'"}
    assert set(lines) <= book_answers


def test_zenserve_ask_prints_three_answers(zen_server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "ask", "-p", str(zen_server.port)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    table = pep20_table()
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        question, answer = line.split("? ")
        assert table[f"{question}?".encode()] == answer.encode()


def test_pipelined_questions_are_answered_in_order(zen_server: ServerProcess) -> None:
    questions = list(pep20_table().items())
    with connect(zen_server.port) as sock:
        sock.sendall(b"".join(q for q, _ in questions) * 5)
        assert read_answers(sock, len(questions) * 5) == [a for _, a in questions] * 5


def test_question_split_byte_by_byte(zen_server: ServerProcess) -> None:
    with connect(zen_server.port) as sock:
        for i in range(len(QUESTION)):
            sock.sendall(QUESTION[i : i + 1])
        assert read_answers(sock, 1) == [ANSWER]


def test_whitespace_before_a_question_is_skipped(zen_server: ServerProcess) -> None:
    with connect(zen_server.port) as sock:
        sock.sendall(b"\r\n\r\n  " + QUESTION + b"\r\n")
        assert read_answers(sock, 1) == [ANSWER]
        sock.sendall(QUESTION)
        assert read_answers(sock, 1) == [ANSWER]


def test_binary_gets_unknown_and_the_conversation_goes_on(zen_server: ServerProcess) -> None:
    with connect(zen_server.port) as sock:
        sock.sendall(b"\x00\xff\xfe\x80 garbage?")
        assert read_answers(sock, 1) == [ERROR_UNKNOWN]
        sock.sendall(b"?")
        assert read_answers(sock, 1) == [ERROR_UNKNOWN]
        sock.sendall(QUESTION)
        assert read_answers(sock, 1) == [ANSWER]


def test_oversized_request_gets_an_error_and_is_closed(zen_server: ServerProcess) -> None:
    with connect(zen_server.port) as sock:
        sock.sendall(QUESTION + b"x" * 5000)
        assert read_until_closed(sock) == ANSWER + ERROR_TOO_LONG


def test_half_close_after_a_question_still_gets_the_answer(zen_server: ServerProcess) -> None:
    with connect(zen_server.port) as sock:
        sock.sendall(QUESTION + QUESTION)
        sock.shutdown(socket.SHUT_WR)
        assert read_until_closed(sock) == ANSWER + ANSWER


def test_reset_in_mid_answer_does_not_disturb_others(zen_server: ServerProcess) -> None:
    rude = connect(zen_server.port)
    rude.sendall(QUESTION * 2000)
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    rude.close()  # RST while answers are in flight
    assert ask(zen_server.port) == ANSWER


def test_half_question_then_leaving_leaves_the_server_running(zen_server: ServerProcess) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "ask", "-e", "-p", str(zen_server.port)],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert ask(zen_server.port) == ANSWER


def test_fifty_idle_connections_block_only_bounded_architectures(
    setup: Setup, zen_server: ServerProcess
) -> None:
    """Concurrent architectures serve past 50 idle clients; single and a pool cannot."""
    architecture, _ = setup
    idle = [connect(zen_server.port) for _ in range(50)]
    try:
        if architecture.concurrency == "many":
            assert ask(zen_server.port) == ANSWER
            return
        with connect(zen_server.port) as probe:
            probe.sendall(QUESTION)
            probe.settimeout(0.5)
            with pytest.raises(TimeoutError):
                probe.recv(100)
            for sock in idle:
                sock.close()
            probe.settimeout(SOCKET_TIMEOUT)
            assert read_answers(probe, 1) == [ANSWER]
    finally:
        for sock in idle:
            sock.close()


def test_sigterm_during_traffic_loses_no_answer_and_exits_zero(setup: Setup) -> None:
    _, args = setup
    with ServerProcess(*args) as server, connect(server.port) as sock:
        sock.sendall(QUESTION)
        assert read_answers(sock, 1) == [ANSWER]
        sock.sendall(QUESTION * 10)
        server.process.send_signal(signal.SIGTERM)
        # Every question sent before the signal is answered, then the server closes.
        assert read_until_closed(sock) == ANSWER * 10
        assert server.process.wait(timeout=20) == 0


def test_sigint_stops_at_once(setup: Setup) -> None:
    _, args = setup
    with ServerProcess(*args) as server:
        idle = connect(server.port)
        try:
            assert server.stop(signal.SIGINT) == 0
        finally:
            idle.close()
