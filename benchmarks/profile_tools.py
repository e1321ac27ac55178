"""Measuring instruments for profile_hotspots.py: CPU time, strace -c and py-spy, all bounded.

Each instrument watches a running server (its pid and the workers it forked)
while the C load generator drives it, and reduces what it saw to numbers per
request, so that a profile can be compared across servers and runs.
"""

from __future__ import annotations

import contextlib
import re
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
from reference import LoadResult

PYSPY_RATE_HZ = 500
# "serve_forever (/work/main/src/zenserve/servers/poll.py:57)" -> function and file
_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
TRACER_START_TIMEOUT = 15.0
TRACER_STOP_TIMEOUT = 30.0


def family(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and every process it forked (its workers)."""
    leader = psutil.Process(pid)
    return [leader, *leader.children(recursive=True)]


class CpuSampler:
    """CPU seconds used by a server's process family over a run, forked children included.

    A forking server makes a process per connection that lives only as long as
    its client, so one look before and one after would miss them (or see them
    vanish): the family is looked at every ``SAMPLE_SECONDS`` from a thread, and
    each process (told apart by pid and start time) counts from its first
    sighting (zero if born during the run) to its last.
    """

    SAMPLE_SECONDS = 0.05

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._first: dict[tuple[int, float], tuple[float, float]] = {}
        self._last: dict[tuple[int, float], tuple[float, float]] = {}
        self._stop = threading.Event()
        self._sample(baseline=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self, baseline: bool = False) -> None:
        try:
            processes = family(self._pid)
        except psutil.NoSuchProcess:
            return
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                key = (process.pid, process.create_time())
                times = process.cpu_times()
                self._first.setdefault(key, (times.user, times.system) if baseline else (0, 0))
                self._last[key] = (times.user, times.system)

    def _run(self) -> None:
        while not self._stop.wait(self.SAMPLE_SECONDS):
            self._sample()

    def stop(self) -> tuple[float, float]:
        """Stop sampling; user and system seconds used since the sampler started."""
        self._stop.set()
        self._thread.join()
        self._sample()
        user = sum(last[0] - self._first[key][0] for key, last in self._last.items())
        system = sum(last[1] - self._first[key][1] for key, last in self._last.items())
        return user, system

    def busiest_share(self) -> float:
        """The share of the family's CPU time used by its busiest process (1.0: one did it all)."""
        used = [sum(last) - sum(self._first[key]) for key, last in self._last.items()]
        total = sum(used)
        return max(used) / total if total > 0 else 1.0


@dataclass(frozen=True, slots=True)
class CpuProfile:
    """A clean run: its rate, and CPU microseconds per request of the server and the load."""

    rate: float | None
    user_us: float = 0.0
    system_us: float = 0.0
    load_us: float = 0.0  # the C load generator's user + system time
    # The busiest server process's share of the server's CPU time: 1.0 for one
    # process, 0.5 for two workers sharing the load evenly, 0.1 for ten forked children.
    busiest_share: float = 1.0
    failure: str = ""


def measure_cpu(pid: int, drive: Callable[[], LoadResult], seconds: float) -> CpuProfile:
    """Run ``drive`` and charge the server's (and the load's) CPU time to its requests."""
    sampler = CpuSampler(pid)
    # The load generator is our child: its time shows in RUSAGE_CHILDREN once reaped.
    load_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        result = drive()
    finally:
        user, system = sampler.stop()
    load_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.rate is None or result.rate == 0:
        return CpuProfile(None, failure=result.failure or "no requests")
    per_request = 1e6 / (result.rate * seconds)
    load_seconds = (load_after.ru_utime - load_before.ru_utime
                    + load_after.ru_stime - load_before.ru_stime)
    return CpuProfile(result.rate, user * per_request, system * per_request,
                      load_seconds * per_request, sampler.busiest_share())


def parse_strace_summary(text: str) -> Counter[str]:
    """Calls per syscall from ``strace -c`` output (the ``total`` line excluded)."""
    calls: Counter[str] = Counter()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) in (5, 6) and fields[0].replace(".", "").isdigit() and fields[-1] != "total":
            calls[fields[-1]] += int(fields[3])
    return calls


@contextlib.contextmanager
def strace_counting(pid: int) -> Iterator[Counter[str]]:
    """``strace -c -f`` attached to the server and its workers while the block runs."""
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("strace is not installed (apt-get install strace)")
    calls: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="zenserve-strace-") as scratch:
        summary = Path(scratch) / "summary.txt"
        command = [strace, "-c", "-f", "-o", str(summary)]
        for process in family(pid):
            command += ["-p", str(process.pid)]
        tracer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            _wait_for_attach(tracer)
            yield calls
        finally:
            tracer.send_signal(signal.SIGINT)  # detach and write the summary
            try:
                tracer.wait(TRACER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                tracer.kill()
                tracer.wait()
            if tracer.stderr is not None:
                tracer.stderr.close()
        if summary.exists():
            calls.update(parse_strace_summary(summary.read_text()))


def _wait_for_attach(tracer: subprocess.Popen[str]) -> None:
    """strace says "Process N attached" on stderr once it traces: that is its readiness line."""
    for line in _lines_with_timeout(tracer, TRACER_START_TIMEOUT):
        if "attached" in line:
            return
    raise RuntimeError("strace did not attach (is ptrace allowed here?)")


def _lines_with_timeout(tracer: subprocess.Popen[str], timeout: float) -> Iterator[str]:
    assert tracer.stderr is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(tracer.stderr, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0 and selector.select(remaining):
            line = tracer.stderr.readline()
            if not line:
                return
            yield line


def pyspy_record(pid: int, seconds: float, output: Path) -> subprocess.Popen[bytes]:
    """Start py-spy sampling the server (and its workers) for ``seconds``; raw stacks."""
    beside_python = Path(sys.executable).parent / "py-spy"  # the venv's, when not on PATH
    pyspy = shutil.which("py-spy") or str(beside_python)
    if not Path(pyspy).exists():
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    command = [pyspy, "record", "-p", str(pid), "-d", f"{max(1, round(seconds))}",
               "-r", str(PYSPY_RATE_HZ), "-f", "raw", "-o", str(output), "--nonblocking",
               "--subprocesses"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@dataclass(frozen=True, slots=True)
class StackProfile:
    """Where the samples fell: by innermost function (self) and by any function on the stack."""

    samples: int
    self_counts: Counter[str]
    inclusive_counts: Counter[str]


def parse_pyspy_raw(text: str) -> StackProfile:
    """Aggregate py-spy's collapsed stacks (``frame;frame;... count`` per line)."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [short_frame(frame) for frame in stack.split(";")
                  if frame and not frame.startswith(("process ", "thread "))]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return StackProfile(samples, self_counts, inclusive)


def short_frame(frame: str) -> str:
    """``function (dir/file.py)``: line numbers dropped so a function counts as one."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = Path(match["file"])
    return f"{match['function']} ({'/'.join(path.parts[-2:])})"
