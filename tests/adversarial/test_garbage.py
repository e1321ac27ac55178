"""Oversized and garbage input: the right error or answer, closed only where the protocol says."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from collections.abc import Iterator

import pytest

from tests.adversarial.conftest import HOSTILE_IDS, HOSTILE_SETUPS
from tests.adversarial.harness import LoggedServer, logged_server, read_all_tolerating_reset
from tests.helpers import ANSWER, QUESTION, connect, read_answers
from tests.zen_model import expected_reply
from zenserve.protocol import DEFAULT_MAX_REQUEST_BYTES, ERROR_TOO_LONG, ERROR_UNKNOWN
from zenserve.servers import ARCHITECTURES
from zenserve.service import pep20_table

TABLE = pep20_table()


@pytest.fixture(scope="module", params=HOSTILE_SETUPS, ids=HOSTILE_IDS)
def garbage_server(request: pytest.FixtureRequest,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedServer]:
    """One server per setup for the whole module; the last test reads its stderr."""
    name, extra = request.param
    setup = (ARCHITECTURES[name], ("--arch", name, *extra))
    with logged_server(setup, tmp_path_factory.mktemp("garbage")) as server:
        yield server


def send_in_background(sock: socket.socket, data: bytes) -> threading.Thread:
    """Send ``data`` from a thread; the server may close (or reset) before it is all sent."""

    def send() -> None:
        # The server may close as the protocol says; the reader checks what came back.
        with contextlib.suppress(OSError):
            sock.sendall(data)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def assert_still_conversing(sock: socket.socket) -> None:
    sock.sendall(QUESTION)
    assert read_answers(sock, 1) == [ANSWER]


def test_megabytes_without_a_question_mark_get_too_long_and_a_close(
    garbage_server: LoggedServer,
) -> None:
    with connect(garbage_server.port) as sock:
        sender = send_in_background(sock, b"x" * (4 << 20))
        assert read_all_tolerating_reset(sock) == ERROR_TOO_LONG
        sock.close()
        sender.join(timeout=10)
        assert not sender.is_alive()


def random_binary(seed: int, question_mark_every: int) -> bytes:
    """24 KiB of random bytes, with a ``?`` in every ``question_mark_every`` bytes (0: none)."""
    rng = random.Random(seed)
    payload = bytearray(rng.randbytes(24 * 1024))
    for index in range(0, len(payload) if question_mark_every else 0, question_mark_every or 1):
        payload[rng.randrange(index, min(index + question_mark_every, len(payload)))] = ord("?")
    return bytes(payload)


# Pure noise (a '?' every 256 bytes on average) overflows a 1 KiB request
# somewhere; added question marks give a long conversation that goes on.
RANDOM_CASES = [(1, 0), (2, 0), (3, 40), (4, 200)]


@pytest.mark.parametrize(("seed", "question_mark_every"), RANDOM_CASES)
def test_random_binary_gets_what_the_reference_model_says(
    garbage_server: LoggedServer, seed: int, question_mark_every: int
) -> None:
    payload = random_binary(seed, question_mark_every)
    expected, closes = expected_reply([payload], TABLE, DEFAULT_MAX_REQUEST_BYTES)
    with connect(garbage_server.port) as sock:
        sender = send_in_background(sock, payload)
        sender.join(timeout=10)
        if not closes:
            sock.shutdown(socket.SHUT_WR)  # then the server answers everything and closes
        assert read_all_tolerating_reset(sock) == expected


def test_nul_bytes_are_an_unknown_question_or_too_long(garbage_server: LoggedServer) -> None:
    with connect(garbage_server.port) as sock:
        sock.sendall(b"\x00" * 100 + b"?")
        assert read_answers(sock, 1) == [ERROR_UNKNOWN]
        assert_still_conversing(sock)
        sock.sendall(b"\x00" * 5000)
        assert read_all_tolerating_reset(sock) == ERROR_TOO_LONG


def test_a_lone_question_mark_is_unknown_and_the_conversation_goes_on(
    garbage_server: LoggedServer,
) -> None:
    with connect(garbage_server.port) as sock:
        sock.sendall(b"?")
        assert read_answers(sock, 1) == [ERROR_UNKNOWN]
        sock.sendall(b"?" * 3000)
        assert read_answers(sock, 3000) == [ERROR_UNKNOWN] * 3000
        assert_still_conversing(sock)


def test_thousands_of_whitespace_lines_are_skipped(garbage_server: LoggedServer) -> None:
    with connect(garbage_server.port) as sock:
        sock.sendall(b"\r\n" * 50_000)
        sock.sendall(b" \t\x0b\x0c\n" * 10_000 + QUESTION)
        assert read_answers(sock, 1) == [ANSWER]
        sock.sendall(b"\n" * 100_000)
        assert_still_conversing(sock)


def test_no_exception_escaped_and_the_server_still_serves(garbage_server: LoggedServer) -> None:
    with connect(garbage_server.port) as sock:
        assert_still_conversing(sock)
    garbage_server.assert_alive()
    garbage_server.assert_no_traceback()


def test_the_random_payloads_exercise_both_outcomes() -> None:
    """The seeds above cover a conversation that goes on and one closed as too long."""
    outcomes = {expected_reply([random_binary(*case)], TABLE, DEFAULT_MAX_REQUEST_BYTES)[1]
                for case in RANDOM_CASES}
    assert outcomes == {True, False}
