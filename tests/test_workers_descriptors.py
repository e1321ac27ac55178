"""Workers under a small descriptor limit (``ulimit -n``): they serve, or serve refuses in one line.

Reported: ``ulimit -n 64; zenserve serve --arch threaded --workers 64`` logged
"accept() failed (Too many open files); backing off" with no client at all.
Every worker inherited one eventfd per worker (the event loops' accept turns),
so each started at its limit; and accept() takes a descriptor before it looks
for a connection, so it failed with nobody waiting. Now the blocking
architectures, which never take turns, get no eventfds, and a worker left with
too few descriptors refuses to start instead of warning in a loop.
"""

from __future__ import annotations

import resource
from pathlib import Path

import psutil
import pytest

from tests.helpers import ANSWER, ask
from zenserve.descriptors import SPARE_DESCRIPTORS
from zenserve.errors import ZenserveError
from zenserve.process import ServerProcess

LIMIT = 64
# Near the limit: 48 eventfds and what the supervisor holds fit under 64, but a
# worker holding those 48 and its own has fewer than SPARE_DESCRIPTORS left.
EVENT_LOOP_WORKERS = 48


@pytest.fixture(autouse=True)
def hard_limit_allows() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard == resource.RLIM_INFINITY or hard >= LIMIT


def test_sixty_four_threaded_workers_serve_under_ulimit_64(tmp_path: Path) -> None:
    log_path = tmp_path / "server.stderr"
    with log_path.open("wb") as log, ServerProcess(
            "--arch", "threaded", "--workers", "64", stderr=log.fileno(),
            descriptor_limit=LIMIT) as server:
        workers = psutil.Process(server.process.pid).children()
        assert len(workers) == 64
        # Each holds what one worker needs, not one descriptor per worker.
        assert max(worker.num_fds() for worker in workers) <= LIMIT - SPARE_DESCRIPTORS
        for _ in range(3):
            assert ask(server.port) == ANSWER
        assert server.stop() == 0
    stderr = log_path.read_text()
    assert "Too many open files" not in stderr
    assert "Traceback" not in stderr


def test_workers_without_descriptors_to_spare_refuse_in_one_line(tmp_path: Path) -> None:
    log_path = tmp_path / "server.stderr"
    with log_path.open("wb") as log, pytest.raises(ZenserveError, match="exited with status 2"), \
            ServerProcess("--arch", "epoll", "--workers", str(EVENT_LOOP_WORKERS),
                          stderr=log.fileno(), descriptor_limit=LIMIT):
        pass  # started after all: stopped on the way out, and the test fails
    lines = log_path.read_text().splitlines()
    assert len(lines) == 1, lines
    assert "cannot start" in lines[0]
    assert "one per worker" in lines[0]
    assert f"the limit (ulimit -n) is {LIMIT}" in lines[0]
