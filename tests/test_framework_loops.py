"""The framework event loops (asyncio-callbacks, asyncio-coroutines, uvloop, gevent).

What the conformance and hostile suites do not already check for them: the
cost knob's honest effect, backpressure while an io cost is awaited,
``--max-connections``, timeouts from one sweep per loop, graceful shutdown at
request boundaries, and optional dependencies that stay optional.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.adversarial.harness import read_all_tolerating_reset
from tests.adversarial.test_flood import MemorySampler
from tests.helpers import (
    ANSWER,
    QUESTION,
    connect,
    environment_without,
    read_answers,
    read_until_closed,
    wait_for,
)
from tests.test_metrics import key, scrape
from zenserve.hostile import Flood, server_closed
from zenserve.process import ServerProcess
from zenserve.protocol import ERROR_BUSY

FRAMEWORK_LOOPS = ["asyncio-callbacks", "asyncio-coroutines", "uvloop", "gevent"]
SRC = Path(__file__).resolve().parents[1] / "src" / "zenserve"


def answered_once(*socks: socket.socket) -> None:
    """Ask on each connection once: it is accepted and being served."""
    for sock in socks:
        sock.sendall(QUESTION)
        assert read_answers(sock, 1) == [ANSWER]


def waiting_for_answers(sock: socket.socket) -> bool:
    """True while nothing has arrived on ``sock`` yet."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


# The cost knob: io is awaited, block stalls the loop.

COST = 0.1
PATIENT_QUESTIONS = 8  # the patient client's questions cost 0.8 s in a row
QUICK_ROUND_TRIPS = 3  # the quick client's cost 0.3 s


@pytest.mark.parametrize("architecture", FRAMEWORK_LOOPS)
@pytest.mark.parametrize("kind", ["io", "block"])
def test_io_cost_lets_others_through_while_block_cost_stalls_the_loop(
    architecture: str, kind: str
) -> None:
    with ServerProcess("--arch", architecture, "--cost", f"{COST}s",
                       "--cost-kind", kind) as server, \
            connect(server.port) as patient, connect(server.port) as quick:
        answered_once(patient, quick)
        started = time.monotonic()
        patient.sendall(QUESTION * PATIENT_QUESTIONS)
        for _ in range(QUICK_ROUND_TRIPS):
            quick.sendall(QUESTION)
            assert read_answers(quick, 1) == [ANSWER]
        patient_still_waiting = waiting_for_answers(patient)
        assert read_answers(patient, PATIENT_QUESTIONS) == [ANSWER] * PATIENT_QUESTIONS
        all_answered = time.monotonic() - started
    if kind == "io":
        # The quick client asked three times, one after the other, while the
        # patient one's answers were still being waited for.
        assert patient_still_waiting
    else:
        # Every cost was spent in a row by the one loop (in whichever order it
        # woke the two clients): a lower bound, which a busy machine can only
        # make larger. Overlapping costs would be done in 8 of the 11.
        assert all_answered >= (PATIENT_QUESTIONS + QUICK_ROUND_TRIPS) * COST * 0.98


# Backpressure while questions wait for an io cost.

FLOOD_QUESTIONS = 10_000
FLOOD_COST = "100us"  # 1 s of cost in all, while the questions (10 MB) arrive in a blink
FLOOD_GROWTH_LIMIT = 5 * 2**20  # without backpressure the server would hold all 10 MB


def long_question_table() -> dict[bytes, bytes]:
    """Two questions of 1000 bytes with short answers: the questions are what piles up."""
    return {f"Long question {index} ".encode().ljust(999, b"q") + b"?": f"Answer {index}.".encode()
            for index in range(2)}


@pytest.mark.slow
@pytest.mark.parametrize("architecture", FRAMEWORK_LOOPS)
def test_questions_waiting_for_an_io_cost_stop_the_reading(
    architecture: str, tmp_path: Path
) -> None:
    table = long_question_table()
    table_path = tmp_path / "long.json"
    table_path.write_text(json.dumps({q.decode(): a.decode() for q, a in table.items()}))
    with ServerProcess("--arch", architecture, "--aphorisms", str(table_path),
                       "--cost", FLOOD_COST, "--cost-kind", "io",
                       "--idle-timeout", "30s") as server:
        for question, answer in table.items():
            with connect(server.port) as sock:
                sock.sendall(question)
                assert read_answers(sock, 1) == [answer]
        with MemorySampler(server.process.pid) as memory:
            flood = Flood("127.0.0.1", server.port, list(table), FLOOD_QUESTIONS)
            try:
                flood.start()
                received, first_wrong = flood.read_answers(table)
            finally:
                flood.close()
        assert flood.send_error is None, f"the flooder could not send: {flood.send_error}"
    assert received == FLOOD_QUESTIONS
    assert first_wrong == -1, f"answer {first_wrong} does not answer question {first_wrong}"
    growth = memory.peak - memory.baseline
    assert growth < FLOOD_GROWTH_LIMIT, f"server memory grew {growth / 2**20:.1f} MiB"


# --max-connections.

def ask_or_busy(port: int) -> bytes:
    """One question's reply on a new connection: the answer, the busy error, or b"" if reset."""
    with connect(port) as sock:
        sock.sendall(QUESTION)
        return read_all_tolerating_reset(sock) if not read_answers_or_close(sock) else ANSWER


def read_answers_or_close(sock: socket.socket) -> bool:
    """True when the server answered (and kept the connection), False when it closed."""
    data = b""
    try:
        while not data.endswith(b"."):
            more = sock.recv(4096)
            if not more:
                break
            data += more
    except ConnectionResetError:
        return False
    return data == ANSWER and not server_closed(sock)


@pytest.mark.parametrize("architecture", FRAMEWORK_LOOPS)
def test_past_max_connections_a_client_is_told_busy_and_the_slot_is_reused(
    architecture: str,
) -> None:
    with ServerProcess("--arch", architecture, "--max-connections", "2",
                       "--metrics-port", "0") as server:
        first, second = connect(server.port), connect(server.port)
        try:
            answered_once(first, second)
            with connect(server.port) as third:
                assert read_all_tolerating_reset(third) == ERROR_BUSY
            first.close()  # the server notices the close on its own time: ask until served
            wait_for(lambda: ask_or_busy(server.port) == ANSWER)
            answered_once(second)  # the connections within the limit were never disturbed
        finally:
            first.close()
            second.close()
        assert server.metrics_url is not None
        assert scrape(server.metrics_url)[key("zenserve_requests_total", outcome="busy")] >= 1
        assert server.stop() == 0


# Timeouts: one sweep per loop.

IDLE_TIMEOUT = 1.0
REQUEST_TIMEOUT = 1.5
TICK = 0.1
RUN_FOR = 3.5  # long enough for both timeouts (and a sweep) to pass


@pytest.mark.slow
@pytest.mark.parametrize("architecture", FRAMEWORK_LOOPS)
def test_timeouts_close_the_silent_and_the_unfinished_but_not_the_slow_and_steady(
    architecture: str,
) -> None:
    with ServerProcess("--arch", architecture, "--idle-timeout", f"{IDLE_TIMEOUT}s",
                       "--request-timeout", f"{REQUEST_TIMEOUT}s") as server, \
            connect(server.port) as silent, connect(server.port) as trickler, \
            connect(server.port) as steady:
        answered_once(silent, trickler, steady)
        answers = 0
        deadline = time.monotonic() + RUN_FOR
        while time.monotonic() < deadline:
            for half in (QUESTION[:12], QUESTION[12:]):  # two ticks a question: never idle
                if not server_closed(trickler):
                    with contextlib.suppress(OSError):  # closed between the check and the send
                        trickler.sendall(b"x")  # a byte a tick, and never a question mark
                steady.sendall(half)
                time.sleep(TICK)
            assert read_answers(steady, 1) == [ANSWER]
            answers += 1
        assert answers >= RUN_FOR / TICK / 2 - 2
        assert server_closed(silent), "a client silent past --idle-timeout is still open"
        assert server_closed(trickler), "a question unfinished past --request-timeout is still open"
        answered_once(steady)
        assert server.stop() == 0


# Graceful shutdown at request boundaries.

@pytest.mark.parametrize("architecture", FRAMEWORK_LOOPS)
def test_sigterm_closes_the_idle_at_once_and_lets_a_question_in_progress_finish(
    architecture: str,
) -> None:
    with ServerProcess("--arch", architecture, "--graceful-timeout", "30s") as server, \
            connect(server.port) as idle, connect(server.port) as asking:
        answered_once(idle, asking)
        asking.sendall(QUESTION[:10])
        server.process.send_signal(signal.SIGTERM)
        assert read_until_closed(idle) == b""  # between questions: closed at once
        asking.sendall(QUESTION[10:])
        assert read_until_closed(asking) == ANSWER  # answered, then closed at the boundary
        assert server.process.wait(timeout=20) == 0


@pytest.mark.parametrize("architecture", FRAMEWORK_LOOPS)
def test_the_graceful_timeout_closes_a_question_that_never_ends(architecture: str) -> None:
    graceful_timeout = 1.0
    with ServerProcess("--arch", architecture,
                       "--graceful-timeout", f"{graceful_timeout}s") as server, \
            connect(server.port) as stuck:
        answered_once(stuck)
        stuck.sendall(QUESTION[:10])
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        assert read_all_tolerating_reset(stuck) == b""
        assert time.monotonic() - started >= graceful_timeout * 0.9  # it did wait
        assert server.process.wait(timeout=20) == 0


@pytest.mark.parametrize("architecture", FRAMEWORK_LOOPS)
def test_sigint_during_a_graceful_stop_ends_it_at_once(architecture: str) -> None:
    with ServerProcess("--arch", architecture, "--graceful-timeout", "120s") as server, \
            connect(server.port) as idle, connect(server.port) as stuck:
        answered_once(idle, stuck)
        stuck.sendall(QUESTION[:10])
        server.process.send_signal(signal.SIGTERM)
        assert read_until_closed(idle) == b""  # the graceful stop is under way
        # Far sooner than the 120 s the stuck client would otherwise be given.
        assert server.stop(signal.SIGINT, timeout=20) == 0


# Optional dependencies stay optional.

def test_uvloop_missing_is_a_one_line_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "zenserve", "serve", "--arch", "uvloop", "-p", "0"],
        capture_output=True, text=True, timeout=30, env=environment_without("uvloop", tmp_path),
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "zenserve serve: error: architecture 'uvloop' needs a package that is not installed: uvloop"
    ]


def test_asyncio_architectures_import_neither_gevent_nor_uvloop() -> None:
    code = ("import sys\n"
            "from zenserve.servers import server_class\n"
            "server_class('asyncio-callbacks'); server_class('asyncio-coroutines')\n"
            "print(sorted(name for name in ('gevent', 'uvloop') if name in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=30, check=True)
    assert result.stdout.strip() == "[]"


def test_one_module_imports_uvloop_and_no_server_monkey_patches() -> None:
    modules = {str(path.relative_to(SRC)): path.read_text() for path in SRC.rglob("*.py")}
    assert [name for name, text in modules.items() if "import uvloop" in text] == ["loops.py"]
    servers = {path.name: path.read_text() for path in (SRC / "servers").glob("*.py")}
    patching = ("gevent.monkey", "from gevent import monkey", "patch_all(")
    assert not [name for name, text in servers.items() if any(p in text for p in patching)]
