"""Syscalls per request of a load generator, counted with ``strace -f -c``.

Evidence for benchmarks/RESULTS.md: the C reference load generator and
`zenserve bench` make the same calls per request (one read, one write, and an
epoll wait shared by the connections that were ready together), so any gap
between them is CPU spent outside the kernel. strace slows both down a lot;
counts per request are what it is used for, never rates.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reference import CONNECT_ALLOWANCE_SECONDS

STRACE_SECONDS = 2.0
ATTEMPTS = 3
READS, WRITES, WAITS = ("read",), ("write",), ("epoll_wait", "epoll_pwait")
_RATE = re.compile(r"req/s=(\d+(?:\.\d+)?)")


@dataclass(frozen=True, slots=True)
class SyscallProfile:
    """Calls per answered request."""

    reads: float
    writes: float
    waits: float


def strace_available() -> bool:
    return shutil.which("strace") is not None


def parse_summary(text: str) -> dict[str, int]:
    """``strace -c`` table -> {syscall: calls}."""
    calls: dict[str, int] = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) in (5, 6) and words[3].isdigit() and words[-1] != "total":
            calls[words[-1]] = int(words[3])
    return calls


def _traced(command: list[str], scratch: Path, timeout: float) -> tuple[dict[str, int], str]:
    summary = scratch / "strace.txt"
    completed = subprocess.run(["strace", "-f", "-c", "-o", str(summary), "--", *command],
                               capture_output=True, text=True, timeout=timeout, check=False)
    return parse_summary(summary.read_text()), completed.stdout


def _per_request(calls: dict[str, int], requests: float) -> SyscallProfile:
    def total(names: tuple[str, ...]) -> float:
        return sum(calls.get(name, 0) for name in names) / requests

    return SyscallProfile(total(READS), total(WRITES), total(WAITS))


def c_generator_profile(load: Path, port: int, connections: int) -> SyscallProfile | None:
    """The C generator's calls per request (None if it failed under strace)."""
    with tempfile.TemporaryDirectory(prefix="zenserve-strace-") as scratch:
        calls, stdout = _traced([str(load), str(port), str(connections), f"{STRACE_SECONDS:g}"],
                                Path(scratch), STRACE_SECONDS + CONNECT_ALLOWANCE_SECONDS + 30)
    match = _RATE.search(stdout)
    if match is None or float(match.group(1)) == 0:
        return None
    return _per_request(calls, float(match.group(1)) * STRACE_SECONDS)


def _traced_bench(port: int, connections: int, questions: list[str],
                  seconds: float) -> tuple[dict[str, int], int]:
    with tempfile.TemporaryDirectory(prefix="zenserve-strace-") as scratch:
        result = Path(scratch) / "bench.json"
        command = [sys.executable, "-m", "zenserve", "bench", "-p", str(port),
                   "-c", str(connections), "-d", f"{seconds:g}s", "--warmup", "0s",
                   "--processes", "1", "--quiet", "--json", str(result)]
        for question in questions:
            command += ["-q", question]
        calls, _ = _traced(command, Path(scratch), seconds + 120)
        requests = json.loads(result.read_text())["requests"] if result.exists() else 0
    return calls, requests


def bench_profile(port: int, connections: int, questions: list[str]) -> SyscallProfile | None:
    """`zenserve bench`'s calls per request (coordinator and worker), startup excluded.

    Two runs, short and long: their difference in calls over their difference
    in requests leaves out what an interpreter's start costs (module reads).
    """
    for _ in range(ATTEMPTS):
        short_calls, short_requests = _traced_bench(port, connections, questions, 1.0)
        long_calls, long_requests = _traced_bench(port, connections, questions,
                                                  1.0 + STRACE_SECONDS)
        # On a busy machine the longer run can answer fewer: then try again.
        if short_requests and long_requests > 2 * short_requests:
            difference = {name: long_calls.get(name, 0) - short_calls.get(name, 0)
                          for name in long_calls}
            return _per_request(difference, long_requests - short_requests)
    return None
