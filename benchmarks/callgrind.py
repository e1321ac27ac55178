"""Counting a running server's instructions with callgrind, one measured interval at a time.

A server starts under ``valgrind --tool=callgrind --instr-atstart=no``: it
runs uninstrumented (and so starts in seconds) until ``instrument()`` switches
counting on. Each ``interval()`` block then counts the instructions (Ir) the
server executes while the block runs: the leader's counters are dumped at the
block's end (``callgrind_control -d``, which also zeroes them) and the
processes it forked during the block (a forking server's per-connection
children) add their own dumps, written when they exit.

Instruction counts do not depend on what else the machine is doing, which is
why the issue-3 comparison leans on them: two runs of the same server agree to
a fraction of a percent where their wall-clock rates differ by ±20%.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from contenders import Contender, RunningServer

from zenserve.errors import ZenserveError

CONTROL_TIMEOUT_SECONDS = 60.0
# How long forked children get to exit (and write their dumps) after a block.
CHILDREN_EXIT_SECONDS = 30.0
CHILDREN_POLL_SECONDS = 0.05


@dataclass(slots=True)
class Interval:
    """What one ``interval()`` block counted: filled in when the block ends."""

    instructions: int = 0


def callgrind_tools() -> tuple[str, str]:
    """valgrind and callgrind_control, or one clear error naming the package."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        raise ZenserveError("valgrind is not installed (apt-get install valgrind)")
    return valgrind, control


def dump_total(path: Path) -> int:
    """The instructions a callgrind dump file counted (its ``summary:`` or ``totals:`` line)."""
    with path.open(encoding="utf-8", errors="replace") as dump:
        for line in dump:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise ZenserveError(f"{path} has no summary line: not a callgrind dump")


class CountedServer:
    """A contender running under callgrind, counting nothing until ``instrument()``."""

    def __init__(self, contender: Contender, scratch: Path) -> None:
        valgrind, self._control = callgrind_tools()
        self._dumps = scratch / contender.label.replace(" ", "_").replace("/", "_")
        self._dumps.mkdir(parents=True, exist_ok=True)
        wrapped = dataclasses.replace(contender, command=(
            valgrind, "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={self._dumps / 'cg.%p'}", *contender.command))
        # Everything runs ~50 times slower under valgrind; so does starting up.
        self._server = RunningServer(wrapped, ready_timeout=120.0)
        self.port = self._server.port
        self._pid = self._server.process.pid
        self._dumped = 0

    def _control_command(self, *arguments: str) -> None:
        result = subprocess.run([self._control, *arguments, str(self._pid)], capture_output=True,
                                text=True, timeout=CONTROL_TIMEOUT_SECONDS, check=False)
        if result.returncode != 0:
            raise ZenserveError(f"callgrind_control {' '.join(arguments)} failed: "
                                f"{(result.stderr or result.stdout).strip()}")

    def instrument(self) -> None:
        """Start counting (everything before this, the start-up, is not counted)."""
        self._control_command("-i", "on")
        self._control_command("-z")  # what ran before instrumenting is not wanted

    @contextlib.contextmanager
    def interval(self) -> Iterator[Interval]:
        """Count the instructions the server (and what it forks) runs while the block runs."""
        before = set(self._dumps.iterdir())
        counted = Interval()
        yield counted
        self._control_command("-d")
        self._dumped += 1
        self._wait_for_children()
        leader_dump = self._dumps / f"cg.{self._pid}.{self._dumped}"
        children = [path for path in set(self._dumps.iterdir()) - before
                    if not path.name.startswith(f"cg.{self._pid}")]
        counted.instructions = sum(dump_total(path) for path in [leader_dump, *children])

    def _wait_for_children(self) -> None:
        deadline = time.monotonic() + CHILDREN_EXIT_SECONDS
        with contextlib.suppress(psutil.NoSuchProcess):
            leader = psutil.Process(self._pid)
            while leader.children() and time.monotonic() < deadline:
                time.sleep(CHILDREN_POLL_SECONDS)  # bounded by the deadline

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> CountedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
