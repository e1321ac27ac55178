"""The native C yardsticks from shared/reference: built on the fly, never copied in.

``zen_ref_server.c`` (one epoll loop per process) and ``zen_ref_load.c`` (a
closed-loop epoll load generator) are compiled with ``cc -O2`` into a
temporary folder for each run, so the project holds no C and the numbers come
from the same source every engineer steers by.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from zenserve.errors import ZenserveError

# Where the shared yardsticks live, unless $ZENSERVE_REFERENCE says otherwise.
REFERENCE_SOURCES = ("zen_ref_server.c", "zen_ref_load.c")
# The load generator connects every client (blocking connect) before it starts
# its clock. Past a busy server's backlog those connects wait in SYN retries (1 s,
# then 3 s...): the book's socketserver listens with a backlog of 5 and, on a busy
# machine, needs ~15 s to take 100 clients. Each run gets this much time beyond
# its duration before it is killed: a base plus a share per connection.
CONNECT_ALLOWANCE_SECONDS = 5.0
CONNECT_ALLOWANCE_PER_CONNECTION = 0.15
_RATE_LINE = re.compile(r"req/s=(\d+(?:\.\d+)?)")


def find_reference() -> Path:
    """The folder holding the C sources: $ZENSERVE_REFERENCE or shared/reference above us."""
    candidates = []
    if "ZENSERVE_REFERENCE" in os.environ:
        candidates.append(Path(os.environ["ZENSERVE_REFERENCE"]))
    here = Path(__file__).resolve()
    candidates += [parent / "shared" / "reference" for parent in here.parents]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in REFERENCE_SOURCES):
            return candidate
    raise ZenserveError("C reference not found: set ZENSERVE_REFERENCE to shared/reference")


@dataclass(frozen=True, slots=True)
class ReferenceTools:
    """Paths of the two compiled yardsticks."""

    server: Path
    load: Path


def build_reference(build_dir: Path, source_dir: Path | None = None) -> ReferenceTools:
    """Compile both C programs with ``cc -O2`` into ``build_dir``."""
    compiler = shutil.which("cc")
    if compiler is None:
        raise ZenserveError("no C compiler (cc): install gcc to build the yardstick")
    source_dir = source_dir or find_reference()
    built = []
    for source in REFERENCE_SOURCES:
        binary = build_dir / Path(source).stem
        result = subprocess.run(
            [compiler, "-O2", "-o", str(binary), str(source_dir / source)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if result.returncode != 0:
            raise ZenserveError(f"cc failed on {source}: {result.stderr.strip()}")
        built.append(binary)
    return ReferenceTools(server=built[0], load=built[1])


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One closed-loop run: its rate in requests per second, or why there is none."""

    rate: float | None
    failure: str = ""


def connect_allowance(connections: int) -> float:
    """Seconds a run may spend connecting its clients before it counts as timed out."""
    return CONNECT_ALLOWANCE_SECONDS + CONNECT_ALLOWANCE_PER_CONNECTION * connections


def run_reference_load(load: Path, port: int, connections: int, seconds: float) -> LoadResult:
    """Drive 127.0.0.1:``port`` with the C load generator; bounded, never hangs."""
    command = [str(load), str(port), str(connections), f"{seconds:g}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False,
                                timeout=seconds + connect_allowance(connections))
    except subprocess.TimeoutExpired:
        # subprocess.run has killed it; its sockets close with it.
        return LoadResult(None, f"timed out: clients not all connected within "
                                f"{connect_allowance(connections):g} s (connects queued)")
    match = _RATE_LINE.search(result.stdout)
    if result.returncode != 0 or match is None:
        reason = (result.stderr.strip() or result.stdout.strip() or "no output").splitlines()[-1]
        return LoadResult(None, f"load generator failed: {reason}")
    return LoadResult(float(match.group(1)))
