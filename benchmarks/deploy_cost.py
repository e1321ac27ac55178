"""What the deployment supervisor costs, and what clients see while it switches releases.

    .venv/bin/python benchmarks/deploy_cost.py            # 3 rounds × 3 s per point
    .venv/bin/python benchmarks/deploy_cost.py --quick    # 1 round × 1.5 s, provisional
    .venv/bin/python benchmarks/deploy_cost.py --arch asyncio-callbacks

Three setups with two worker processes each, raced in turn by `zenserve bench`
(closed loop, 10 connections), once on persistent connections and once with a
new connection per request:

- `serve --workers 2`: the kernel shares one listener between the workers;
- `deploy run`: the supervisor accepts every connection and passes it to a
  worker (SCM_RIGHTS), so it is on the path of every new connection;
- `deploy run`, switching: the same, with a blue-green switch to a new release
  every half second for the whole run (persistent connections are handed over).

The table goes to stdout and to its own section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from other_work import OtherWork
from results_file import run_and_record, section_start
from script_options import RunLength, parse_one_architecture_arguments

from zenserve.deploy.control import ControlClient
from zenserve.load import BenchOptions, BenchResult, run
from zenserve.process import ServerProcess

SECTION = "deploy-cost"
CONNECTIONS = 10
SWITCH_EVERY_SECONDS = 0.5
SETUPS = ("serve --workers 2", "deploy run", "deploy run, switching")


def write_release(directory: Path, version: str, architecture: str) -> Path:
    path = directory / f"{version}.toml"
    path.write_text(f'version = "{version}"\narchitecture = "{architecture}"\nworkers = 2\n'
                    '[strategy]\nkind = "blue-green"\n')
    return path


@contextmanager
def supervisor(directory: Path, architecture: str) -> Iterator[tuple[int, ControlClient]]:
    """`zenserve deploy run` on port 0: (port, its control client)."""
    control = directory / "control.sock"
    process = subprocess.Popen(
        [sys.executable, "-m", "zenserve", "deploy", "run",
         str(write_release(directory, "v0", architecture)), "-p", "0", "--control", str(control)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("Listening at "):
            raise SystemExit(f"deploy run did not start: {line!r}")
        yield int(line.rsplit(":", 1)[1]), ControlClient(control, timeout=30)
    finally:
        process.terminate()
        process.wait(30)


def keep_switching(client: ControlClient, directory: Path, architecture: str,
                   stop: threading.Event, switches: list[int]) -> None:
    """A blue-green switch to a new release every SWITCH_EVERY_SECONDS until ``stop``."""
    while not stop.wait(SWITCH_EVERY_SECONDS):
        path = write_release(directory, f"v{switches[0] + 1}", architecture)
        answer = client.request({"command": "release", "path": str(path)})
        for message in client.stream({"command": "wait", "deployment": answer["deployment"]},
                                     30):
            if message.get("result") == "promoted":
                switches[0] += 1


def measure(port: int, per_request: bool, seconds: float) -> BenchResult:
    return run(BenchOptions(port=port, connections=CONNECTIONS, duration=seconds, warmup=0.5,
                            connection_per_request=per_request, processes=1))


def race(architecture: str, rounds: int, seconds: float
         ) -> tuple[dict[tuple[str, bool], list[BenchResult]], int]:
    results: dict[tuple[str, bool], list[BenchResult]] = {}
    switches = [0]
    with tempfile.TemporaryDirectory(prefix="zenserve-deploy-") as scratch, ExitStack() as stack:
        served = stack.enter_context(ServerProcess("--arch", architecture, "--workers", "2"))
        port, client = stack.enter_context(supervisor(Path(scratch), architecture))
        for _ in range(rounds):
            for per_request in (False, True):
                for setup in SETUPS:
                    target = served.port if setup == SETUPS[0] else port
                    stop = threading.Event()
                    switcher = threading.Thread(
                        target=keep_switching, args=(client, Path(scratch), architecture, stop,
                                                     switches), daemon=True)
                    if setup == SETUPS[2]:
                        switcher.start()
                    try:
                        result = measure(target, per_request, seconds)
                    finally:
                        stop.set()
                        if switcher.is_alive():
                            switcher.join(60)
                    results.setdefault((setup, per_request), []).append(result)
    return results, switches[0]


def table(results: dict[tuple[str, bool], list[BenchResult]]) -> list[str]:
    lines = ["| setup | connections | req/s | × serve | p99 ms | errors |",
             "|---|---|---|---|---|---|"]
    for per_request in (False, True):
        baseline = statistics.median(result.throughput_rps
                                     for result in results[SETUPS[0], per_request])
        for setup in SETUPS:
            runs = results[setup, per_request]
            rate = statistics.median(result.throughput_rps for result in runs)
            p99 = statistics.median(result.latency.p99 for result in runs)
            errors = sum(sum(result.errors.values()) for result in runs)
            lines.append(f"| {setup} | {'one per request' if per_request else 'persistent'} | "
                         f"{rate:,.0f} | {rate / baseline:.2f} | {p99:.2f} | {errors} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_one_architecture_arguments(
        argv, __doc__.splitlines()[0] if __doc__ else None, quick=RunLength(1, 1.5),
        full=RunLength(3, 3.0))

    def produce() -> str:
        with OtherWork() as other:
            results, switches = race(args.arch, args.rounds, args.seconds)
        lines = section_start(f"## What deployment costs ({args.arch}, 2 workers)",
                              (args.provisional, other.note()))
        lines += [f"- each point: median of {args.rounds} run(s) of {args.seconds:g} s by "
                  f"`zenserve bench` ({CONNECTIONS} connections, closed loop), setups in turn; "
                  f"{switches} blue-green switches during the switching runs (one every "
                  f"{SWITCH_EVERY_SECONDS:g} s)", "", *table(results)]
        return "\n".join(lines) + "\n"

    return run_and_record("deploy_cost", SECTION, not args.no_record, produce)


if __name__ == "__main__":
    sys.exit(main())
