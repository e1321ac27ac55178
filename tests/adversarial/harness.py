"""What every hostile test needs: the setups to run, a server whose stderr is kept, probes."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import server_setups
from tests.helpers import ANSWER, QUESTION, connect, read_answers
from zenserve.cli import build_parser
from zenserve.errors import ZenserveError
from zenserve.footprint import Footprint, footprint
from zenserve.process import ServerProcess
from zenserve.servers import ARCHITECTURES, Architecture

REPO_ROOT = Path(__file__).resolve().parents[2]
# Architectures that fork a process for each connection: a crash there takes
# one connection's process, and every connection costs a fork().
FORKS_PER_CONNECTION = frozenset({"forking"})
Setup = tuple[Architecture, tuple[str, ...]]
QUIET_FOR = 0.3  # a footprint unchanged this long counts as steady


def serve_accepts(option: str, value: str) -> bool:
    """True when `zenserve serve` knows ``option`` (it appears in `zenserve serve --help`)."""
    _, unknown = build_parser().parse_known_args(["serve", option, value])
    return not unknown


def hostile_setups() -> list[tuple[str, tuple[str, ...]]]:
    """The conformance suite's setups, plus ``--workers 2`` ones once serve has that option."""
    setups = server_setups()
    has_workers = any("--workers" in extra for _, extra in setups)
    if not has_workers and serve_accepts("--workers", "2"):
        setups += [(name, ("--workers", "2")) for name in ARCHITECTURES]
    return setups


def setup_id(name: str, extra: tuple[str, ...]) -> str:
    return "-".join((name, *extra))


def with_workers(setup: Setup) -> bool:
    return "--workers" in setup[1]


def serves_many_at_once(setup: Setup) -> bool:
    """Event loops and a thread or process per connection; not one-at-a-time, not a pool."""
    architecture, _ = setup
    return architecture.concurrency == "many"


@dataclass
class LoggedServer:
    """A running server and the file its stderr goes to."""

    process: ServerProcess
    log_path: Path

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def pid(self) -> int:
        return self.process.process.pid

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_no_traceback(self) -> None:
        text = self.stderr()
        assert "Traceback" not in text, f"an exception escaped:\n{text[-4000:]}"

    def assert_alive(self) -> None:
        status = self.process.process.poll()
        assert status is None, f"server exited with {status}:\n{self.stderr()[-4000:]}"


@contextmanager
def logged_server(setup: Setup, log_dir: Path, *options: str,
                  with_test_services: bool = False) -> Iterator[LoggedServer]:
    """Start ``zenserve serve`` for ``setup`` with ``options``, its stderr in ``log_dir``."""
    _, args = setup
    env = os.environ.copy()
    if with_test_services:  # `--service tests.services...` imports from the repository root
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          env.get("PYTHONPATH")]))
    log_path = log_dir / f"server-{time.monotonic_ns()}.stderr"
    with log_path.open("wb") as log:
        try:
            server = ServerProcess(*args, *options, stderr=log.fileno(), env=env)
        except ZenserveError as error:
            raise AssertionError(f"{error}; its stderr:\n{log_path.read_text()}") from None
        with server:
            yield LoggedServer(server, log_path)


def steady_footprint(pid: int, timeout: float = 15.0) -> Footprint:
    """The footprint once it stops changing (bounded), so lazy start-up is not a 'leak'."""
    deadline = time.monotonic() + timeout
    previous = footprint(pid)
    while time.monotonic() < deadline:
        time.sleep(QUIET_FOR)
        current = footprint(pid)
        if current.exceeds(previous) == previous.exceeds(current) == []:
            return current
        previous = current
    return previous


def timed_ask(port: int, question: bytes = QUESTION) -> float:
    """Seconds a new client takes to connect, ask and get the right answer."""
    started = time.perf_counter()
    with connect(port) as sock:
        sock.sendall(question)
        answer = read_answers(sock, 1)[0]
    elapsed = time.perf_counter() - started
    assert answer == ANSWER, f"wrong answer {answer!r}"
    return elapsed


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample at or above ``fraction`` of them."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def read_all_tolerating_reset(sock: socket.socket) -> bytes:
    """Everything received until the server closes, whether with a FIN or an RST."""
    chunks = []
    try:
        while data := sock.recv(65536):
            chunks.append(data)
    except ConnectionResetError:
        pass
    return b"".join(chunks)
